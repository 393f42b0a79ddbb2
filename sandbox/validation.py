"""Checks and normalisation of a lead posted to ``POST site/leads``.

``lead_errors`` lists problems as ``{"field": "info.contact.email",
"message": "..."}``; ``normalise_lead`` turns an accepted body into the record
the list endpoint shows.
"""

import copy
import datetime as dt
import re

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DIGITS_RE = re.compile(r"^[0-9]{3,20}$")
PHONE_KINDS = ("cell_phone", "home_phone", "work_phone", "office_phone")
ADDRESS_KEYS = ("street", "city", "state", "postal_or_zip", "postal_code")
ASSIGNED_ROLES = ("primary_agent", "listing_agent", "partner")


def parse_date(value):
    """A timezone-aware datetime from an ISO 8601 string, or None."""
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def iso_z(moment):
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Errors(list):
    def add(self, field, message):
        self.append({"field": field, "message": message})

    def object(self, parent, key, path):
        """The dict at parent[key] or None; records an error if not a dict."""
        value = parent.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.add(path, "must be an object")
            return None
        return value

    def string(self, parent, key, path):
        value = parent.get(key)
        if value is not None and not isinstance(value, str):
            self.add(path, "must be a string")

    def boolean(self, parent, key, path):
        value = parent.get(key)
        if value is not None and not isinstance(value, bool):
            self.add(path, "must be true or false")


def _check_contact(errors, contact):
    value = contact.get("email")
    if value is None or (isinstance(value, str) and not value.strip()):
        errors.add("info.contact.email", "is required")
    elif not isinstance(value, str) or not EMAIL_RE.match(value.strip()):
        errors.add("info.contact.email", "must be an email address")
    for key in ("first_name", "last_name"):
        errors.string(contact, key, f"info.contact.{key}")

    phones = errors.object(contact, "phone_numbers", "info.contact.phone_numbers")
    for kind, number in (phones or {}).items():
        path = f"info.contact.phone_numbers.{kind}"
        if kind not in PHONE_KINDS:
            errors.add(path, "unknown phone type")
        elif not isinstance(number, str) or not DIGITS_RE.match(number):
            errors.add(path, "must be a string of 3 to 20 digits")

    address = errors.object(contact, "mailing_address", "info.contact.mailing_address")
    for key, value in (address or {}).items():
        path = f"info.contact.mailing_address.{key}"
        if key not in ADDRESS_KEYS:
            errors.add(path, "unknown address field")
        elif not isinstance(value, str):
            errors.add(path, "must be a string")


def _check_wishes(errors, info):
    for key in ("buyer", "buyer_info"):
        buyer = errors.object(info, key, f"info.{key}")
        if buyer is None:
            continue
        for price in ("median_price", "average_price"):
            value = buyer.get(price)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                errors.add(f"info.{key}.{price}", "must be a number")
            elif value < 0:
                errors.add(f"info.{key}.{price}", "must not be negative")
        for text in ("favorite_city", "timeline"):
            errors.string(buyer, text, f"info.{key}.{text}")
    for key in ("seller", "seller_info"):
        seller = errors.object(info, key, f"info.{key}")
        if seller is not None:
            errors.string(seller, "timeline", f"info.{key}.timeline")


def _check_assigned(errors, info, existing_agent_ids):
    assigned = errors.object(info, "assigned_agents", "info.assigned_agents")
    wanted = {}
    for role, ref in (assigned or {}).items():
        path = f"info.assigned_agents.{role}"
        if role not in ASSIGNED_ROLES:
            errors.add(path, "unknown assignment")
        elif not isinstance(ref, dict):
            errors.add(path, "must be an object with an id")
        elif not isinstance(ref.get("id"), str) or not ref["id"]:
            errors.add(f"{path}.id", "must be an agent id")
        else:
            wanted[role] = ref["id"]
    if wanted:
        known = existing_agent_ids(set(wanted.values()))
        for role, agent_id in wanted.items():
            if agent_id not in known:
                errors.add(f"info.assigned_agents.{role}.id", "no such agent")


def lead_errors(body, existing_agent_ids):
    """Problems with a posted lead; empty when it can be stored.

    ``existing_agent_ids(ids)`` returns which of the ids exist on the site.
    """
    errors = _Errors()
    if "registered_date" in body and parse_date(body["registered_date"]) is None:
        errors.add("registered_date", "must be an ISO 8601 date and time")
    info = body.get("info")
    if info is None:
        errors.add("info.contact.email", "is required")
        return list(errors)
    if not isinstance(info, dict):
        errors.add("info", "must be an object")
        return list(errors)
    contact = info.get("contact")
    if not isinstance(contact, dict):
        errors.add("info.contact.email", "is required")
    else:
        _check_contact(errors, contact)
    for key in ("is_buyer", "is_seller"):
        errors.boolean(info, key, f"info.{key}")
    for key in ("source", "status"):
        errors.string(info, key, f"info.{key}")
    _check_wishes(errors, info)
    _check_assigned(errors, info, existing_agent_ids)
    return list(errors)


def normalise_lead(body, lead_id, now):
    """The record as the list shows it, for an accepted body.

    The body's ``id`` is ignored; ``registered_date`` defaults to ``now``;
    ``is_buyer``/``is_seller`` are always present and the buyer/seller
    objects only when they are true.
    """
    info = copy.deepcopy(body["info"])
    contact = info["contact"]
    contact["email"] = contact["email"].strip()
    wishes = {
        "is_buyer": ("buyer", "buyer_info"),
        "is_seller": ("seller", "seller_info"),
    }
    for flag, keys in wishes.items():
        value = info.get(flag)
        if value is None:
            value = any(key in info for key in keys)
        info[flag] = value
        if not value:
            for key in keys:
                info.pop(key, None)
    registered = parse_date(body.get("registered_date")) or now
    record = {"id": lead_id, "registered_date": iso_z(registered), "info": info}
    for key, value in body.items():
        if key not in record:
            record[key] = copy.deepcopy(value)
    return record
