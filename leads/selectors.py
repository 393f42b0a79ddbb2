"""Reads of the mirror, always scoped to the signed-in broker.

Every function takes the broker and only ever returns rows of that broker's
connections; a uuid of another broker's row is a 404, never a page.
"""

import datetime as dt
import hashlib
import uuid as uuid_lib

from django.core.cache import cache
from django.db import connection as db
from django.db.models import (
    Count,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone

from accounts.models import Connection

from .models import Agent, Lead, LeadChange, LeadWrite, SyncRun

# What a row of a lead table shows, read as plain values (``values()``):
# no model instance is made for the lead, its agent or its connection.
LEAD_TABLE_FIELDS = (
    "uuid",
    "cinc_id",
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
    "removed_at",
    "primary_agent__uuid",
    "primary_agent__first_name",
    "primary_agent__last_name",
    "primary_agent__email",
    "primary_agent__cinc_id",
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
# Columns whose distinct values fill a filter menu, and how many are listed.
CHOICE_COLUMNS = ("status", "source")
MAX_CHOICES = 200
# The dashboard's counts are kept under the mirror's version (see
# ``lead_counts``); this only bounds how long an entry nobody asks for stays,
# and how long a change made outside the portal's code (a row deleted in a
# database shell) can go unseen. Deletes in the admin move the version.
COUNTS_CACHE_SECONDS = 10 * 60


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


def connection_ids(*, broker):
    """The ids of the broker's connections (one small query)."""
    return list(
        Connection.objects.filter(broker=broker)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def lead_base(*, broker):
    """Every mirrored lead of the broker, removed ones included.

    The broker's connection ids are read first, so the database is asked for
    ``connection_id = ?`` (or ``IN (...)``) rather than through a join on the
    connection's broker: the per-connection indexes then give the rows in
    the order of a list, and a page is read without sorting every lead.
    """
    return _leads_of(connection_ids(broker=broker))


def _leads_of(ids):
    if len(ids) == 1:
        return Lead.objects.filter(connection_id=ids[0])
    return Lead.objects.filter(connection_id__in=ids)


def lead_table_values(queryset):
    """``queryset`` as dicts of ``LEAD_TABLE_FIELDS``, joins included."""
    return queryset.values(*LEAD_TABLE_FIELDS)


def lead_slice(queryset, *, offset, limit):
    """Table rows ``offset`` to ``offset + limit`` of the ordered
    ``queryset``, as dicts of ``LEAD_TABLE_FIELDS``.

    One query. The rows are first found by id alone, in a subquery that the
    sort's index answers without reading the leads themselves, and only
    those ``limit`` leads are then read: a deep page skips index entries,
    not whole rows.
    """
    ordering = queryset.query.order_by or Lead._meta.ordering
    ids = queryset.order_by(*ordering).values("pk")[offset : offset + limit]
    rows = lead_table_values(Lead.objects.filter(pk__in=ids)).order_by(*ordering)
    return list(rows)


def lead_count_upto(queryset, limit):
    """How many rows ``queryset`` has, counting no further than ``limit``.

    Only ``connection_id`` is selected, so that a filter on the columns of
    ``lead_facets`` is counted from that index alone.
    """
    return queryset.order_by().values("connection_id")[:limit].count()


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
    """The lead's last 200 changes, newest first, each with ``old_label``
    and ``new_label``: the value, or for an assignment the agent's name
    (the CINC id when the agent is not mirrored)."""
    changes = list(
        LeadChange.objects.filter(lead=lead).order_by("-changed_at", "-pk")[:200]
    )
    agent_ids = {
        value
        for change in changes
        if change.field != LeadChange.Field.STATUS
        for value in (change.old_value, change.new_value)
        if value
    }
    names = {}
    if agent_ids:
        agents = Agent.objects.filter(
            connection_id=lead.connection_id, cinc_id__in=agent_ids
        ).only("cinc_id", "first_name", "last_name", "email")
        names = {agent.cinc_id: str(agent) for agent in agents}
    for change in changes:
        change.old_label, change.new_label = change.old_value, change.new_value
        if change.field != LeadChange.Field.STATUS:
            change.old_label = names.get(change.old_value, change.old_value)
            change.new_label = names.get(change.new_value, change.new_value)
    return changes


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
    broker's leads, for filter menus.

    A ``SELECT DISTINCT`` would read every lead. This walks the column's
    index instead, one value after the other (the smallest value greater
    than the last one found, per connection), so it costs one index probe
    per distinct value, however many leads have it.
    """
    if column not in CHOICE_COLUMNS:
        raise ValueError(f"No filter menu for {column!r}.")
    # Only names from the models go into the text (quoted); values are
    # parameters.
    quote = db.ops.quote_name
    leads = quote(Lead._meta.db_table)
    site = quote(Lead._meta.get_field("connection").column)
    name = quote(Lead._meta.get_field(column).column)
    connections = quote(Connection._meta.db_table)
    broker_column = quote(Connection._meta.get_field("broker").column)
    sql = f"""
        WITH RECURSIVE walk(site_id, found, depth) AS (
            SELECT c.id, (
                SELECT MIN({name}) FROM {leads} WHERE {site} = c.id AND {name} > %s
            ), 1
            FROM {connections} c WHERE c.{broker_column} = %s
            UNION ALL
            SELECT walk.site_id, (
                SELECT MIN({name}) FROM {leads}
                WHERE {site} = walk.site_id AND {name} > walk.found
            ), walk.depth + 1
            FROM walk WHERE walk.found IS NOT NULL AND walk.depth < %s
        )
        SELECT DISTINCT found FROM walk WHERE found IS NOT NULL
        ORDER BY found LIMIT %s
    """  # noqa: S608
    with db.cursor() as cursor:
        cursor.execute(sql, ["", broker.pk, MAX_CHOICES, MAX_CHOICES])
        return [row[0] for row in cursor.fetchall()]


def recent_leads(*, broker, limit=RECENT_LEADS):
    """The newest leads CINC still has, as dicts of ``LEAD_TABLE_FIELDS``."""
    leads = lead_base(broker=broker).filter(removed_at__isnull=True)
    rows = lead_table_values(leads).order_by("-registered_at", "-pk")
    return list(rows[:limit])


def mirror_versions(*, broker):
    """``(id, uuid, mirror_version)`` of each of the broker's connections,
    by id. ``mirror_version`` moves with every write to a connection's
    mirrored leads and agents, in the same transaction."""
    return list(
        Connection.objects.filter(broker=broker)
        .order_by("pk")
        .values_list("pk", "uuid", "mirror_version")
    )


def lead_counts(*, broker):
    """Counts for the dashboard: total, by status and by source (the top
    sources and "Other"), of the leads CINC still has.

    Counting reads every lead, so the counts are kept in the cache under
    the broker and the id, uuid and ``mirror_version`` of each of their
    connections: any write to the mirror makes a new key, so what is
    served is never older than the mirror. The versions are read before the
    leads are counted, so counts stored under a version are at least as new
    as it. (The uuid keeps apart connections whose ids a database reused:
    the tests' rolled-back rows.)
    """
    versions = mirror_versions(broker=broker)
    mirror = ",".join(f"{pk}.{uuid.hex}.{version}" for pk, uuid, version in versions)
    # Hashed: a key stays short (memcached takes 250 characters) however
    # many sites the broker has.
    digest = hashlib.sha256(mirror.encode()).hexdigest()
    key = f"leads:counts:v1:{broker.pk}:{digest}"
    counts = cache.get(key)
    if counts is None:
        counts = _count_leads([pk for pk, _uuid, _version in versions])
        cache.set(key, counts, COUNTS_CACHE_SECONDS)
    return counts


def _count_leads(ids):
    """One pass over the ``lead_facets`` index (a count per status and
    source pair) of the leads of connections ``ids``, added up here."""
    pairs = (
        _leads_of(ids)
        .filter(removed_at__isnull=True)
        .values("status", "source")
        .annotate(count=Count("*"))
        .order_by()
    )
    by_status, by_source = {}, {}
    for row in pairs:
        by_status[row["status"]] = by_status.get(row["status"], 0) + row["count"]
        by_source[row["source"]] = by_source.get(row["source"], 0) + row["count"]
    total = sum(by_status.values())
    by_status = _largest_first("status", by_status)
    by_source = _largest_first("source", by_source)
    if len(by_source) > TOP_SOURCES:
        other = sum(row["count"] for row in by_source[TOP_SOURCES:])
        by_source = by_source[:TOP_SOURCES] + [{"source": None, "count": other}]
    return {"total": total, "by_status": by_status, "by_source": by_source}


def _largest_first(name, counts):
    """``{value: count}`` as rows, the largest count first, then by name."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [{name: value, "count": count} for value, count in ordered]


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
    """The agent's leads by role: {role: (rows, total)}, removed ones last;
    rows are dicts of ``LEAD_TABLE_FIELDS``."""
    result = {}
    for role in ("primary_agent", "listing_agent", "partner"):
        leads = Lead.objects.filter(**{role: agent})
        ordered = leads.order_by("removed_at", "-registered_at", "-pk")
        rows = lead_table_values(ordered)[:limit]
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
