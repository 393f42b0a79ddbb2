"""Template filters of the broker's pages: prices, phones, JSON."""

import json
from decimal import Decimal, InvalidOperation

from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def price(value):
    """$250,000 (cents only when there are some); an em dash when unknown."""
    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if not amount.is_finite():
        return str(value)
    if amount == amount.to_integral_value():
        return f"${amount:,.0f}"
    return f"${amount:,.2f}"


@register.filter
def phone(value):
    """(610) 958-6760 for ten US digits; anything else as CINC sent it."""
    if not value:
        return ""
    digits = str(value)
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if len(digits) == 10 and digits.isdigit():
        return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    return str(value)


@register.filter
def pretty_json(value):
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


@register.filter
def percent_of(part, whole):
    """``part`` as a whole percentage of ``whole`` (0 when whole is 0)."""
    try:
        return round(100 * int(part) / int(whole)) if int(whole) else 0
    except (TypeError, ValueError):
        return 0


@register.filter
def is_future(moment):
    """True for a datetime still to come."""
    return bool(moment) and moment > timezone.now()


@register.filter
def duration(run):
    """How long a sync run took (or has been running), as "2 min 5 s"."""
    if run is None or run.started_at is None:
        return ""
    end = run.finished_at or timezone.now()
    seconds = max(0, int((end - run.started_at).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
