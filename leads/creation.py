"""Creating a lead in CINC for a broker, without overwriting one by surprise.

CINC's ``POST /leads`` is documented both as "create, refused when the email
exists" and as an upsert keyed on the email that may reset the fields left out
(NOTES 10). So ``lead_create``:

1. looks the email up in the mirror; when the lead is known it sends nothing
   and answers ``EXISTS`` with what would change, until the broker confirms;
2. otherwise sends the lead, and treats CINC's answers apart: 201 created,
   200 updated (an existing lead the mirror did not know yet), 409 refused
   (the lead exists: fetched by id into the mirror and shown like 1.);
3. on success fetches the lead by id and upserts it into the mirror at once;
4. records every POST in ``LeadWrite`` (who, when, what was sent, CINC's
   status and answer, the outcome).

A POST that times out (or fails with a 5xx) may have stored the lead. It is
not sent again blindly: the write is kept as ``UNKNOWN``. CINC cannot be
searched by email, so a later attempt for that email checks the mirror first
(a sync may have brought the lead in) and, when the mirror does not know it,
sends again only what the lost attempt sent: CINC keeps one lead per email,
so the repeat either is refused with the existing lead's id (409) or updates
that lead with the same values (200); it cannot make a second lead. Different
values need the broker's confirmation first, as for any update.
"""

import datetime as dt
import logging
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.core import signing
from django.utils import timezone

from accounts.services import ConnectionUnavailable, connection_client
from cinc import errors as cinc_errors
from cinc.records import lead_payload

from . import selectors
from .models import Agent, Lead, LeadWrite
from .sync import upsert_leads

logger = logging.getLogger(__name__)

# The longest a broker's page waits for a CINC rate-limit slot.
WEB_MAX_WAIT = 5.0
CONFIRM_SALT = "leads.creation.confirm"
CONFIRM_MAX_AGE = 30 * 60
# How long an unanswered POST is remembered for the "check first" rule.
UNKNOWN_WINDOW = dt.timedelta(days=7)

# The fields the broker sees in a diff: (label, key in the form data, Lead
# column or a callable of the lead).
COMPARED = (
    ("First name", "first_name", "first_name"),
    ("Last name", "last_name", "last_name"),
    ("Email", "email", "email"),
    ("Cell phone", "cell_phone", "cell_phone"),
    ("Home phone", "home_phone", "home_phone"),
    ("Work phone", "work_phone", "work_phone"),
    ("Office phone", "office_phone", "office_phone"),
    ("Street", "street", "street"),
    ("City", "city", "city"),
    ("State", "state", "state"),
    ("ZIP / postal code", "zip", "zip_code"),
    ("Buyer", "is_buyer", "is_buyer"),
    ("Median price", "median_price", "buyer_median_price"),
    ("Average price", "average_price", "buyer_average_price"),
    ("Favorite city", "favorite_city", "buyer_favorite_city"),
    ("Buying timeline", "buyer_timeline", "buyer_timeline"),
    ("Seller", "is_seller", "is_seller"),
    ("Selling timeline", "seller_timeline", "seller_timeline"),
    ("Primary agent", "primary_agent_id", "primary_agent_cinc_id"),
    ("Listing agent", "listing_agent_id", "listing_agent_cinc_id"),
    ("Partner", "partner_agent_id", "partner_cinc_id"),
    ("Source", "source", "source"),
    ("Status", "status", "status"),
)
AGENT_KEYS = {"primary_agent_id", "listing_agent_id", "partner_agent_id"}
PRICE_KEYS = {"median_price", "average_price"}
BUYER_KEYS = {"median_price", "average_price", "favorite_city", "buyer_timeline"}


class Outcome:
    CREATED = "created"  # 201: a new lead
    UPDATED = "updated"  # 200: CINC updated an existing lead
    EXISTS = "exists"  # known lead: nothing sent, confirmation needed
    REFUSED = "refused"  # confirmed update refused by CINC (409)
    INVALID = "invalid"  # CINC refused fields
    UNKNOWN = "unknown"  # no answer: the lead may have been created
    FAILED = "failed"  # nothing stored (rate limit, connection, fault)
    UNAVAILABLE = "unavailable"  # the connection cannot create leads


@dataclass
class Change:
    label: str
    current: str
    new: str


