"""The new-lead form: every documented field of a CINC lead.

Checks everything CINC would refuse before anything is sent: the email
(required, well formed), prices (non-negative numbers; "$250,000" is fine),
phones (digits; spaces, dashes, dots, brackets and a leading plus are
dropped), and agents picked among the chosen connection's mirrored agents.
``lead_fields()`` gives the flat names ``cinc.records.lead_payload`` takes.
"""

import re
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError

from . import selectors
from .filters import agent_label

PHONE_FIELDS = ("cell_phone", "home_phone", "work_phone", "office_phone")
PHONE_SEPARATORS = re.compile(r"[\s\-.()]")
MIN_PHONE_DIGITS = 3
MAX_PHONE_DIGITS = 20
MAX_PRICE = Decimal("999999999999.99")
AGENT_ROLES = (
    ("primary_agent", "primary_agent_id"),
    ("listing_agent", "listing_agent_id"),
    ("partner", "partner_agent_id"),
)
STATUS_CHOICES = [
    ("", "CINC's default"),
    ("unworked", "Unworked"),
    ("inprogress", "In progress"),
    ("closed", "Closed"),
    ("trash", "Trash"),
]
BUYER_FIELDS = ("median_price", "average_price", "favorite_city", "buyer_timeline")
SELLER_FIELDS = ("seller_timeline",)


class PhoneField(forms.CharField):
    """A phone number, kept as its digits."""

    default_error_messages = {
        "digits": "Enter a phone number using digits (spaces, dashes, dots and "
        "brackets are fine).",
        "length": "A phone number has between %(min)s and %(max)s digits.",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 40)
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)
        self.widget.attrs.update({"inputmode": "tel", "autocomplete": "tel"})

    def to_python(self, value):
        value = super().to_python(value)
        if not value:
            return ""
        digits = PHONE_SEPARATORS.sub("", value)
        if digits.startswith("+"):
            digits = digits[1:]
        if not digits.isascii() or not digits.isdigit():
            raise ValidationError(self.error_messages["digits"], code="digits")
        if not MIN_PHONE_DIGITS <= len(digits) <= MAX_PHONE_DIGITS:
            raise ValidationError(
                self.error_messages["length"],
                code="length",
                params={"min": MIN_PHONE_DIGITS, "max": MAX_PHONE_DIGITS},
            )
        return digits


