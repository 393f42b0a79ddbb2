/* Dashboard: the chart of new leads per week.
 * The figures come from the page (json_script "weekly-chart-data"); the
 * same figures are in the table under the chart for screen readers. */
(function () {
  "use strict";

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name);
    return (value && value.trim()) || fallback;
  }

  function drawWeeklyChart() {
    var canvas = document.getElementById("weekly-chart");
    var source = document.getElementById("weekly-chart-data");
    if (!canvas || !source || typeof window.Chart === "undefined") {
      return;
    }
    var data;
    try {
      data = JSON.parse(source.textContent);
    } catch (error) {
      return;
    }
    var text = cssVar("--text-muted", "#5b6475");
    var grid = cssVar("--border", "#e3e7ee");
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [
          {
            label: "New leads",
            data: data.counts,
            backgroundColor: cssVar("--accent", "#2456d6"),
            hoverBackgroundColor: cssVar("--accent-strong", "#1a3fa3"),
            borderRadius: 4,
            maxBarThickness: 36
          }
        ]
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { display: false } },
        scales: {
          x: { ticks: { color: text }, grid: { display: false } },
          y: {
            beginAtZero: true,
            ticks: { color: text, precision: 0 },
            grid: { color: grid }
          }
        }
      }
    });
    canvas.closest(".chart-card").classList.add("chart-ready");
  }

  document.addEventListener("DOMContentLoaded", drawWeeklyChart);
})();