@dataclass
class CreateResult:
    """What happened, for the view to show. ``lead`` is the mirrored lead
    (created, updated or already there) when known."""

    outcome: str
    message: str = ""
    lead: Lead | None = None
    write: LeadWrite | None = None
    changes: list[Change] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    existing_cinc_id: str | None = None
    earlier_write: LeadWrite | None = None
    # True when CINC answered 200 to a lead the portal believed new.
    surprise_update: bool = False
    # False once CINC refused the email (409): a confirmed update would be
    # refused the same way, so the page offers none.
    can_update: bool = True


def lead_create(*, connection, broker, data, confirmed=False):
    """Send a new lead (``data``: ``cinc.records.LEAD_FIELDS`` names) to the
    CINC site of ``connection`` for ``broker``; see the module docstring."""
    if not connection.can_create_leads:
        return CreateResult(Outcome.UNAVAILABLE, unavailable_reason(connection))

    email = (data.get("email") or "").strip()
    existing = selectors.lead_by_email(connection=connection, email=email)
    earlier = _unanswered_write(connection=connection, email=email)
    if not confirmed:
        if existing is not None:
            return _exists(connection, existing, data, earlier=earlier)
        payload = lead_payload(data, zip_key=settings.CINC_ZIP_KEY)
        if earlier is not None and earlier.payload != payload:
            return CreateResult(
                Outcome.EXISTS,
                "An earlier attempt to send a lead with this email got no "
                "answer from CINC, so that lead may exist with other details.",
                earlier_write=earlier,
                changes=payload_changes(earlier.payload, payload),
            )
    return _send(connection, broker, data, confirmed=confirmed, earlier=earlier)


def unavailable_reason(connection):
    if connection.status == connection.Status.NEEDS_RECONNECT:
        return (
            "CINC no longer accepts this connection's sign-in. Reconnect it to "
            "create leads."
        )
    if connection.status == connection.Status.DISCONNECTED:
        return "This CINC site is disconnected. Connect it again to create leads."
    return (
        "CINC did not give the portal permission to create leads (api:create) "
        "on this site. Reconnect and approve creating leads on CINC's consent "
        "page to enable this form."
    )


def _send(connection, broker, data, *, confirmed, earlier):
    payload = lead_payload(data, zip_key=settings.CINC_ZIP_KEY)
    write = LeadWrite(
        connection=connection,
        broker=broker,
        email=payload["info"]["contact"]["email"],
        payload=payload,
        outcome=LeadWrite.Outcome.FAILED,
    )
    client = connection_client(
        connection=connection, max_wait=WEB_MAX_WAIT, interactive=True
    )
    try:
        return _post(client, connection, write, data, confirmed, earlier)
    finally:
        client.close()


def _post(client, connection, write, data, confirmed, earlier):
    try:
        answer = client.create_lead(write.payload)
    except cinc_errors.DuplicateEmail as exc:
        return _duplicate(client, connection, write, exc, data, confirmed, earlier)
    except cinc_errors.InvalidFields as exc:
        _record(write, LeadWrite.Outcome.INVALID, exc, {"errors": exc.errors})
        return CreateResult(
            Outcome.INVALID,
            "CINC refused some of the details; see the messages next to them.",
            write=write,
            errors=exc.errors,
        )
    except (cinc_errors.UpstreamError, cinc_errors.MalformedResponse) as exc:
        _record(write, LeadWrite.Outcome.UNKNOWN, exc)
        logger.warning(
            "Connection %s: lead POST without a usable answer (%s); outcome unknown",
            connection.pk,
            type(exc).__name__,
            extra={"connection_id": connection.pk},
        )
        what = (
            "CINC did not answer in time"
            if getattr(exc, "kind", None) == "timeout"
            else "CINC's answer was lost or unreadable"
        )
        return CreateResult(
            Outcome.UNKNOWN,
            f"{what}, so the lead may or may not have been created. The portal "
            "will not send it twice: the next sync shows it if it exists, and "
            "sending the form again checks first.",
            write=write,
        )
    except (cinc_errors.CincError, ConnectionUnavailable) as exc:
        _record(write, LeadWrite.Outcome.FAILED, exc)
        return CreateResult(Outcome.FAILED, _failure_message(exc), write=write)
    return _stored(client, connection, write, answer, confirmed, earlier)