class PriceField(forms.DecimalField):
    """A non-negative amount of dollars; "$250,000" reads as 250000."""

    default_error_messages = {
        "invalid": "Enter an amount in dollars, like 250000 or $250,000.",
        "min_value": "A price cannot be negative.",
        "max_value": "That price is too large.",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("min_value", Decimal(0))
        kwargs.setdefault("max_value", MAX_PRICE)
        kwargs.setdefault("decimal_places", 2)
        super().__init__(**kwargs)

    widget = forms.TextInput

    def widget_attrs(self, widget):
        # A text box, so "$250,000" can be typed; a number pad on phones.
        return {"inputmode": "decimal"}

    def to_python(self, value):
        if isinstance(value, str):
            value = value.strip().replace(",", "").replace("$", "").replace(" ", "")
            if len(value) > 30:
                raise ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


class AgentField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return agent_label(obj)


class LeadForm(forms.Form):
    """A new lead for one connection (fixed by the view, sent as a hidden
    field so the confirmation step posts it back)."""

    # Contact.
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    email = forms.EmailField(
        max_length=254,
        error_messages={
            "required": "CINC needs an email for every lead.",
            "invalid": "Enter a valid email address, like jane@example.com.",
        },
        help_text="Required. CINC keeps one lead per email address.",
    )
    cell_phone = PhoneField(label="Cell phone")
    home_phone = PhoneField(label="Home phone")
    work_phone = PhoneField(label="Work phone")
    office_phone = PhoneField(label="Office phone")
    # Mailing address.
    street = forms.CharField(max_length=255, required=False)
    city = forms.CharField(max_length=120, required=False)
    state = forms.CharField(max_length=80, required=False)
    zip = forms.CharField(label="ZIP / postal code", max_length=20, required=False)
    # Buyer.
    is_buyer = forms.BooleanField(label="Buyer", required=False)
    median_price = PriceField(label="Median price")
    average_price = PriceField(label="Average price")
    favorite_city = forms.CharField(max_length=120, required=False)
    buyer_timeline = forms.CharField(
        label="Buying timeline", max_length=120, required=False
    )
    # Seller.
    is_seller = forms.BooleanField(label="Seller", required=False)
    seller_timeline = forms.CharField(
        label="Selling timeline", max_length=120, required=False
    )
    # Assignment and tracking.
    primary_agent = AgentField(
        queryset=None, to_field_name="uuid", required=False, empty_label="Nobody"
    )
    listing_agent = AgentField(
        queryset=None, to_field_name="uuid", required=False, empty_label="Nobody"
    )
    partner = AgentField(
        queryset=None, to_field_name="uuid", required=False, empty_label="Nobody"
    )
    source = forms.CharField(max_length=120, required=False)
    status = forms.ChoiceField(choices=STATUS_CHOICES, required=False)

    def __init__(self, *args, connection, **kwargs):
        super().__init__(*args, **kwargs)
        self.connection = connection
        agents = selectors.agent_choices(
            broker=connection.broker, connection=connection
        )
        for role, _ in AGENT_ROLES:
            self.fields[role].queryset = agents
        for name in ("first_name", "last_name"):
            self.fields[name].widget.attrs["autocomplete"] = (
                "given-name" if name == "first_name" else "family-name"
            )
        self.fields["email"].widget.attrs["autocomplete"] = "email"
        self.fields["street"].widget.attrs["autocomplete"] = "street-address"
        self.fields["zip"].widget.attrs["autocomplete"] = "postal-code"

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("is_buyer"):
            given = [
                name for name in BUYER_FIELDS if cleaned.get(name) not in (None, "")
            ]
            if given:
                self.add_error(
                    "is_buyer",
                    ValidationError(
                        "Buyer details are sent only for buyers: tick Buyer, or "
                        "clear the buyer details.",
                        code="buyer_details_without_buyer",
                    ),
                )
        if not cleaned.get("is_seller") and cleaned.get("seller_timeline"):
            self.add_error(
                "is_seller",
                ValidationError(
                    "The selling timeline is sent only for sellers: tick Seller, "
                    "or clear it.",
                    code="seller_details_without_seller",
                ),
            )
        return cleaned

    def lead_fields(self):
        """The cleaned values under ``cinc.records.LEAD_FIELDS`` names."""
        cleaned = self.cleaned_data
        fields = {
            name: cleaned.get(name)
            for name in self.fields
            if name not in ("primary_agent", "listing_agent", "partner")
        }
        for role, key in AGENT_ROLES:
            agent = cleaned.get(role)
            fields[key] = agent.cinc_id if agent is not None else None
        if fields["email"]:
            fields["email"] = fields["email"].strip()
        return fields

    def apply_upstream_errors(self, errors):
        """Put CINC's refusals next to the fields they name.

        ``errors`` holds ``(field path, message)`` pairs as CINC sent them;
        paths the form does not know go to the top of the form.
        """
        for path, message in errors:
            name = field_for_path(path)
            text = f"CINC refused this: {message}" if message else "CINC refused this."
            if name in self.fields:
                self.add_error(name, ValidationError(text, code="upstream"))
            else:
                where = f" ({path})" if path else ""
                self.add_error(
                    None, ValidationError(f"CINC refused the lead{where}: {message}")
                )


# Where CINC's field paths land on the form (both documented spellings).
PATH_FIELDS = {
    "info.contact.first_name": "first_name",
    "info.contact.last_name": "last_name",
    "info.contact.email": "email",
    "info.contact.phone_numbers": "cell_phone",
    "info.contact.mailing_address.street": "street",
    "info.contact.mailing_address.city": "city",
    "info.contact.mailing_address.state": "state",
    "info.contact.mailing_address.postal_or_zip": "zip",
    "info.contact.mailing_address.postal_code": "zip",
    "info.contact.mailing_address": "street",
    "info.is_buyer": "is_buyer",
    "info.is_seller": "is_seller",
    "info.buyer": "is_buyer",
    "info.seller": "is_seller",
    "info.source": "source",
    "info.status": "status",
    "info.assigned_agents": "primary_agent",
}
for _kind in PHONE_FIELDS:
    PATH_FIELDS[f"info.contact.phone_numbers.{_kind}"] = _kind
for _key in ("buyer", "buyer_info"):
    PATH_FIELDS[f"info.{_key}.median_price"] = "median_price"
    PATH_FIELDS[f"info.{_key}.average_price"] = "average_price"
    PATH_FIELDS[f"info.{_key}.favorite_city"] = "favorite_city"
    PATH_FIELDS[f"info.{_key}.timeline"] = "buyer_timeline"
for _key in ("seller", "seller_info"):
    PATH_FIELDS[f"info.{_key}.timeline"] = "seller_timeline"
for _role, _ in AGENT_ROLES:
    PATH_FIELDS[f"info.assigned_agents.{_role}"] = _role
    PATH_FIELDS[f"info.assigned_agents.{_role}.id"] = _role


def field_for_path(path):
    """The form field a CINC field path names, or None.

    Accepts the paths with or without a leading ``lead.`` (the documentation
    also writes ``info.lead.contact.email``).
    """
    path = (path or "").strip()
    for prefix in ("lead.", "body."):
        if path.startswith(prefix):
            path = path[len(prefix) :]
    path = path.replace("info.lead.", "info.")
    if path in PATH_FIELDS:
        return PATH_FIELDS[path]
    short = path.rsplit(".", 1)[-1]
    return short if short in LeadForm.base_fields else None
