"""Reads of the mirror, always scoped to the signed-in broker.

Every function takes the broker and only ever returns rows of that broker's
connections; a uuid of another broker's row is a 404, never a page.
"""

import datetime as dt
import uuid as uuid_lib

from django.db.models import Count, IntegerField, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone

from accounts.models import Connection

from .models import Agent, Lead, LeadChange, LeadWrite, SyncRun

# Columns a lead row of a list, the dashboard or the CSV needs; with
# select_related these keep one query per page, whatever its length.
LEAD_ROW_FIELDS = (
    "uuid",
    "cinc_id",
    "connection_id",
    "registered_at",
    "first_name",
    "last_name",
    "email",
    "cell_phone",
    "home_phone",
    "work_phone",
    "office_phone",
    "city",
    "state",
    "status",
    "source",
    "is_buyer",
    "is_seller",
    "removed_at",
    "primary_agent__uuid",
    "primary_agent__first_name",
    "primary_agent__last_name",
    "primary_agent__email",
    "primary_agent__cinc_id",
    "connection__uuid",
    "connection__cinc_username",
    "connection__cinc_agent_name",
)
AGENT_NAME_FIELDS = ("uuid", "cinc_id", "first_name", "last_name", "email")
DOCUMENTED_LEAD_STATUSES = ("unworked", "inprogress", "closed", "trash")
DOCUMENTED_AGENT_STATUSES = ("active", "inactive", "onvacation", "disabled", "deleted")
CHART_WEEKS = 12
TOP_SOURCES = 8
RECENT_LEADS = 10
AGENT_PAGE_LEADS = 25


# Connections -----------------------------------------------------------------


def owned_uuid(*, broker, model, value):
    """The row of ``model`` (Connection, Agent) named by ``value`` for this
    broker; None when ``value`` is not a uuid at all (bad input, shown as a
    message), 404 when it is a uuid the broker does not own."""
    try:
        key = uuid_lib.UUID(str(value))
    except ValueError:
        return None
    if model is Connection:
        rows = Connection.objects.filter(broker=broker)
    else:
        rows = model.objects.filter(connection__broker=broker)
    row = rows.filter(uuid=key).first()
    if row is None:
        raise Http404("No such record for this broker.")
    return row


def connection_cards(*, broker):
    """The broker's connections, each with ``latest_run`` (the newest full
    sync, or None) and ``active_run`` (a queued or running one, or None)."""
    connections = list(
        Connection.objects.filter(broker=broker).order_by("connected_at")
    )
    for connection in connections:
        runs = SyncRun.objects.filter(connection=connection, kind=SyncRun.Kind.FULL)
        connection.latest_run = runs.order_by("-created_at", "-pk").first()
        latest = connection.latest_run
        connection.active_run = latest if latest and latest.is_active else None
        connection.last_finished_run = (
            latest
            if latest and not latest.is_active
            else runs.exclude(
                status__in=[SyncRun.Status.QUEUED, SyncRun.Status.RUNNING]
            )
            .order_by("-created_at", "-pk")
            .first()
        )
    return connections


def sync_run_latest(*, connection):
    """The newest full sync of a connection (already scoped by the caller)."""
    return (
        SyncRun.objects.filter(connection=connection, kind=SyncRun.Kind.FULL)
        .order_by("-created_at", "-pk")
        .first()
    )


# Leads -----------------------------------------------------------------------


def lead_base(*, broker):
    """Every mirrored lead of the broker, removed ones included."""
    return Lead.objects.filter(connection__broker=broker)


def lead_rows(queryset):
    """``queryset`` trimmed to what a list row shows, joins included."""
    return queryset.select_related("primary_agent", "connection").only(*LEAD_ROW_FIELDS)


def lead_get(*, broker, uuid):
    return get_object_or_404(
        Lead.objects.select_related(
            "connection", "primary_agent", "listing_agent", "partner"
        ),
        connection__broker=broker,
        uuid=uuid,
    )


def owned_lead(*, broker, connection, value):
    """The broker's lead of ``connection`` with uuid ``value``, or None."""
    try:
        key = uuid_lib.UUID(str(value))
    except ValueError:
        return None
    return (
        lead_base(broker=broker)
        .filter(connection=connection, uuid=key)
        .select_related("primary_agent", "listing_agent", "partner")
        .first()
    )


def lead_history(*, lead):
    return list(
        LeadChange.objects.filter(lead=lead).order_by("-changed_at", "-pk")[:200]
    )


def lead_writes(*, lead):
    return list(
        LeadWrite.objects.filter(lead=lead)
        .select_related("broker")
        .order_by("-created_at")[:50]
    )


def lead_by_email(*, connection, email):
    """The mirrored lead of ``connection`` with this email (any case), if any
    that CINC still has."""
    if not email:
        return None
    return (
        Lead.objects.filter(
            connection=connection, email__iexact=email.strip(), removed_at__isnull=True
        )
        .select_related("primary_agent", "listing_agent", "partner")
        .order_by("pk")
        .first()
    )