def _stored(client, connection, write, answer, confirmed, earlier):
    outcome = LeadWrite.Outcome.CREATED if answer.created else LeadWrite.Outcome.UPDATED
    write.status_code = 201 if answer.created else 200
    write.response = {"lead": {"id": answer.id}, "created": answer.created}
    write.outcome = outcome
    lead = _fetch_into_mirror(client, connection, answer.id)
    write.lead = lead
    write.save()
    _resolve(earlier, lead)
    logger.info(
        "Connection %s: lead %s %s in CINC by broker %s",
        connection.pk,
        answer.id,
        outcome,
        write.broker_id,
        extra={"connection_id": connection.pk},
    )

    if answer.created:
        message = "Lead created in CINC."
        if earlier is not None:
            message += " (The earlier unanswered attempt had not created it.)"
        result = CreateResult(Outcome.CREATED, message, lead=lead, write=write)
    elif confirmed:
        result = CreateResult(
            Outcome.UPDATED, "CINC updated the existing lead.", lead=lead, write=write
        )
    elif earlier is not None:
        result = CreateResult(
            Outcome.UPDATED,
            "The earlier unanswered attempt had created this lead; CINC has "
            "confirmed it with the same details.",
            lead=lead,
            write=write,
        )
    else:
        result = CreateResult(
            Outcome.UPDATED,
            "A lead with this email already existed in CINC (the portal had "
            "not mirrored it yet), and CINC updated it with these details.",
            lead=lead,
            write=write,
            surprise_update=True,
        )
    if lead is None:
        result.message += (
            " The portal could not fetch it from CINC yet; the next sync will show it."
        )
    result.existing_cinc_id = answer.id
    return result


def _duplicate(client, connection, write, exc, data, confirmed, earlier):
    existing_id = exc.existing_id
    _record(write, LeadWrite.Outcome.DUPLICATE, exc, {"existing_id": existing_id})
    lead = _fetch_into_mirror(client, connection, existing_id) if existing_id else None
    if lead is not None:
        write.lead = lead
        write.save(update_fields=["lead"])
    _resolve(earlier, lead)

    if confirmed:
        return CreateResult(
            Outcome.REFUSED,
            "CINC refused to change the existing lead: this site does not let "
            "the API update leads. Change it in CINC instead.",
            lead=lead,
            write=write,
            existing_cinc_id=existing_id,
        )
    result = (
        _exists(connection, lead, data)
        if lead is not None
        else CreateResult(Outcome.EXISTS)
    )
    result.write = write
    result.existing_cinc_id = existing_id
    result.can_update = False
    if earlier is not None:
        result.message = (
            "The earlier unanswered attempt did create this lead: CINC now "
            "says it exists."
        )
    elif lead is None:
        result.message = (
            "CINC says a lead with this email already exists. The next sync "
            "will bring it into the portal."
        )
    else:
        result.message = "CINC says a lead with this email already exists."
    return result


def _exists(connection, lead, data, *, earlier=None):
    return CreateResult(
        Outcome.EXISTS,
        "A lead with this email already exists. Sending the form would "
        "update it (CINC keeps one lead per email).",
        lead=lead,
        changes=lead_changes(lead, data, connection=connection),
        earlier_write=earlier,
    )


def _record(write, outcome, exc, response=None):
    write.outcome = outcome
    write.status_code = getattr(exc, "status", None)
    body = {"error": getattr(exc, "code", None), "detail": getattr(exc, "detail", None)}
    body.update(response or {})
    write.response = body
    write.error = str(exc)[:1000]
    write.save()


def _failure_message(exc):
    if isinstance(exc, ConnectionUnavailable):
        return str(exc) + " Nothing was sent."
    if isinstance(exc, cinc_errors.RateLimited):
        seconds = exc.retry_after or 20
        return (
            "CINC is busy (rate limit), so nothing was sent. Please try again "
            f"in about {max(1, round(seconds))} seconds."
        )
    if isinstance(exc, cinc_errors.MissingScope):
        return (
            "CINC refused: this connection may not create leads (api:create). "
            "Reconnect and approve creating leads."
        )
    return f"CINC refused the lead ({exc}). Nothing was created."


def _fetch_into_mirror(client, connection, cinc_id):
    """GET the lead by id and upsert it into the mirror; None on failure."""
    try:
        record = client.lead(cinc_id)
    except (cinc_errors.CincError, ConnectionUnavailable) as exc:
        logger.warning(
            "Connection %s: could not fetch lead %s after writing it (%s)",
            connection.pk,
            cinc_id,
            type(exc).__name__,
            extra={"connection_id": connection.pk},
        )
        return None
    upsert_leads(connection=connection, records=[record])
    return Lead.objects.filter(
        connection=connection, cinc_id=str(record.get("id") or cinc_id)
    ).first()


def _unanswered_write(*, connection, email):
    if not email:
        return None
    return (
        LeadWrite.objects.filter(
            connection=connection,
            email__iexact=email,
            outcome=LeadWrite.Outcome.UNKNOWN,
            lead__isnull=True,
            created_at__gte=timezone.now() - UNKNOWN_WINDOW,
        )
        .order_by("-created_at")
        .first()
    )


