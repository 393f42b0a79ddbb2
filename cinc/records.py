"""Agent and lead records: parsing CINC's JSON, and building a lead to POST.

``parse_agent`` and ``parse_lead`` turn one raw record into a frozen
dataclass holding the fields the portal uses, plus the whole raw dict (the
live API sends fields the documentation does not list; they stay in
``raw``). The documentation disagrees with itself in places and both forms
are read: ``postal_or_zip`` or ``postal_code``, agent ``status`` in ``info``
or in ``info.contact``, ``buyer``/``seller`` or ``buyer_info``/``seller_info``.

Absent values are None; strings are stripped. A record whose values have the
wrong type (no id, ``info`` not an object, a price that is not a number ...)
raises ``RecordError`` so the caller can skip and count it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import RecordError

PHONE_KINDS = ("cell_phone", "home_phone", "work_phone", "office_phone")
ZIP_KEYS = ("postal_or_zip", "postal_code")


@dataclass(frozen=True)
class Contact:
    """Contact fields shared by agents and leads."""

    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    cell_phone: str | None = None
    home_phone: str | None = None
    work_phone: str | None = None
    office_phone: str | None = None
    street: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None


@dataclass(frozen=True)
class AgentRecord(Contact):
    """One agent of a CINC site."""

    id: str = ""
    registered_at: datetime | None = None
    status: str | None = None
    raw: dict = field(default_factory=dict, compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class LeadRecord(Contact):
    """One lead of a CINC site."""

    id: str = ""
    registered_at: datetime | None = None
    is_buyer: bool = False
    is_seller: bool = False
    buyer_median_price: Decimal | None = None
    buyer_average_price: Decimal | None = None
    favorite_city: str | None = None
    buyer_timeline: str | None = None
    seller_timeline: str | None = None
    primary_agent_id: str | None = None
    listing_agent_id: str | None = None
    partner_agent_id: str | None = None
    source: str | None = None
    status: str | None = None
    raw: dict = field(default_factory=dict, compare=False, hash=False, repr=False)


def parse_agent(raw: Any) -> AgentRecord:
    """Parse one agent record; raise ``RecordError`` if it cannot be used."""
    record_id, registered_at, info = _head(raw)
    try:
        contact = _obj(info, "contact")
        status = _text(info, "status")
        if status is None and contact is not None:
            status = _text(contact, "status")
        values = _contact_fields(contact)
        values.update(id=record_id, registered_at=registered_at, status=status, raw=raw)
        return _frozen(AgentRecord, values)
    except _Bad as exc:
        raise RecordError(str(exc), record_id=record_id) from None


def parse_lead(raw: Any) -> LeadRecord:
    """Parse one lead record; raise ``RecordError`` if it cannot be used."""
    record_id, registered_at, info = _head(raw)
    try:
        buyer = _first_obj(info, "buyer", "buyer_info")
        seller = _first_obj(info, "seller", "seller_info")
        agents = _obj(info, "assigned_agents")
        values = _contact_fields(_obj(info, "contact"))
        values.update(
            id=record_id,
            registered_at=registered_at,
            is_buyer=_flag(info, "is_buyer", default=buyer is not None),
            is_seller=_flag(info, "is_seller", default=seller is not None),
            buyer_median_price=_price(buyer, "median_price"),
            buyer_average_price=_price(buyer, "average_price"),
            favorite_city=_text(buyer, "favorite_city"),
            buyer_timeline=_text(buyer, "timeline"),
            seller_timeline=_text(seller, "timeline"),
            primary_agent_id=_agent_id(agents, "primary_agent"),
            listing_agent_id=_agent_id(agents, "listing_agent"),
            partner_agent_id=_agent_id(agents, "partner"),
            source=_text(info, "source"),
            status=_text(info, "status"),
            raw=raw,
        )
        return _frozen(LeadRecord, values)
    except _Bad as exc:
        raise RecordError(str(exc), record_id=record_id) from None


def parse_many(raws: Iterable[Any], parse) -> tuple[list, list[RecordError]]:
    """Parse records with ``parse``; return (records, errors), never raising."""
    records, errors = [], []
    for raw in raws:
        try:
            records.append(parse(raw))
        except RecordError as exc:
            errors.append(exc)
    return records, errors


# Building a lead for POST /leads.

LEAD_FIELDS = frozenset(
    {
        "first_name",
        "last_name",
        "email",
        *PHONE_KINDS,
        "street",
        "city",
        "state",
        "zip",
        "is_buyer",
        "median_price",
        "average_price",
        "favorite_city",
        "buyer_timeline",
        "is_seller",
        "seller_timeline",
        "primary_agent_id",
        "listing_agent_id",
        "partner_agent_id",
        "source",
        "status",
    }
)


def lead_payload(fields: Mapping[str, Any], *, zip_key: str = "postal_or_zip") -> dict:
    """Build the JSON body of ``POST /leads`` from flat form-like fields.

    ``fields`` uses the names in ``LEAD_FIELDS`` (those of ``LeadRecord``
    with ``median_price``/``average_price`` for the buyer's prices). Empty
    values are left out; buyer and seller details are sent only when
    ``is_buyer`` / ``is_seller`` is true. The zip goes under ``zip_key``
    (``postal_or_zip`` as the field tables say, or ``postal_code`` as the
    examples do). Raises ValueError for unknown names or a missing email.
    """
    unknown = set(fields) - LEAD_FIELDS
    if unknown:
        raise ValueError(f"unknown lead fields: {', '.join(sorted(unknown))}")
    if zip_key not in ZIP_KEYS:
        raise ValueError(f"zip_key must be one of {ZIP_KEYS}")
    values = {name: _clean(value) for name, value in fields.items()}
    for name in ("median_price", "average_price"):
        values[name] = _number(values.get(name), name)
    if not values.get("email"):
        raise ValueError("a lead needs an email")

    contact = _pick(values, "first_name", "last_name", "email")
    phones = _pick(values, *PHONE_KINDS)
    if phones:
        contact["phone_numbers"] = phones
    address = _pick(values, "street", "city", "state")
    if values.get("zip") is not None:
        address[zip_key] = values["zip"]
    if address:
        contact["mailing_address"] = address

    is_buyer = bool(values.get("is_buyer"))
    is_seller = bool(values.get("is_seller"))
    info: dict[str, Any] = {"contact": contact, "is_buyer": is_buyer}
    if is_buyer:
        buyer = _pick(values, "median_price", "average_price", "favorite_city")
        if values.get("buyer_timeline") is not None:
            buyer["timeline"] = values["buyer_timeline"]
        if buyer:
            info["buyer"] = buyer
    info["is_seller"] = is_seller
    if is_seller and values.get("seller_timeline") is not None:
        info["seller"] = {"timeline": values["seller_timeline"]}

    agents = {
        role: {"id": values[name]}
        for role, name in (
            ("primary_agent", "primary_agent_id"),
            ("listing_agent", "listing_agent_id"),
            ("partner", "partner_agent_id"),
        )
        if values.get(name) is not None
    }
    if agents:
        info["assigned_agents"] = agents
    info.update(_pick(values, "source", "status"))
    return {"info": info}


# Helpers. ``_Bad`` carries a reason up to the parse functions, which turn it
# into a RecordError naming the record.


class _Bad(Exception):
    pass


_FIELD_NAMES = {
    cls: frozenset(item.name for item in fields(cls))
    for cls in (AgentRecord, LeadRecord)
}


def _frozen(cls, values: dict):
    """An instance of the frozen dataclass ``cls`` holding ``values`` (one
    entry per field, checked), made without the generated ``__init__``,
    which sets each field with its own ``object.__setattr__`` call: a lead
    took 3.9 us that way, about a third of its parse, against 1 us here.
    The instance stays frozen and compares as one built by ``cls(...)``."""
    if values.keys() != _FIELD_NAMES[cls]:
        raise TypeError(f"{cls.__name__} fields differ: {sorted(values)}")
    record = object.__new__(cls)
    record.__dict__.update(values)
    return record


def _head(raw: Any) -> tuple[str, datetime | None, dict]:
    if not isinstance(raw, dict):
        raise RecordError(f"record is {type(raw).__name__}, not an object")
    record_id = raw.get("id")
    if isinstance(record_id, int) and not isinstance(record_id, bool):
        record_id = str(record_id)
    if not isinstance(record_id, str) or not record_id.strip():
        raise RecordError("record has no id")
    record_id = record_id.strip()
    try:
        registered_at = _datetime(raw.get("registered_date"))
        info = raw.get("info")
        if info is None:
            info = {}
        if not isinstance(info, dict):
            raise _Bad(f"info is {type(info).__name__}, not an object")
    except _Bad as exc:
        raise RecordError(str(exc), record_id=record_id) from None
    return record_id, registered_at, info


def _datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _Bad("registered_date is not a string")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _Bad("registered_date is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59-05:00 is past datetime's range
        return None
    # A date at the very ends of datetime's range (year 1, year 9999) cannot
    # be shown in every time zone: it is kept in the raw record only, and
    # the lead is mirrored without a registration date.
    if not 2 <= moment.year <= 9998:
        return None
    return moment


def _obj(parent: dict | None, key: str) -> dict | None:
    if parent is None:
        return None
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _Bad(f"{key} is {type(value).__name__}, not an object")
    return value


def _first_obj(parent: dict, *keys: str) -> dict | None:
    for key in keys:
        value = _obj(parent, key)
        if value is not None:
            return value
    return None


def _text(parent: dict | None, key: str) -> str | None:
    if parent is None:
        return None
    value = parent.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _Bad(f"{key} is {type(value).__name__}, not a string")


def _flag(parent: dict, key: str, *, default: bool) -> bool:
    value = parent.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _Bad(f"{key} is not a boolean")


def _price(parent: dict | None, key: str) -> Decimal | None:
    if parent is None:
        return None
    value = parent.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise _Bad(f"{key} is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Bad(f"{key} is not a finite number")
    if isinstance(value, int | float):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            number = Decimal(value.strip().replace(",", ""))
        except InvalidOperation:
            raise _Bad(f"{key} is not a number") from None
        if number.is_finite():
            return number
    raise _Bad(f"{key} is not a number")


def _agent_id(agents: dict | None, role: str) -> str | None:
    agent = _obj(agents, role)
    agent_id = _text(agent, "id")
    return agent_id or None


def _contact_fields(contact: dict | None) -> dict[str, str | None]:
    phones = _obj(contact, "phone_numbers")
    address = _obj(contact, "mailing_address")
    zips = [_text(address, key) for key in ZIP_KEYS]
    zip_code = next((z for z in zips if z), None)
    if zip_code is None:
        zip_code = next((z for z in zips if z is not None), None)
    return {
        "first_name": _text(contact, "first_name"),
        "last_name": _text(contact, "last_name"),
        "email": _text(contact, "email"),
        **{kind: _text(phones, kind) for kind in PHONE_KINDS},
        "street": _text(address, "street"),
        "city": _text(address, "city"),
        "state": _text(address, "state"),
        "zip": zip_code,
    }


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _number(value: Any, name: str) -> int | float | None:
    if value is None or isinstance(value, int | float) and not isinstance(value, bool):
        return value
    try:
        number = _price({name: value}, name)
    except _Bad:
        raise ValueError(f"{name} is not a number") from None
    return _clean(number)


def _pick(values: dict, *names: str) -> dict:
    return {name: values[name] for name in names if values.get(name) not in (None, "")}