def lead_choices(*, broker, column):
    """Distinct non-empty values of ``column`` (status, source) among the
    broker's leads, for filter menus."""
    values = (
        lead_base(broker=broker)
        .exclude(**{column: ""})
        .order_by(column)
        .values_list(column, flat=True)
        .distinct()
    )
    return list(values[:200])


def recent_leads(*, broker, limit=RECENT_LEADS):
    rows = lead_rows(lead_base(broker=broker).filter(removed_at__isnull=True))
    return list(rows.order_by("-registered_at", "-pk")[:limit])


def lead_counts(*, broker):
    """Counts for the dashboard: total, by status and by source (the top
    sources and "Other"), of the leads CINC still has."""
    leads = lead_base(broker=broker).filter(removed_at__isnull=True)
    by_status = list(
        leads.values("status").annotate(count=Count("pk")).order_by("-count", "status")
    )
    by_source = list(
        leads.values("source").annotate(count=Count("pk")).order_by("-count", "source")
    )
    total = sum(row["count"] for row in by_status)
    if len(by_source) > TOP_SOURCES:
        other = sum(row["count"] for row in by_source[TOP_SOURCES:])
        by_source = by_source[:TOP_SOURCES] + [{"source": None, "count": other}]
    return {"total": total, "by_status": by_status, "by_source": by_source}


def weekly_new_leads(*, broker, weeks=CHART_WEEKS, now=None):
    """New leads per week (weeks start on Monday, in the broker's timezone)
    for the last ``weeks`` weeks, oldest first, empty weeks included.

    One query of per-week filtered counts: the week bounds are computed here,
    in local time, so daylight-saving changes fall where the broker sees them
    and the database needs no date function per row.
    """
    now = timezone.localtime(now)
    this_monday = (now - dt.timedelta(days=now.weekday())).date()
    mondays = [this_monday - dt.timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]
    starts = [
        timezone.make_aware(dt.datetime.combine(day, dt.time.min)) for day in mondays
    ]
    ends = starts[1:] + [
        timezone.make_aware(
            dt.datetime.combine(this_monday + dt.timedelta(weeks=1), dt.time.min)
        )
    ]
    leads = lead_base(broker=broker).filter(
        registered_at__gte=starts[0], registered_at__lt=ends[-1]
    )
    counts = leads.aggregate(
        **{
            f"week{n}": Count(
                "pk", filter=Q(registered_at__gte=start, registered_at__lt=end)
            )
            for n, (start, end) in enumerate(zip(starts, ends, strict=True))
        }
    )
    return [
        {"week": day, "count": counts[f"week{n}"] or 0} for n, day in enumerate(mondays)
    ]


# Agents ----------------------------------------------------------------------


def _lead_count(role):
    leads = (
        Lead.objects.filter(**{role: OuterRef("pk")}, removed_at__isnull=True)
        .order_by()
        .values(role)
        .annotate(count=Count("pk"))
        .values("count")
    )
    return Coalesce(Subquery(leads, output_field=IntegerField()), Value(0))


def agent_base(*, broker):
    return Agent.objects.filter(connection__broker=broker)


def agent_list(*, broker):
    """The broker's agents with their lead counts per role (one query)."""
    return (
        agent_base(broker=broker)
        .select_related("connection")
        .only(
            "uuid",
            "cinc_id",
            "first_name",
            "last_name",
            "email",
            "cell_phone",
            "status",
            "removed_at",
            "connection__uuid",
            "connection__cinc_username",
            "connection__cinc_agent_name",
        )
        .annotate(
            primary_count=_lead_count("primary_agent"),
            listing_count=_lead_count("listing_agent"),
            partner_count=_lead_count("partner"),
        )
    )


def agent_get(*, broker, uuid):
    return get_object_or_404(
        Agent.objects.select_related("connection"), connection__broker=broker, uuid=uuid
    )


def agent_leads(*, agent, limit=AGENT_PAGE_LEADS):
    """The agent's leads by role: {role: (rows, total)}, removed ones last."""
    result = {}
    for role in ("primary_agent", "listing_agent", "partner"):
        leads = Lead.objects.filter(**{role: agent})
        rows = lead_rows(leads).order_by("removed_at", "-registered_at", "-pk")[:limit]
        result[role] = (list(rows), leads.count())
    return result


def agent_choices(*, broker, connection=None):
    """Agents for a menu: the broker's (or one connection's) still in CINC."""
    agents = agent_base(broker=broker).filter(removed_at__isnull=True)
    if connection is not None:
        agents = agents.filter(connection=connection)
    return agents.only(*AGENT_NAME_FIELDS, "connection_id").order_by(
        "last_name", "first_name", "pk"
    )


def search_q(text):
    """The search box: every word must match the name, email or phone.

    Searches ``Lead.search_text`` (lower-case name, email and phone digits,
    kept by ``leads.sync``). A query that is only a phone number (digits
    with spaces, dashes, dots, brackets or a plus) matches the digits,
    however the number was written.
    """
    text = " ".join(text.split())
    if not text:
        return Q()
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) >= 3 and all(ch.isdigit() or ch in " -.()+" for ch in text):
        return Q(search_text__contains=digits)
    query = Q()
    for word in text.lower().split(" ")[:8]:
        query &= Q(search_text__contains=word)
    return query
