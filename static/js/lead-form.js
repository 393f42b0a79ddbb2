/* New-lead form: show the buyer and seller details only when the lead is a
 * buyer or seller. Without JavaScript every field simply stays visible. */
(function () {
  "use strict";

  function hasValues(container) {
    var inputs = container.querySelectorAll("input, select, textarea");
    for (var i = 0; i < inputs.length; i += 1) {
      if (inputs[i].value) {
        return true;
      }
    }
    return false;
  }

  function link(checkboxId, detailsId) {
    var checkbox = document.getElementById(checkboxId);
    var details = document.getElementById(detailsId);
    if (!checkbox || !details) {
      return;
    }
    function update() {
      var show = checkbox.checked || hasValues(details);
      details.hidden = !show;
      checkbox.setAttribute("aria-expanded", show ? "true" : "false");
    }
    checkbox.setAttribute("aria-controls", detailsId);
    checkbox.addEventListener("change", update);
    update();
  }

  document.addEventListener("DOMContentLoaded", function () {
    link("id_is_buyer", "buyer-details");
    link("id_is_seller", "seller-details");
  });
})();