def _resolve(earlier, lead):
    """Link an unanswered write to the lead it turned out to concern."""
    if earlier is not None and lead is not None:
        LeadWrite.objects.filter(pk=earlier.pk, lead__isnull=True).update(lead=lead)


# What would change ------------------------------------------------------------


def _shown(key, value, agents):
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if key in PRICE_KEYS:
        amount = Decimal(str(value))
        return (
            f"${amount:,.0f}" if amount == amount.to_integral() else f"${amount:,.2f}"
        )
    if key in AGENT_KEYS:
        agent = agents.get(value)
        return f"{agent} ({value})" if agent else value
    return str(value)


def _same(key, current, new):
    if key in PRICE_KEYS:
        if current in (None, "") or new in (None, ""):
            return current in (None, "") and new in (None, "")
        return Decimal(str(current)) == Decimal(str(new))
    if isinstance(current, bool) or isinstance(new, bool):
        return bool(current) == bool(new)
    return (current or "") == (new or "")


def lead_changes(lead, data, *, connection):
    """The fields that sending ``data`` would change on ``lead``; a blank
    means CINC would clear the value (an upsert resets what is left out)."""
    new = dict(data)
    if not new.get("is_buyer"):
        for key in BUYER_KEYS:
            new[key] = None
    if not new.get("is_seller"):
        new["seller_timeline"] = None
    ids = {lead_value for lead_value in (new.get(k) for k in AGENT_KEYS) if lead_value}
    ids |= {
        value
        for value in (
            lead.primary_agent_cinc_id,
            lead.listing_agent_cinc_id,
            lead.partner_cinc_id,
        )
        if value
    }
    agents = {
        agent.cinc_id: agent
        for agent in Agent.objects.filter(connection=connection, cinc_id__in=ids).only(
            *selectors.AGENT_NAME_FIELDS
        )
    }
    changes = []
    for label, key, column in COMPARED:
        current = getattr(lead, column)
        if key == "email" and (current or "").lower() == (new.get(key) or "").lower():
            continue
        if not _same(key, current, new.get(key)):
            changes.append(
                Change(
                    label,
                    _shown(key, current, agents),
                    _shown(key, new.get(key), agents),
                )
            )
    return changes


def lead_form_values(lead):
    """The mirrored lead as new-lead form values (agents by their uuid)."""
    values = {}
    for _label, key, column in COMPARED:
        if key in AGENT_KEYS:
            continue
        value = getattr(lead, column)
        if isinstance(value, bool):
            value = "on" if value else ""
        values[key] = "" if value is None else str(value)
    for role in ("primary_agent", "listing_agent", "partner"):
        agent = getattr(lead, role)
        values[role] = str(agent.uuid) if agent is not None else ""
    return values


def payload_changes(old, new):
    """Differences between two POST bodies, by dotted path."""
    flat_old, flat_new = _flatten(old), _flatten(new)
    return [
        Change(path, _text(flat_old.get(path)), _text(flat_new.get(path)))
        for path in sorted(set(flat_old) | set(flat_new))
        if flat_old.get(path) != flat_new.get(path)
    ]


def _flatten(value, prefix=""):
    if not isinstance(value, dict):
        return {prefix: value}
    flat = {}
    for key, item in value.items():
        flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _text(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return str(value)


# Confirmation ----------------------------------------------------------------


def _canonical(data):
    canonical = {}
    for key, value in sorted(data.items()):
        if isinstance(value, Decimal):
            value = format(value.normalize(), "f")
        elif value is None:
            value = ""
        canonical[key] = value
    return canonical


def confirmation_token(*, connection, broker, data):
    """A signed token of exactly this form data, for the confirming POST."""
    return signing.dumps(
        {"c": str(connection.uuid), "b": broker.pk, "d": _canonical(data)},
        salt=CONFIRM_SALT,
        compress=True,
    )


def confirmation_valid(*, token, connection, broker, data):
    """True when ``token`` was issued for this broker, connection and data,
    less than ``CONFIRM_MAX_AGE`` seconds ago."""
    if not token or len(token) > 20_000:
        return False
    try:
        signed = signing.loads(token, salt=CONFIRM_SALT, max_age=CONFIRM_MAX_AGE)
    except signing.BadSignature:
        return False
    return signed == {
        "c": str(connection.uuid),
        "b": broker.pk,
        "d": _canonical(data),
    }
