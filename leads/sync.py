"""The sync: mirror one connection's CINC agents and leads into the database.

A run checks access (``me``), walks every page of agents, then every page of
leads, then finishes: what the complete walk no longer found is marked
removed, and the run succeeds. Each page is written in its own transaction
together with the run's progress (``phase`` and ``next_offset``) and the ids
the page held (a ``SyncRunPage`` row). So a run that stops - a long
rate-limit wait that reschedules the task, a crash, an upstream failure -
leaves a consistent mirror, and a resumed run continues after the last page
it committed.

Public functions:

- ``sync_start(connection=)``: the connection's active run, or a new queued
  run whose Celery task is sent when the transaction commits.
- ``sync_connection(connection_id=, sync_run_id=None, progress=None)``: claim
  and run (or resume) a run in this process; used by the task and by the
  ``cinc_sync`` command.
- ``sync_resume_later(run=, countdown=)``: send the task of a run that
  stopped for a long rate-limit wait again, with a countdown.
- ``sync_close_stale(connection=None)``: close runs that stopped showing
  signs of life, so none stays "running" forever.
- ``upsert_agents`` / ``upsert_leads``: the bulk write of raw CINC records,
  also used by lead refresh and lead creation.
"""

import bisect
import contextlib
import hashlib
import json
import logging
import math
import operator
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from functools import partial
from itertools import pairwise

import orjson
from django.conf import settings
from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    connections,
    transaction,
)
from django.db.models import F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Connection
from accounts.services import ConnectionUnavailable, connection_client
from cinc.errors import (
    CincError,
    MalformedResponse,
    MissingScope,
    NotBroker,
    NotFound,
    RateLimited,
    RecordError,
    UpstreamError,
)
from cinc.records import parse_agent, parse_lead

from .models import Agent, Lead, LeadChange, SyncRun, SyncRunPage

logger = logging.getLogger(__name__)

# Records asked for per page (CINC's maximum).
PAGE_SIZE = 500
# Pages per phase before a run gives up (1,000,000 records at 500 a page):
# a server that never sends a short page cannot keep a run going forever.
MAX_PAGES = 2000
# Pages written in one transaction at most, and only while the next page
# has already been fetched (see _Sync._pages). Each commit writes every
# index page its rows touched: a commit every 10 pages instead of every
# page took a 100,000-lead first sync's writes from 5,000 to 7,000 leads/s
# on SQLite and from 5,200 to 7,800 on PostgreSQL (writes benchmark).
GROUP_PAGES = 10
# Up to this many records missing from a complete walk are looked up one by
# one before being marked removed: offset paging skips a row when a record
# before it is deleted mid-walk. More than this looks like a real mass
# removal and is not worth the requests.
CONFIRM_REMOVALS_UP_TO = 25
# Records on either side of a boundary between two pages whose pks bound
# the rows a shifted walk may have skipped there (see _Sync._seams).
SEAM_RECORDS = 5
# Unreadable records named in the run's error text (all are counted).
MAX_ERROR_NOTES = 5
# How often the run's request counters and heartbeat are saved between pages.
HEARTBEAT_SECONDS = 5.0
# Finished runs are deleted after this many days (the newest full sync of
# each connection is always kept); the setting CINC_SYNC_RUNS_KEPT_DAYS
# overrides it.
RUNS_KEPT_DAYS = 30
# A run without a sign of life for this long is closed as failed; the
# setting CINC_SYNC_STALE_AFTER (seconds) overrides it.
STALE_AFTER_SECONDS = 600
# A run still waiting for the rate limit this long after it started gives up
# (a 1,000,000-lead site needs well under an hour at CINC's documented rate).
MAX_RUN_AGE = timedelta(hours=12)
# A rescheduled run may be claimed this early (clocks of different hosts);
# its task's countdown already ends a second after the wait.
WAKE_SLACK = timedelta(seconds=0.5)
# Ids per ``IN (...)`` query, under SQLite's smallest variable limit.
ID_CHUNK = 500
# Part of every content hash: bump it when the columns computed from a record
# change, so that the next sync rewrites every row once.
COLUMNS_VERSION = 1

ACTIVE_STATUSES = (SyncRun.Status.QUEUED, SyncRun.Status.RUNNING)
Phase = SyncRun.Phase


# Writing records -------------------------------------------------------------


@dataclass
class UpsertCounts:
    """What one batch of raw records did to the mirror.

    ``ids`` holds every CINC id in the batch, including those of records
    that could not be read, so a complete walk does not mark them removed.
    """

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    history: int = 0
    errors: list = field(default_factory=list)
    ids: list = field(default_factory=list)

    @property
    def record_errors(self):
        return len(self.errors)

    @property
    def seen(self):
        return self.created + self.updated + self.unchanged + len(self.errors)


def content_hash(raw):
    """SHA-256 of the record as canonical JSON (sorted keys, no spaces)."""
    return _hashed(raw).digest


@dataclass
class _Hashed:
    """A raw record with its content hash and the JSON text to store.

    ``clean`` is False when the record held NUL characters or lone
    surrogates, which databases refuse: ``raw`` and ``text`` are then a
    cleaned copy, while the hash stays the one of the record as sent
    (``sent``, which is also what gets parsed).
    """

    raw: dict
    digest: str
    text: str
    clean: bool
    sent: dict


def _dumps(raw):
    return json.dumps(
        raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


# orjson writes the canonical JSON of a plain record (str, int, float, bool,
# None, dict, list) byte for byte as ``_dumps`` does, in a third of the time
# (10 -> 4.6 us a sandbox lead; the hash was the largest Python step of a
# new lead's write). Where the two could differ, the record takes
# ``_dumps``: orjson refuses integers beyond 64 bits, lone surrogates,
# non-string keys and (with the passthrough options) datetimes, dataclasses
# and subclasses of the JSON types; it writes NaN and Infinity as ``null``,
# so any ``null`` sends the record the slow way. One difference is left in
# what JSON can hold: floats under 1e-4 print as 0.00001 instead of 1e-05,
# so such a record hashed before orjson was used is rewritten once. (Enums
# and UUIDs, which no JSON reader makes, orjson writes its own way.)
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
_CANONICAL_HEAD = f"[{COLUMNS_VERSION},".encode()


def _hashed(raw):
    try:
        data = orjson.dumps(raw, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return _hashed_slowly(raw)
    if b"null" in data or b"\\u0000" in data:
        return _hashed_slowly(raw)
    digest = hashlib.sha256(_CANONICAL_HEAD + data + b"]").hexdigest()
    return _Hashed(raw, digest, data.decode(), clean=True, sent=raw)


def _hashed_slowly(raw):
    text = _dumps(raw)
    # The hash covers COLUMNS_VERSION too, as the canonical JSON of the pair
    # [COLUMNS_VERSION, raw] (the same bytes json.dumps of that list gives).
    canonical = f"[{COLUMNS_VERSION},{text}]"
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    stored, clean = raw, True
    if "\\u0000" in text or not _encodable(text):
        stored, clean = _storable(raw), False
    if "NaN" in text or "Infinity" in text:
        # Python's JSON reader accepts NaN and Infinity (and reads 1e400 as
        # Infinity), but they are not JSON: PostgreSQL refuses them. The
        # stored copy spells them as strings.
        try:
            json.dumps(stored, allow_nan=False, default=str)
        except ValueError:
            stored = _finite(stored)
    if stored is raw:
        return _Hashed(raw, digest, text, clean=True, sent=raw)
    return _Hashed(stored, digest, _dumps(stored), clean=clean, sent=raw)


def _encodable(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _clean_text(text):
    text = text.replace("\x00", "")
    if not _encodable(text):
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value).replace("inf", "Infinity").replace("nan", "NaN")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _storable(value):
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    return value


AGENT_FIELDS = [
    "registered_at",
    "first_name",
    "last_name",
    "email",
    "cell_phone",
    "home_phone",
    "work_phone",
    "office_phone",
    "street",
    "city",
    "state",
    "zip_code",
    "status",
]
LEAD_FIELDS = AGENT_FIELDS + [
    "source",
    "is_buyer",
    "is_seller",
    "buyer_median_price",
    "buyer_average_price",
    "buyer_favorite_city",
    "buyer_timeline",
    "seller_timeline",
    "primary_agent_cinc_id",
    "listing_agent_cinc_id",
    "partner_cinc_id",
    "search_text",
]
# Written on every create or update; never uuid, connection, cinc_id or
# first_seen_at.
STATE_FIELDS = ["raw", "content_hash", "changed_at", "removed_at"]
AGENT_WRITE_FIELDS = AGENT_FIELDS + STATE_FIELDS
LEAD_WRITE_FIELDS = (
    LEAD_FIELDS + ["primary_agent", "listing_agent", "partner"] + STATE_FIELDS
)
# Lead columns whose changes become LeadChange rows.
HISTORY = (
    (LeadChange.Field.STATUS, "status"),
    (LeadChange.Field.PRIMARY_AGENT, "primary_agent_cinc_id"),
    (LeadChange.Field.LISTING_AGENT, "listing_agent_cinc_id"),
    (LeadChange.Field.PARTNER, "partner_cinc_id"),
)
AGENT_ROLES = (
    ("primary_agent", "primary_agent_cinc_id"),
    ("listing_agent", "listing_agent_cinc_id"),
    ("partner", "partner_cinc_id"),
)
MONEY_LIMIT = Decimal(10) ** 12  # max_digits=14, decimal_places=2
CENT = Decimal("0.01")


def _contact_columns(record):
    return {
        "registered_at": record.registered_at,
        "first_name": record.first_name or "",
        "last_name": record.last_name or "",
        "email": record.email or "",
        "cell_phone": record.cell_phone or "",
        "home_phone": record.home_phone or "",
        "work_phone": record.work_phone or "",
        "office_phone": record.office_phone or "",
        "street": record.street or "",
        "city": record.city or "",
        "state": record.state or "",
        "zip_code": record.zip or "",
        "status": record.status or "",
    }


def _agent_columns(record, *, clean=False):
    return _fit(Agent, _contact_columns(record), clean=clean)


def _lead_columns(record, *, clean=False):
    columns = _contact_columns(record)
    columns.update(
        source=record.source or "",
        is_buyer=record.is_buyer,
        is_seller=record.is_seller,
        buyer_median_price=_money(record.buyer_median_price),
        buyer_average_price=_money(record.buyer_average_price),
        buyer_favorite_city=record.favorite_city or "",
        buyer_timeline=record.buyer_timeline or "",
        seller_timeline=record.seller_timeline or "",
        primary_agent_cinc_id=record.primary_agent_id or "",
        listing_agent_cinc_id=record.listing_agent_id or "",
        partner_cinc_id=record.partner_agent_id or "",
    )
    columns = _fit(Lead, columns, clean=clean)
    columns["search_text"] = _search_text(columns)
    return columns


def _search_text(columns):
    parts = [columns["first_name"], columns["last_name"], columns["email"]]
    for kind in ("cell_phone", "home_phone", "work_phone", "office_phone"):
        parts.append("".join(filter(str.isdigit, columns[kind])))
    return " ".join(filter(None, parts)).lower()


def _money(value):
    """A price that fits the column, or None (the raw record keeps it)."""
    if value is None:
        return None
    try:
        value = value.quantize(CENT)
    except InvalidOperation:
        return None
    return value if abs(value) < MONEY_LIMIT else None


_LENGTHS = {}


def _max_lengths(model):
    """{field name: max_length} of the model's length-limited fields."""
    if model not in _LENGTHS:
        _LENGTHS[model] = {
            f.name: f.max_length
            for f in model._meta.concrete_fields
            if getattr(f, "max_length", None)
        }
    return _LENGTHS[model]


def _fit(model, columns, *, clean=False):
    """Cut strings to their column's length and drop what databases refuse
    (NUL characters, lone surrogates); the raw record keeps the full value.

    ``clean=True`` says the record's JSON text was already found free of
    both, so only the lengths are checked.
    """
    lengths = _max_lengths(model)
    for name, value in columns.items():
        if isinstance(value, str):
            fitted = value if clean else _clean_text(value)
            limit = lengths.get(name)
            if limit and len(fitted) > limit:
                fitted = fitted[:limit]
            if fitted is not value:
                columns[name] = fitted
    return columns


def _raw_id(raw):
    """The id of a raw record as the parser reads it, or None."""
    value = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _chunks(items, size=ID_CHUNK):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _batch(records, parse, model):
    """Read the ids of a batch of raw records and pick the copy of each to
    write: {cinc_id: raw}, {cinc_id: parsed record} (only for ids sent more
    than once, where the last readable copy wins), and the counts with the
    unreadable records and every id.

    Records are not parsed here when their id is readable and sent once:
    an unchanged record (same content hash as its stored row) never needs
    parsing at all.
    """
    counts = UpsertCounts()
    limit = _max_lengths(model)["cinc_id"]
    copies = {}
    for raw in records:
        record_id = _raw_id(raw)
        if record_id is None:
            try:
                parse(raw)  # raises the RecordError that says what is wrong
            except RecordError as exc:
                counts.errors.append(exc)
            continue
        if len(record_id) > limit:
            counts.errors.append(RecordError(f"id longer than {limit} characters"))
            continue
        if "\x00" in record_id or not _encodable(record_id):
            # A NUL or a lone surrogate: no database stores it, and even the
            # read of the page's stored rows would fail on it.
            counts.errors.append(RecordError("id holds characters no database stores"))
            continue
        copies.setdefault(record_id, []).append(raw)
    chosen, parsed = {}, {}
    for record_id, raws in copies.items():
        if len(raws) == 1:
            chosen[record_id] = raws[0]
            continue
        for raw in raws:
            try:
                parsed[record_id] = parse(raw)
            except RecordError as exc:
                counts.errors.append(exc)
        if record_id in parsed:
            chosen[record_id] = parsed[record_id].raw
    counts.ids = list(copies)
    return chosen, parsed, counts


def _parsed(record_id, raw, parse, parsed, counts):
    """The parsed record, or None (counted as unreadable)."""
    if record_id in parsed:
        return parsed[record_id]
    try:
        return parse(raw)
    except RecordError as exc:
        counts.errors.append(exc)
        return None


def _existing(model, connection, ids, fields):
    """{cinc_id: {column: value}} of the stored rows among ``ids``.

    One plain query per chunk of ids, through the unique (connection,
    cinc_id) index: Django's ``filter(cinc_id__in=...)`` resolved each of
    the 500 ids through its lookup machinery and, on PostgreSQL, sent them
    as 500 literals (about 20 ms a page of the unchanged re-sync). Values
    come back in database form (dates as SQLite's text on SQLite), which is
    also how they are written back.
    """
    meta = model._meta
    db = connections[model.objects.db]
    quote = db.ops.quote_name
    names = ["cinc_id", *fields]
    columns = ", ".join(
        quote(meta.pk.column if name == "pk" else meta.get_field(name).column)
        for name in names
    )
    query = (
        f"SELECT {columns} FROM {quote(meta.db_table)} "  # noqa: S608 - names from the model
        f"WHERE {quote('connection_id')} = %s AND {quote('cinc_id')}"
    )
    rows = {}
    with db.cursor() as cursor:
        for chunk in _chunks(ids):
            if db.vendor == "postgresql":
                cursor.execute(f"{query} = ANY(%s)", [connection.pk, chunk])
            else:
                holders = ", ".join(["%s"] * len(chunk))
                cursor.execute(f"{query} IN ({holders})", [connection.pk, *chunk])
            for values in cursor.fetchall():
                rows[values[0]] = dict(zip(names, values, strict=True))
    return rows


class _Upsert:
    """The prepared statements that write a page of one model: a plain
    ``INSERT`` for the rows the page's read found missing, and ``INSERT
    ... ON CONFLICT (connection_id, cinc_id) DO UPDATE`` for the others
    (and for any row retried on its own), each sent once for the page.

    New rows skip the ``ON CONFLICT`` clause because it is the costlier
    statement: on SQLite, with foreign keys enforced, an upsert of a new
    lead measured 98 us against 54 us for the plain INSERT (the statements
    alone, 20,000 leads into an empty table), and on PostgreSQL the
    speculative insertion it needs cost about 20 us a lead. A row inserted
    by someone else between the read and the write makes the plain INSERT
    fail; the page is then written row by row with the upsert (or, written
    without a savepoint, the refusal goes up to the sync, which writes the
    page again with one).

    Django's ``bulk_create(update_conflicts=True)`` writes the same rows,
    but builds the SQL one value at a time (36 columns x 500 rows through
    ``get_db_prep_save``) and splits a page into 20 statements on SQLite:
    about half of a page's write time in the writes benchmark. Here the
    statement is built once and the values are put in database form with
    the backend's own adapters (``connection.ops``). ``raw`` is sent as the
    JSON text the content hash was computed from. Written for the two
    databases the portal supports, SQLite and PostgreSQL.
    """

    def __init__(self, model, write_fields):
        meta = model._meta
        self.model = model
        self.fields = [meta.get_field(name) for name in write_fields]
        self.columns = [
            meta.get_field("uuid").column,
            meta.get_field("connection").column,
            meta.get_field("cinc_id").column,
            meta.get_field("first_seen_at").column,
            *(field.column for field in self.fields),
        ]
        self.updated = [field.column for field in self.fields]
        self.writes = [
            (field.attname, field.get_internal_type(), field) for field in self.fields
        ]

    def sql(self, db, source=None, *, new=False):
        """The statement for one row sent with ``executemany``, or for the
        rows of ``source`` (a SELECT); ``new=True`` (rows known to be
        missing) leaves out the ON CONFLICT clause."""
        quote = db.ops.quote_name
        holders = ["%s"] * len(self.columns)
        if db.vendor == "postgresql":
            for position, (_, kind, _) in enumerate(self.writes, start=4):
                if kind == "JSONField":
                    holders[position] = "%s::jsonb"
        row = f"({', '.join(holders)})"
        insert = (
            f"INSERT INTO {quote(self.model._meta.db_table)} "
            f"({', '.join(quote(column) for column in self.columns)}) "
            f"{source or 'VALUES ' + row}"
        )
        if new:
            return insert
        updates = ", ".join(
            f"{quote(column)} = EXCLUDED.{quote(column)}" for column in self.updated
        )
        return (
            f"{insert} ON CONFLICT ({quote('connection_id')}, {quote('cinc_id')}) "
            f"DO UPDATE SET {updates}"
        )

    def rows_for(self, db, connection_id, now):
        """A function ``(cinc_id, values) -> params`` giving the parameters
        of one row of the page: ``values`` maps every write field's name
        (``attname`` for foreign keys) to its Python value, ``raw`` being
        the record's JSON text. ``now`` (the page's clock, used for every
        row) is put in database form once."""
        ops = db.ops
        native_uuid = db.features.has_native_uuid_field
        stamp = ops.adapt_datetimefield_value(now)
        values_of = operator.itemgetter(*(name for name, _, _ in self.writes))
        # Only dates and prices need the backend's adapter; strings, flags,
        # ids and None go as they are. Positions count the four leading
        # columns (uuid, connection, cinc_id, first_seen_at).
        adapted = []
        for position, (_, kind, column) in enumerate(self.writes, start=4):
            if kind == "DateTimeField":
                adapted.append((position, ops.adapt_datetimefield_value))
            elif kind == "DecimalField":
                adapted.append((position, partial(_adapt_decimal, ops, column)))

        def params(cinc_id, values):
            key = uuid.uuid4()
            row = [
                key if native_uuid else key.hex,
                connection_id,
                cinc_id,
                stamp,
                *values_of(values),
            ]
            for position, adapt in adapted:
                value = row[position]
                if value is None or value.__class__ is str:
                    continue  # already in database form
                row[position] = stamp if value is now else adapt(value)
            return row

        return params


def _adapt_decimal(ops, column, value):
    return ops.adapt_decimalfield_value(value, column.max_digits, column.decimal_places)


_AGENT_UPSERT = _Upsert(Agent, AGENT_WRITE_FIELDS)
_LEAD_UPSERT = _Upsert(Lead, LEAD_WRITE_FIELDS)


def _store(upsert, rows, existing, *, savepoint=True):
    """Write ``rows`` ({cinc_id: params}) in one go, those not in
    ``existing`` as new rows; return {cinc_id: reason} of rows the database
    refused (on a refusal, each row is tried on its own so the others are
    kept).

    ``savepoint=False`` writes without the savepoint that lets a refusal be
    undone: a refused row then raises, leaving the caller's transaction to
    be rolled back (see ``_Sync._pages``, which writes the pages again the
    careful way).
    """
    if not rows:
        return {}
    db = connections[upsert.model.objects.db]
    new, known = [], []
    for cinc_id, params in rows.items():
        (known if cinc_id in existing else new).append(params)
    try:
        # The COPY goes through the driver's own cursor: wrap its errors as
        # Django's, so a refused row lands in the except below.
        with (
            transaction.atomic(using=db.alias, savepoint=savepoint),
            db.cursor() as cursor,
            db.wrap_database_errors,
        ):
            _send(upsert, db, cursor, new, new=True)
            _send(upsert, db, cursor, known, new=False)
        _keep_stats(upsert.model, db, len(rows))
        return {}
    except (DataError, IntegrityError):
        if not savepoint:
            raise
    refused = {}
    sql = upsert.sql(db)
    for cinc_id, params in rows.items():
        try:
            with transaction.atomic(using=db.alias), db.cursor() as cursor:
                cursor.execute(sql, params)
        except (DataError, IntegrityError) as exc:
            refused[cinc_id] = type(exc).__name__
    return refused


def _send(upsert, db, cursor, rows, *, new):
    if not rows:
        return
    if db.vendor != "postgresql":
        # One prepared statement for every row, its loop run in C.
        cursor.executemany(upsert.sql(db, new=new), rows)
        return
    # PostgreSQL: executemany costs a round trip a row there (about 130 us
    # a lead in the writes benchmark), and one multi-row VALUES measured
    # twice as slow (18,000 parameters bound client side). New rows are
    # COPied straight into the table (11 us a lead less than through the
    # temporary table, measured on 100,000 leads); the others are COPied
    # into a temporary table, then written with one INSERT ... SELECT ...
    # ON CONFLICT. Every name in these statements comes from the model's
    # metadata.
    quote = db.ops.quote_name
    table = quote(upsert.model._meta.db_table)
    columns = ", ".join(quote(column) for column in upsert.columns)
    if new:
        _copy(cursor, table, columns, rows)
        return
    scratch = quote(f"{upsert.model._meta.db_table}_page")
    create = (
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {scratch} ON COMMIT DELETE ROWS "  # noqa: S608
        f"AS SELECT {columns} FROM {table} WITH NO DATA"
    )
    cursor.execute(create)
    _copy(cursor, scratch, columns, rows)
    select = f"SELECT {columns} FROM {scratch}"  # noqa: S608
    cursor.execute(upsert.sql(db, select, new=False))
    cursor.execute(f"DELETE FROM {scratch}")  # noqa: S608


def _copy(cursor, table, columns, rows):
    with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


# Rows written to a table by this process since its statistics were last
# refreshed, and the table's size then (PostgreSQL only; see _keep_stats).
_WRITTEN_SINCE_STATS = {}
STATS_MIN_ROWS = 1000


def _keep_stats(model, db, written):
    """Refresh PostgreSQL's statistics of the mirror's connection and id
    columns each time this process has written as many rows as the table
    had at the last refresh (at least STATS_MIN_ROWS).

    A first sync grows a table from nothing faster than autovacuum's
    ANALYZE follows: with statistics that still say a connection has a few
    rows, the planner read a page's stored rows through ``lead_facets`` and
    filtered every lead of the connection (6.8 ms a page at 30,000 leads,
    growing with the mirror) instead of 500 probes of the unique index
    (1.4 ms). ``ANALYZE`` of two columns samples the table in tens of
    milliseconds and takes no lock that blocks reads or writes.
    """
    if db.vendor != "postgresql" or not written:
        return
    table = model._meta.db_table
    since, size = _WRITTEN_SINCE_STATS.get(table, (0, 0))
    since += written
    if since < max(STATS_MIN_ROWS, size):
        _WRITTEN_SINCE_STATS[table] = (since, size)
        return
    quote = db.ops.quote_name
    with db.cursor() as cursor:
        cursor.execute(
            f"ANALYZE {quote(table)} ({quote('connection_id')}, {quote('cinc_id')})"
        )
        cursor.execute(
            "SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table]
        )
        size = max(int(cursor.fetchone()[0]), 0)
    _WRITTEN_SINCE_STATS[table] = (0, size)


def _tally(counts, written, existing, refused):
    for cinc_id in written:
        if cinc_id in refused:
            reason = f"the database refused it ({refused[cinc_id]})"
            counts.errors.append(RecordError(reason, record_id=cinc_id))
        elif cinc_id in existing:
            counts.updated += 1
        else:
            counts.created += 1


def lock_mirror(connection):
    """Lock the connection's row before the first mirror row a transaction
    writes (PostgreSQL; on SQLite the IMMEDIATE transaction already holds
    the one write lock).

    Every writer of a connection's agents and leads takes this lock first
    (``upsert_leads`` and ``upsert_agents`` before they read the stored rows),
    so they all lock in one order, the connection and then its rows, and
    wait for each other instead of deadlocking: a sync holds the row from
    the first page of a group of pages to its commit (``mirror_changed``
    updates it), while a lead refresh or a lead creation writes one lead
    that a later page of the group may write too. ``FOR NO KEY UPDATE`` is
    the lock that ``mirror_changed``'s UPDATE takes anyway; rows that
    reference the connection can still be inserted meanwhile.
    """
    rows = Connection.objects.select_for_update(no_key=True).filter(pk=connection.pk)
    list(rows.values_list("pk", flat=True))


def mirror_changed(connection):
    """Bump the connection's mirror version; call it inside the transaction
    that wrote its agents or leads, so caches keyed on the version never
    outlive the data they were computed from."""
    Connection.objects.filter(pk=connection.pk).update(
        mirror_version=F("mirror_version") + 1
    )


def _unchanged(old, hashed):
    return (
        old is not None
        and old["content_hash"] == hashed.digest
        and old["removed_at"] is None
    )


def _state(hashed, old, now):
    """The STATE_FIELDS values of a written row."""
    changed = old is None or old["content_hash"] != hashed.digest
    return {
        "raw": hashed.text,
        "content_hash": hashed.digest,
        "changed_at": now if changed else old["changed_at"],
        "removed_at": None,
    }


def upsert_agents(*, connection, records, sync_run=None, savepoint=True):
    """Write one batch (a page) of raw CINC agent records; return counts.

    One transaction: one query loads the existing rows, one statement
    writes the new and changed ones; unchanged agents are not parsed or
    written. ``savepoint=False``: see ``upsert_leads``.
    """
    chosen, parsed, counts = _batch(records, parse_agent, Agent)
    hashed = {cinc_id: _hashed(raw) for cinc_id, raw in chosen.items()}
    now = timezone.now()
    row = _AGENT_UPSERT.rows_for(connections[Agent.objects.db], connection.pk, now)
    # Inside the caller's page transaction no savepoint is needed: the page
    # is written whole or not at all.
    with transaction.atomic(savepoint=False):
        lock_mirror(connection)
        existing = _existing(
            Agent, connection, hashed, ["content_hash", "changed_at", "removed_at"]
        )
        rows = {}
        for cinc_id, item in hashed.items():
            old = existing.get(cinc_id)
            if _unchanged(old, item):
                counts.unchanged += 1
                continue
            record = _parsed(cinc_id, item.sent, parse_agent, parsed, counts)
            if record is None:
                continue
            values = _agent_columns(record, clean=item.clean)
            values.update(_state(item, old, now))
            rows[cinc_id] = row(cinc_id, values)
        refused = _store(_AGENT_UPSERT, rows, existing, savepoint=savepoint)
        if len(refused) < len(rows):
            mirror_changed(connection)
    _tally(counts, rows, existing, refused)
    return counts


HISTORY_FIELDS = [name for _, name in HISTORY]
LINK_FIELDS = [f"{role}_id" for role, _ in AGENT_ROLES]


def upsert_leads(*, connection, records, sync_run=None, savepoint=True):
    """Write one batch (a page) of raw CINC lead records; return counts.

    One transaction: one query loads the existing rows' hashes, one
    resolves the assigned agents to mirrored agents, one statement writes
    the new and changed leads, one bulk insert writes the history of
    changed status and assignments. A lead whose content hash and agent
    links are unchanged is neither parsed nor written.

    A row the database refuses is retried on its own in a savepoint and
    counted as an error, so the page's other rows are kept. With
    ``savepoint=False`` the page is written without that savepoint and a
    refusal raises instead: the caller rolls back and writes the page again
    with savepoints (on SQLite a savepoint copies every database page the
    write changes, about 13 us a new lead in the writes benchmark).
    """
    chosen, parsed, counts = _batch(records, parse_lead, Lead)
    hashed = {cinc_id: _hashed(raw) for cinc_id, raw in chosen.items()}
    now = timezone.now()
    row = _LEAD_UPSERT.rows_for(connections[Lead.objects.db], connection.pk, now)
    with transaction.atomic(savepoint=False):
        # Before the stored rows are read: a writer that waited here for a
        # sync's group of pages then reads what the group wrote.
        lock_mirror(connection)
        existing = _existing(
            Lead,
            connection,
            hashed,
            ["pk", "content_hash", "changed_at", "removed_at"]
            + HISTORY_FIELDS
            + LINK_FIELDS,
        )
        # Unchanged by hash: their stored agent ids are the record's. The
        # others are parsed now.
        same = {c for c, item in hashed.items() if _unchanged(existing.get(c), item)}
        columns = {}
        for cinc_id, item in hashed.items():
            if cinc_id in same:
                continue
            record = _parsed(cinc_id, item.sent, parse_lead, parsed, counts)
            if record is not None:
                columns[cinc_id] = _lead_columns(record, clean=item.clean)
        wanted = [existing[c] for c in same] + list(columns.values())
        agents = _agent_pks(connection, wanted)

        rows, history = {}, []
        for cinc_id, item in hashed.items():
            old = existing.get(cinc_id)
            if cinc_id in same:
                links = _links(old, agents)
                if all(old[name] == pk for name, pk in links.items()):
                    counts.unchanged += 1
                    continue
                # Same record, but an agent it names was mirrored (or
                # removed) since: rewrite its links.
                record = _parsed(cinc_id, item.sent, parse_lead, parsed, counts)
                if record is not None:
                    columns[cinc_id] = _lead_columns(record, clean=item.clean)
            if cinc_id not in columns:
                continue  # unreadable, already counted
            values = columns[cinc_id]
            values.update(_links(values, agents))
            values.update(_state(item, old, now))
            rows[cinc_id] = row(cinc_id, values)
            if old is not None and old["content_hash"] != item.digest:
                history += _lead_history(old, values, now, sync_run)

        refused = _store(_LEAD_UPSERT, rows, existing, savepoint=savepoint)
        history = [change for cinc_id, change in history if cinc_id not in refused]
        LeadChange.objects.bulk_create(history)
        if len(refused) < len(rows):
            mirror_changed(connection)
    _tally(counts, rows, existing, refused)
    counts.history = len(history)
    return counts


def _links(values, agents):
    """{role_id: mirrored agent pk or None} for a lead's agent CINC ids."""
    return {
        f"{role}_id": agents.get(values[cinc_field]) for role, cinc_field in AGENT_ROLES
    }


def _agent_pks(connection, leads):
    """{agent cinc_id: pk} of the mirrored agents the leads name; ``leads``
    are column dicts or stored rows (both dicts)."""
    wanted = {lead[name] for lead in leads for _, name in AGENT_ROLES if lead[name]}
    found = {}
    for chunk in _chunks(sorted(wanted)):
        query = Agent.objects.filter(connection=connection, cinc_id__in=chunk)
        found.update(query.order_by().values_list("cinc_id", "pk"))
    return found


def _lead_history(old, values, now, sync_run):
    return [
        (
            old["cinc_id"],
            LeadChange(
                lead_id=old["pk"],
                field=change_field,
                old_value=old[name],
                new_value=values[name],
                changed_at=now,
                sync_run=sync_run,
            ),
        )
        for change_field, name in HISTORY
        if old[name] != values[name]
    ]


# Starting and closing runs ---------------------------------------------------


def _stale_after():
    return timedelta(
        seconds=getattr(settings, "CINC_SYNC_STALE_AFTER", STALE_AFTER_SECONDS)
    )


def _active_run(connection):
    return (
        SyncRun.objects.filter(
            connection=connection, kind=SyncRun.Kind.FULL, status__in=ACTIVE_STATUSES
        )
        .order_by("created_at", "pk")
        .first()
    )


def _lock_connection(connection_id):
    """Lock the connection's row for this transaction; return its status."""
    rows = Connection.objects.select_for_update().filter(pk=connection_id)
    return rows.values_list("status", flat=True).first()


def _mirrored_count(connection):
    agents = Agent.objects.filter(connection=connection, removed_at=None).count()
    leads = Lead.objects.filter(connection=connection, removed_at=None).count()
    return agents + leads


def sync_start(*, connection):
    """The connection's active (queued or running) sync, or a new queued one.

    A new run's task is sent when the transaction commits. Stale runs are
    closed first. Raises ``ConnectionUnavailable`` when the connection is
    not active (it needs reconnecting or was disconnected).
    """
    sync_close_stale(connection=connection)
    with transaction.atomic():
        # The row lock (PostgreSQL) or the IMMEDIATE transaction (SQLite)
        # makes "look for an active run, else create one" one step.
        status = _lock_connection(connection.pk)
        if status != Connection.Status.ACTIVE:
            raise ConnectionUnavailable(_inactive_message(status))
        run = _active_run(connection)
        if run is not None:
            return run
        run = SyncRun.objects.create(
            connection=connection,
            kind=SyncRun.Kind.FULL,
            status=SyncRun.Status.QUEUED,
            expected_records=_mirrored_count(connection),
        )
        transaction.on_commit(lambda: _send_task(connection.pk, run.pk))
    logger.info(
        "Sync %s of connection %s queued",
        run.pk,
        connection.pk,
        extra=_extra(connection.pk, run.pk),
    )
    return run


def _send_task(connection_id, run_id, countdown=None):
    """Queue the sync task; a run whose task cannot be queued is failed."""
    from .tasks import sync_connection_task

    try:
        sync_connection_task.apply_async(
            args=[connection_id, run_id], countdown=countdown
        )
    except Exception:  # the broker may be down; say so on the run.
        logger.exception(
            "Could not queue sync %s of connection %s",
            run_id,
            connection_id,
            extra=_extra(connection_id, run_id),
        )
        SyncRun.objects.filter(pk=run_id, status__in=ACTIVE_STATUSES).update(
            status=SyncRun.Status.FAILED,
            finished_at=timezone.now(),
            waiting_until=None,
            error="The sync could not be queued: the task queue did not answer. "
            "The next scheduled sync will try again.",
        )
        return False
    return True


def sync_resume_later(*, run, countdown):
    """Send the run's task again in ``countdown`` seconds (after a commit)."""
    transaction.on_commit(
        lambda: _send_task(run.connection_id, run.pk, countdown=countdown)
    )


def sync_close_stale(*, connection=None):
    """Close runs that stopped showing signs of life as failed; return how
    many were closed.

    A running run is stale when its heartbeat (saved with every page) is
    older than the timeout; a queued run when it was not started within the
    timeout. A run waiting for the rate limit is not stale before its wait
    ended.
    """
    now = timezone.now()
    cutoff = now - _stale_after()
    runs = SyncRun.objects.filter(kind=SyncRun.Kind.FULL)
    if connection is not None:
        runs = runs.filter(connection=connection)
    runs = runs.annotate(
        last_sign=Coalesce("heartbeat_at", "started_at", "created_at")
    ).filter(
        Q(waiting_until__isnull=True) | Q(waiting_until__lt=cutoff),
        last_sign__lt=cutoff,
    )
    silence = _duration(_stale_after().total_seconds())
    running = runs.filter(status=SyncRun.Status.RUNNING).update(
        status=SyncRun.Status.FAILED,
        finished_at=now,
        waiting_until=None,
        error=f"The sync stopped without finishing: no sign of life for "
        f"{silence} (the worker was probably stopped or restarted). "
        "The mirror keeps every page synced before that; nothing was marked "
        "removed. The next sync starts over.",
    )
    queued = runs.filter(status=SyncRun.Status.QUEUED)
    # A started run is queued again while it waits for the rate limit; if
    # its worker was killed meanwhile, its resume task went with it.
    resumed = queued.filter(started_at__isnull=False).update(
        status=SyncRun.Status.FAILED,
        finished_at=now,
        waiting_until=None,
        error=f"The sync paused for CINC's rate limit and did not resume: no "
        f"worker took it up again within {silence} (the worker was probably "
        "stopped while the sync waited). The mirror keeps every page synced "
        "before the pause; nothing was marked removed. The next sync starts "
        "over.",
    )
    queued = resumed + queued.update(
        status=SyncRun.Status.FAILED,
        finished_at=now,
        waiting_until=None,
        error=f"The sync was queued but no worker started it within {silence}. "
        "Is a Celery worker running?",
    )
    if running or queued:
        logger.warning(
            "Closed %s stale running and %s stale queued sync runs",
            running,
            queued,
            extra={"connection_id": connection.pk if connection else None},
        )
    return running + queued


def sync_runs_prune(*, now=None):
    """Delete finished runs (and their page rows) older than
    ``CINC_SYNC_RUNS_KEPT_DAYS``, keeping each connection's newest finished
    full sync, which the dashboard shows. Lead history keeps its changes
    (their run link becomes empty). Returns the number of runs deleted.

    A connection synced every 15 minutes makes about 35,000 runs a year;
    without this they would all stay.
    """
    days = getattr(settings, "CINC_SYNC_RUNS_KEPT_DAYS", RUNS_KEPT_DAYS)
    cutoff = (now or timezone.now()) - timedelta(days=days)
    finished = SyncRun.objects.exclude(status__in=ACTIVE_STATUSES)
    newest = (
        finished.filter(connection=OuterRef("pk"), kind=SyncRun.Kind.FULL)
        .order_by("-created_at", "-pk")
        .values("pk")[:1]
    )
    keep = Connection.objects.annotate(newest=Subquery(newest)).values_list(
        "newest", flat=True
    )
    old = finished.filter(created_at__lt=cutoff).exclude(
        pk__in=[pk for pk in keep if pk is not None]
    )
    deleted = 0
    while True:
        chunk = list(old.order_by("pk").values_list("pk", flat=True)[:ID_CHUNK])
        if not chunk:
            break
        deleted += (
            SyncRun.objects.filter(pk__in=chunk).delete()[1].get(SyncRun._meta.label, 0)
        )
    if deleted:
        logger.info("Deleted %s sync runs older than %s days", deleted, days)
    return deleted


def _duration(seconds):
    """'10 minutes', '1 minute', '45 seconds'."""
    if seconds >= 60:
        minutes = round(seconds / 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    seconds = max(1, round(seconds))
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def _inactive_message(status):
    if status == Connection.Status.NEEDS_RECONNECT:
        return "This CINC connection needs reconnecting before it can sync."
    if status is None:
        return "This CINC connection no longer exists."
    return "This CINC connection is disconnected."


def _extra(connection_id, run_id=None):
    return {"connection_id": connection_id, "sync_run_id": run_id}


# Running a sync --------------------------------------------------------------


@dataclass
class SyncOutcome:
    """What ``sync_connection`` did.

    ``run`` is None when there was nothing to do here (connection gone or
    inactive, run finished, running elsewhere, or not due yet).
    ``retry_in`` (seconds) is set when the run stopped for a long rate-limit
    wait: it is queued again with ``waiting_until`` and must be resumed
    (the task re-enqueues itself with this countdown).
    """

    run: SyncRun | None = None
    retry_in: int | None = None


def sync_connection(*, connection_id, sync_run_id=None, progress=None):
    """Claim and run (or resume) a sync of one connection in this process.

    Without ``sync_run_id`` the connection's active run is used, or a new
    one created. Only a queued run that is due can be claimed, so a second
    delivery of the same task does nothing. ``progress(run)`` is called
    after every page. Failures end the run (FAILED or PARTIAL, with the
    reason in ``run.error``); they are not raised, unexpected ones are
    logged with their traceback.
    """
    connection = Connection.objects.filter(pk=connection_id).first()
    if connection is None:
        logger.info(
            "Sync of connection %s skipped: the connection is gone",
            connection_id,
            extra=_extra(connection_id, sync_run_id),
        )
        return SyncOutcome()
    if not connection.is_active:
        _close_for_inactive(connection, sync_run_id)
        return SyncOutcome()

    if sync_run_id is None:
        sync_close_stale(connection=connection)
    run = _claim(connection, sync_run_id)
    if run is None:
        return SyncOutcome()
    return _Sync(connection, run, progress).execute()


def _close_for_inactive(connection, run_id):
    logger.info(
        "Sync of connection %s skipped: the connection is %s",
        connection.pk,
        connection.status,
        extra=_extra(connection.pk, run_id),
    )
    runs = SyncRun.objects.filter(connection=connection, status__in=ACTIVE_STATUSES)
    if run_id is not None:
        runs = runs.filter(pk=run_id)
    runs.update(
        status=SyncRun.Status.FAILED,
        finished_at=timezone.now(),
        waiting_until=None,
        error=_inactive_message(connection.status),
    )


def _claim(connection, run_id):
    """The run, now RUNNING and ours; None when it is not ours to run."""
    now = timezone.now()
    with transaction.atomic():
        if _lock_connection(connection.pk) != Connection.Status.ACTIVE:
            return None
        if run_id is None:
            run = _active_run(connection)
            if run is None:
                run = SyncRun.objects.create(
                    connection=connection,
                    kind=SyncRun.Kind.FULL,
                    expected_records=_mirrored_count(connection),
                )
        else:
            run = SyncRun.objects.filter(
                pk=run_id, connection=connection, kind=SyncRun.Kind.FULL
            ).first()
        if run is None or run.status != SyncRun.Status.QUEUED:
            why = "it is gone" if run is None else f"it is {run.status}"
            logger.info(
                "Sync %s of connection %s not started here: %s",
                run_id if run is None else run.pk,
                connection.pk,
                why,
                extra=_extra(connection.pk, run_id if run is None else run.pk),
            )
            return None
        if run.waiting_until and run.waiting_until > now + WAKE_SLACK:
            logger.info(
                "Sync %s of connection %s not started: waiting until %s",
                run.pk,
                connection.pk,
                run.waiting_until.isoformat(),
                extra=_extra(connection.pk, run.pk),
            )
            return None

        first_start = run.started_at is None
        claimed = SyncRun.objects.filter(
            pk=run.pk, status=SyncRun.Status.QUEUED
        ).update(
            status=SyncRun.Status.RUNNING,
            started_at=run.started_at or now,
            heartbeat_at=now,
            waiting_until=None,
        )
        if not claimed:
            return None
        if first_start:
            Connection.objects.filter(pk=connection.pk).update(last_sync_attempt_at=now)
    run.refresh_from_db()
    logger.info(
        "Sync %s of connection %s %s (phase %s, offset %s)",
        run.pk,
        connection.pk,
        "started" if first_start else "resumed",
        run.phase,
        run.next_offset,
        extra=_extra(connection.pk, run.pk),
    )
    return run


class _RunLost(Exception):
    """The run was closed by someone else (a stale-run sweep): stop."""


class _PageNotWritten(Exception):
    """A page of a group written without savepoints failed (the error is
    its ``__cause__``): the group's transaction must be rolled back."""


class _WalkIncomplete(Exception):
    """The walk cannot finish (repeated pages, page cap): the run is PARTIAL."""


PROGRESS_FIELDS = (
    "phase",
    "next_offset",
    "heartbeat_at",
    "pages",
    "requests",
    "records_seen",
    "created",
    "updated",
    "unchanged",
    "removed",
    "record_errors",
    "rate_limited",
    "retries",
    "expected_records",
    "error",
)
EVENT_FIELDS = ("requests", "rate_limited", "retries", "heartbeat_at")
EVENT_COUNTERS = frozenset(EVENT_FIELDS) - {"heartbeat_at"}


@dataclass
class _TakenPage:
    offset: int
    answer: object  # the client's Page
    fresh: list  # its records not already written by this walk
    full: bool


class _Prefetch:
    """Fetch the next page of a walk while the current one is written.

    A page's HTTP round trip and rate-limit wait need no database, so one
    helper thread fetches page n+1 while the sync's thread writes page n:
    a page then costs max(fetch, write) instead of their sum (the sync
    benchmark's walk against 15 requests per 2 s needs this to stay on the
    rate-limit floor). Pages are still written in order, one transaction
    each, and only written pages move the run's resume point. A fetch
    that failed raises in ``take()``, after the page before it was written,
    exactly as an in-line fetch would have. Only one fetch runs at a time,
    so the client (its HTTP session, its limiter) is never used by two
    threads at once.
    """

    def __init__(self, fetch, *, enabled=True):
        self.fetch = fetch
        self.enabled = enabled
        self.pool = None
        self.pending = None  # (offset, future)

    def __enter__(self):
        if self.enabled:
            self.pool = ThreadPoolExecutor(1, thread_name_prefix="cinc-prefetch")
        return self

    def __exit__(self, *exc_info):
        if self.pool is not None:
            # Waits for a fetch still running (bounded by the client's
            # timeout and longest in-line wait); its answer is dropped.
            self.pool.shutdown(wait=True, cancel_futures=True)

    def ask(self, offset):
        if self.pool is not None and self.pending is None:
            self.pending = (offset, self.pool.submit(self._fetch, offset))

    def ready(self, offset):
        """Whether the page at ``offset`` has been fetched, without error."""
        if self.pending is None:
            return False
        asked, future = self.pending
        return asked == offset and future.done() and future.exception() is None

    def take(self, offset):
        if self.pending is not None:
            asked, future = self.pending
            self.pending = None
            if asked == offset:
                return future.result()
            # Not the page wanted (cannot happen while pages are written in
            # order): let the fetch end before the client is used again.
            with contextlib.suppress(Exception):
                future.result()
        return self.fetch(offset, PAGE_SIZE)

    def _fetch(self, offset):
        try:
            return self.fetch(offset, PAGE_SIZE)
        finally:
            # A token refresh may have opened a connection in this thread.
            connections.close_all()


# How often a walk's helper thread checkpoints SQLite's write-ahead log.
CHECKPOINT_SECONDS = 1.0


class BackgroundCheckpoints:
    """While a walk writes pages on SQLite, copy the write-ahead log into
    the database file from a helper thread as well as at the commits.

    A checkpoint at a commit (every 10,000 pages of log, see the settings)
    holds up the next page while it copies the log's pages into the
    database file. Here a thread runs a PASSIVE checkpoint every
    ``CHECKPOINT_SECONDS`` on its own connection: PASSIVE never waits for
    the writer, and the copying runs in SQLite's C code beside the walk's
    Python, so the commit's own checkpoint finds most of the log already
    copied (the writes benchmark on SQLite: 12,000 -> 12,800 leads/s into
    an empty mirror). The commits keep their checkpoints because only a
    checkpoint that finishes between two of the writer's transactions lets
    the log start over: with the thread alone the log grew by about 60 MB
    a second for as long as a walk wrote (found by review). On leaving, the
    thread is joined (``checkpoints`` says how many it ran). PostgreSQL
    needs none of this.
    """

    def __init__(self, using="default", interval=CHECKPOINT_SECONDS):
        self.using = using
        self.interval = interval
        self.stop = threading.Event()
        self.thread = None
        self.checkpoints = 0

    def __enter__(self):
        if connections[self.using].vendor == "sqlite":
            self.thread = threading.Thread(
                target=self._run, name="sqlite-checkpoints", daemon=True
            )
            self.thread.start()
        return self

    def __exit__(self, *exc_info):
        if self.thread is not None:
            self.stop.set()
            self.thread.join()

    def _run(self):
        try:
            while not self.stop.wait(self.interval):
                self._checkpoint()
        finally:
            connections.close_all()  # this thread's own connections

    def _checkpoint(self):
        try:
            with connections[self.using].cursor() as cursor:
                cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self.checkpoints += 1
        except DatabaseError as exc:
            # The commits' own checkpoints still run.
            logger.warning("SQLite checkpoint failed: %s", exc)


class _Sync:
    """One claimed run, executed from its stored phase and offset."""

    def __init__(self, connection, run, progress):
        self.connection = connection
        self.run = run
        self.progress = progress
        self.notes = [line for line in run.error.splitlines() if line]
        self.client = None
        self.thread = threading.get_ident()

    # Saving the run. Every save is conditional on the run still RUNNING, so
    # a run closed meanwhile by the stale sweep is never written again.

    def _save(self, fields, **changes):
        values = {name: getattr(self.run, name) for name in fields}
        values.update(changes)
        return (
            SyncRun.objects.filter(
                pk=self.run.pk, status=SyncRun.Status.RUNNING
            ).update(**values)
            == 1
        )

    def _save_or_stop(self, fields=PROGRESS_FIELDS, **changes):
        # While the run goes on, its error text lists the unreadable records.
        self.run.error = "\n".join(self.notes)
        if not self._save(fields, **changes):
            raise _RunLost

    def on_event(self, kind, **info):
        """The client's callback: count requests, 429s and retries."""
        if kind == "request":
            self.run.requests += 1
        elif kind == "rate_limited":
            self.run.rate_limited += 1
        elif kind == "retry":
            self.run.retries += 1
        else:
            return
        if threading.get_ident() != self.thread:
            return  # a prefetch: the page written next saves the counters
        now = timezone.now()
        last = self.run.heartbeat_at
        if last is None or (now - last).total_seconds() >= HEARTBEAT_SECONDS:
            self.run.heartbeat_at = now
            self._save(EVENT_FIELDS)

    def _snapshot(self):
        return {name: getattr(self.run, name) for name in PROGRESS_FIELDS}

    def _restore(self, snapshot, notes):
        for name, value in snapshot.items():
            # Requests, 429s and retries happened (some in the prefetch
            # thread, while the page was written): never rolled back.
            if name not in EVENT_COUNTERS:
                setattr(self.run, name, value)
        # A copy: the pages written after a restore add their notes to
        # self.notes, and a second restore to the same point (a group
        # written again whose commit fails too) must not keep them.
        self.notes = list(notes)

    # The run.

    def execute(self):
        try:
            self.client = connection_client(
                connection=self.connection, on_event=self.on_event
            )
            self._phases()
        except _RunLost:
            logger.warning(
                "Sync %s of connection %s was closed while it ran; stopped",
                self.run.pk,
                self.connection.pk,
                extra=self._extra(),
            )
            return SyncOutcome()
        except RateLimited as exc:
            return self._reschedule(exc)
        except _WalkIncomplete as exc:
            self._end(SyncRun.Status.PARTIAL, str(exc), reason="walk incomplete")
        except ConnectionUnavailable as exc:
            self._end(
                SyncRun.Status.FAILED,
                f"{exc} The sync stopped; reconnect the site to sync again.",
                reason="connection unavailable",
            )
        except (NotBroker, MissingScope) as exc:
            self._needs_reconnect(exc)
        except MalformedResponse as exc:
            self._end(
                SyncRun.Status.FAILED,
                f"CINC sent an answer the portal cannot read ({exc}). The pages "
                "synced before it were kept and nothing was marked removed; "
                "the next sync tries again.",
                reason=f"malformed answer from CINC {exc.endpoint}",
            )
        except UpstreamError as exc:
            self._end(
                SyncRun.Status.FAILED,
                f"CINC did not answer properly, even after retries ({exc}). "
                "The pages synced before it were kept; the next scheduled sync "
                "tries again.",
                reason=f"CINC {exc.endpoint}: {exc.kind}",
            )
        except CincError as exc:
            self._end(
                SyncRun.Status.FAILED,
                f"CINC refused a request ({exc}).",
                reason=f"{type(exc).__name__} from CINC {exc.endpoint}",
            )
        except Exception as exc:
            logger.exception(
                "Sync %s of connection %s failed unexpectedly",
                self.run.pk,
                self.connection.pk,
                extra=self._extra(),
            )
            self._end(
                SyncRun.Status.FAILED,
                f"The sync stopped on an unexpected error ({type(exc).__name__}); "
                "it is in the worker's log. The pages synced before it were kept.",
                reason=type(exc).__name__,
            )
        finally:
            if self.client is not None:
                self.client.session.close()
        return SyncOutcome(run=self.run)

    def _phases(self):
        if self.run.phase == Phase.ME:
            self.client.me()
            self.run.phase = Phase.AGENTS
            self.run.next_offset = 0
            self.run.heartbeat_at = timezone.now()
            self._save_or_stop()
        if self.run.phase == Phase.AGENTS:
            self._walk(Phase.AGENTS)
        if self.run.phase == Phase.LEADS:
            self._walk(Phase.LEADS)
        if self.run.phase == Phase.FINISHING:
            self._finish()

    def _walk(self, phase):
        """Page through agents or leads from ``run.next_offset`` to the end."""
        if phase == Phase.AGENTS:
            fetch, upsert = self.client.agents_page, upsert_agents
        else:
            fetch, upsert = self.client.leads_page, upsert_leads
        pages = list(
            SyncRunPage.objects.filter(run=self.run, phase=phase).values_list(
                "cinc_ids", flat=True
            )
        )
        seen = {cinc_id for ids in pages for cinc_id in ids}
        with (
            _Prefetch(fetch, enabled=self._may_prefetch()) as ahead,
            BackgroundCheckpoints(),
        ):
            self._pages(phase, ahead, upsert, seen, len(pages))

    def _may_prefetch(self):
        """Fetch the next page in a second thread while this one writes,
        unless turned off (``CINC_SYNC_PREFETCH``) or the caller holds a
        transaction: a token refresh in the second thread uses its own
        database connection, which could not see (or, on SQLite, would
        wait for) the caller's uncommitted rows."""
        enabled = getattr(settings, "CINC_SYNC_PREFETCH", True)
        return enabled and not transaction.get_connection().in_atomic_block

    def _pages(self, phase, ahead, upsert, seen, done):
        """Write the walk's pages in order and commit them in groups: a
        group goes on while the next page is already fetched (the network
        is ahead of the writes), up to GROUP_PAGES. When a page cannot be
        fetched, the pages of its group before it are committed, then the
        error goes on up.

        The pages of a group are written without savepoints: on SQLite a
        savepoint copies every database page a write changes, so that it
        can be undone (with a savepoint a page, and another around its
        rows, a new lead took 13 us more in the writes benchmark, about a
        seventh of its write). When a page's write fails, nothing of the
        group is kept: its pages are written again, each in its own
        savepoint (``_rewrite``), so the pages before the failing one are
        committed and the error goes on up, as if each page had been
        committed alone; when the failure was a row the database refused,
        the failing page is written again too, and the refused row is
        counted instead.

        No transaction is open while a page is awaited: on SQLite it holds
        the write lock, which a token refresh in the prefetch thread needs.
        """
        while True:
            group = [self._take(phase, ahead, seen, done)]
            # A failed commit loses the whole group: the run's counters and
            # resume point go back to where the group began.
            snapshot, notes = self._snapshot(), list(self.notes)
            try:
                try:
                    with transaction.atomic():
                        failure = self._write_group(
                            phase, ahead, upsert, seen, done, group
                        )
                except _PageNotWritten as not_written:
                    self._restore(snapshot, notes)
                    failure = self._rewrite(
                        phase, group, upsert, seen, not_written.__cause__
                    )
            except BaseException:
                self._restore(snapshot, notes)
                raise
            if failure is not None:
                raise failure
            done += len(group)
            if not group[-1].full:
                return

    def _write_group(self, phase, ahead, upsert, seen, done, group):
        """Write ``group``'s page, then take and write the pages already
        fetched after it, appending them to ``group``; return the error of
        a page that could not be fetched (the pages before it stay written),
        or None. A failed write raises ``_PageNotWritten``."""
        for grouped in range(GROUP_PAGES):
            if grouped:  # fetched already: no wait
                try:
                    group.append(self._take(phase, ahead, seen, done + grouped))
                except Exception as exc:  # noqa: BLE001 - raised by _pages
                    return exc
            page = group[-1]
            try:
                self._write(phase, page, upsert, seen, savepoint=False)
            except Exception as exc:
                raise _PageNotWritten from exc
            if not page.full or not ahead.ready(self.run.next_offset):
                return None
        return None

    def _rewrite(self, phase, group, upsert, seen, error):
        """Write again, each in its own savepoint, the pages of a group
        whose write failed with ``error``: those before the page that
        failed, and that page too when the database refused some of its
        rows (written with a savepoint, the refused rows are counted as
        errors and the others kept). Return the error that ends the walk
        (``error``, or that of a page failing again), or None."""
        if isinstance(error, DataError | IntegrityError):
            error = None
        else:
            group.pop()
        with transaction.atomic():
            for position, page in enumerate(group):
                try:
                    self._write(phase, page, upsert, seen)
                except Exception as exc:  # noqa: BLE001 - raised by _pages
                    del group[position:]
                    return exc
        return error

    def _take(self, phase, ahead, seen, done):
        """The page at the run's offset (fetched now, or earlier by the
        prefetch thread), checked; asks for the next one when it is full."""
        if done >= MAX_PAGES:
            raise _WalkIncomplete(
                f"Stopped after {MAX_PAGES} pages of {phase}: CINC kept "
                "sending full pages. Nothing was marked removed."
            )
        offset = self.run.next_offset
        answer = ahead.take(offset)
        full = bool(answer.items) and len(answer.items) >= answer.limit
        fresh = [
            item
            for item in answer.items
            if _raw_id(item) is None or _raw_id(item) not in seen
        ]
        if full and not fresh:
            raise _WalkIncomplete(
                f"CINC answered the page of {phase} at offset {offset} with "
                f"{phase} it had already sent, so the walk stopped there "
                "(paging would not end). Nothing was marked removed."
            )
        if full:
            ahead.ask(offset + len(answer.items))
        return _TakenPage(offset, answer, fresh, full)

    def _write(self, phase, page, upsert, seen, *, savepoint=True):
        """Write one taken page, with the run's progress, in its own
        savepoint unless ``savepoint=False`` (the caller then rolls back
        when it fails); the ids it held join ``seen``."""
        snapshot, notes = self._snapshot(), list(self.notes)
        try:
            with transaction.atomic(savepoint=savepoint):
                counts = upsert(
                    connection=self.connection,
                    records=page.fresh,
                    sync_run=self.run,
                    savepoint=savepoint,
                )
                SyncRunPage.objects.create(
                    run=self.run, phase=phase, offset=page.offset, cinc_ids=counts.ids
                )
                if phase == Phase.AGENTS:
                    self._name_connection(counts.ids)
                self._count(counts, more=page.full or phase == Phase.AGENTS)
                self.run.pages += 1
                if page.full:
                    self.run.next_offset = page.offset + len(page.answer.items)
                else:
                    self.run.phase = (
                        Phase.LEADS if phase == Phase.AGENTS else Phase.FINISHING
                    )
                    self.run.next_offset = 0
                self._save_or_stop()
        except BaseException:
            self._restore(snapshot, notes)
            raise
        seen.update(counts.ids)
        self._report()

    def _count(self, counts, *, more):
        run = self.run
        run.records_seen += counts.seen
        run.created += counts.created
        run.updated += counts.updated
        run.unchanged += counts.unchanged
        run.record_errors += counts.record_errors
        run.heartbeat_at = timezone.now()
        estimate = run.records_seen + (PAGE_SIZE if more else 0)
        run.expected_records = max(run.expected_records, estimate)
        for error in counts.errors:
            if len(self.notes) >= MAX_ERROR_NOTES:
                break
            self.notes.append(str(error))
        if counts.errors:
            logger.warning(
                "Sync %s of connection %s: %s records could not be read",
                run.pk,
                self.connection.pk,
                counts.record_errors,
                extra=self._extra(),
            )

    def _name_connection(self, ids):
        own = self.connection.cinc_agent_id
        if self.connection.cinc_agent_name or own not in ids:
            return
        agent = Agent.objects.filter(connection=self.connection, cinc_id=own).first()
        if agent is not None and agent.full_name:
            name = agent.full_name[
                : Connection._meta.get_field("cinc_agent_name").max_length
            ]
            Connection.objects.filter(pk=self.connection.pk, cinc_agent_name="").update(
                cinc_agent_name=name
            )
            # Known stored once the page commits: a group rolled back and
            # written again (see _pages) must store it again.
            transaction.on_commit(
                partial(setattr, self.connection, "cinc_agent_name", name)
            )

    def _finish(self):
        """Mark what the complete walk did not find as removed; succeed."""
        removals = {}
        for phase, model, fetch, upsert in (
            (Phase.AGENTS, Agent, self.client.agent, upsert_agents),
            (Phase.LEADS, Lead, self.client.lead, upsert_leads),
        ):
            missing = self._missing(phase, model)
            if len(missing) <= CONFIRM_REMOVALS_UP_TO:
                missing = self._confirm(missing, fetch, upsert)
            else:
                missing = self._unless_skipped(phase, model, missing, fetch, upsert)
            removals[model] = list(missing.values())

        now = timezone.now()
        error = self._error_text()
        with transaction.atomic():
            if any(removals.values()):
                lock_mirror(self.connection)
            for model, pks in removals.items():
                for chunk in _chunks(pks):
                    self.run.removed += model.objects.filter(
                        pk__in=chunk, removed_at=None
                    ).update(removed_at=now)
            if any(removals.values()):
                mirror_changed(self.connection)
            self.run.phase = Phase.DONE
            self.run.heartbeat_at = now
            self._save_or_stop(
                status=SyncRun.Status.SUCCEEDED,
                finished_at=now,
                waiting_until=None,
                error=error,
            )
            Connection.objects.filter(pk=self.connection.pk).update(last_synced_at=now)
            self._prune_pages()
        self.run.status = SyncRun.Status.SUCCEEDED
        self.run.finished_at = now
        self.run.error = error
        self._report()
        logger.info(
            "Sync %s of connection %s succeeded: %s records, %s created, "
            "%s updated, %s unchanged, %s removed, %s unreadable, %s requests, "
            "%s rate limited, %s retries",
            self.run.pk,
            self.connection.pk,
            self.run.records_seen,
            self.run.created,
            self.run.updated,
            self.run.unchanged,
            self.run.removed,
            self.run.record_errors,
            self.run.requests,
            self.run.rate_limited,
            self.run.retries,
            extra=self._extra(),
        )

    def _missing(self, phase, model):
        """{cinc_id: pk} of mirrored records the walk of ``phase`` missed."""
        seen = set()
        pages = SyncRunPage.objects.filter(run=self.run, phase=phase)
        for ids in pages.values_list("cinc_ids", flat=True):
            seen.update(ids)
        active = model.objects.filter(connection=self.connection, removed_at=None)
        return {
            cinc_id: pk
            for cinc_id, pk in active.values_list("cinc_id", "pk").iterator()
            if cinc_id not in seen
        }

    def _unless_skipped(self, phase, model, missing, fetch, upsert):
        """Of many missing records, those that may have been skipped.

        Too many records are missing to ask for each: a real mass removal,
        or also records the walk skipped because records before them were
        removed while it ran. A skipped record came right after the last
        record of one page and before the first of the next; the mirror was
        filled in CINC's list order, so its row lies between theirs. Those
        records are asked for (when few enough) or left for a later run;
        the others are marked removed without asking.
        """
        seams = self._seams(phase, model)
        lows = [low for low, _ in seams]
        suspects = {
            cinc_id: pk
            for cinc_id, pk in missing.items()
            if (at := bisect.bisect_left(lows, pk) - 1) >= 0 and pk < seams[at][1]
        }
        if not suspects:
            return missing
        rest = {k: pk for k, pk in missing.items() if k not in suspects}
        if len(suspects) <= CONFIRM_REMOVALS_UP_TO:
            return {**rest, **self._confirm(suspects, fetch, upsert)}
        logger.warning(
            "Sync %s of connection %s: %s missing %s lie between two pages of "
            "the walk (skipped?); left for a later sync to confirm",
            self.run.pk,
            self.connection.pk,
            len(suspects),
            phase,
            extra=self._extra(),
        )
        return rest

    def _seams(self, phase, model):
        """Sorted, disjoint (low, high) pk ranges around every boundary of two
        pages of the walk: from the smallest to the largest pk of the last
        and first SEAM_RECORDS records on either side. A few records rather
        than the two at the edge, since a row mirrored later than its
        neighbours (one an earlier run skipped) has a larger pk."""
        pages = [
            ids
            for ids in SyncRunPage.objects.filter(run=self.run, phase=phase)
            .order_by("offset")
            .values_list("cinc_ids", flat=True)
            if ids
        ]
        edges = [
            before[-SEAM_RECORDS:] + after[:SEAM_RECORDS]
            for before, after in pairwise(pages)
        ]
        pks = {}
        for chunk in _chunks({cinc_id for edge in edges for cinc_id in edge}):
            rows = model.objects.filter(connection=self.connection, cinc_id__in=chunk)
            pks.update(rows.values_list("cinc_id", "pk"))
        spans = []
        for edge in edges:
            found = [pks[cinc_id] for cinc_id in edge if cinc_id in pks]
            if found:
                spans.append((min(found), max(found)))
        merged = []
        for low, high in sorted(spans):
            if merged and low < merged[-1][1]:
                merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
            else:
                merged.append((low, high))
        return merged

    def _confirm(self, missing, fetch, upsert):
        """Ask CINC for each missing record: a 404 confirms the removal;
        a record found was skipped by the walk (rows shifted) and is
        written instead."""
        confirmed = {}
        for cinc_id, pk in missing.items():
            try:
                raw = fetch(cinc_id)
            except NotFound:
                confirmed[cinc_id] = pk
                continue
            snapshot, notes = self._snapshot(), list(self.notes)
            try:
                with transaction.atomic():
                    counts = upsert(
                        connection=self.connection, records=[raw], sync_run=self.run
                    )
                    self._count(counts, more=False)
                    self._save_or_stop()
            except BaseException:
                self._restore(snapshot, notes)
                raise
        return confirmed

    def _error_text(self, failure=None):
        """The run's error: the failure first, then the unreadable records."""
        lines = [failure] if failure else []
        if self.run.record_errors:
            lines.append(
                f"{self.run.record_errors} records CINC sent could not be read; "
                "they were counted and not stored:"
            )
            lines += self.notes
            hidden = self.run.record_errors - len(self.notes)
            if hidden > 0:
                lines.append(f"… and {hidden} more.")
        return "\n".join(lines)

    def _end(self, status, message, *, reason):
        """End the run as FAILED or PARTIAL with ``message`` first in error.

        ``reason`` is what the log says: short, without upstream text (which
        may quote leads' personal data).
        """
        now = timezone.now()
        self.run.status = status
        self.run.finished_at = now
        self.run.waiting_until = None
        self.run.heartbeat_at = now
        self.run.error = self._error_text(message)
        self._save(PROGRESS_FIELDS + ("status", "finished_at", "waiting_until"))
        self._prune_pages()
        logger.warning(
            "Sync %s of connection %s ended %s in phase %s at offset %s: %s",
            self.run.pk,
            self.connection.pk,
            status,
            self.run.phase,
            self.run.next_offset,
            reason,
            extra=self._extra(),
        )
        self._report()

    def _needs_reconnect(self, exc):
        reason = (
            "the CINC user who connected is no longer a broker"
            if isinstance(exc, NotBroker)
            else "CINC no longer grants the portal read access (api:read)"
        )
        message = f"CINC refused the sync: {reason}. Reconnect the site to resume."
        Connection.objects.filter(pk=self.connection.pk).update(
            status=Connection.Status.NEEDS_RECONNECT,
            last_error=message,
            last_error_at=timezone.now(),
        )
        self._end(SyncRun.Status.FAILED, message, reason=type(exc).__name__)

    def _reschedule(self, exc):
        """Stop for a long rate-limit wait: queue the run again for later."""
        now = timezone.now()
        if self.run.started_at and now - self.run.started_at > MAX_RUN_AGE:
            self._end(
                SyncRun.Status.FAILED,
                f"CINC kept the sync waiting for its rate limit for more than "
                f"{MAX_RUN_AGE.total_seconds() / 3600:.0f} hours ({exc}); it "
                "gave up. The pages synced before were kept.",
                reason="rate-limit waits longer than the maximum run age",
            )
            return SyncOutcome(run=self.run)
        retry_at = exc.retry_at
        if retry_at is None:
            retry_at = now + timedelta(seconds=exc.retry_after or 20)
        retry_at = max(retry_at, now + timedelta(seconds=1))
        self.run.waiting_until = retry_at
        self.run.heartbeat_at = now
        self.run.error = "\n".join(self.notes)
        saved = self._save(
            PROGRESS_FIELDS + ("waiting_until",), status=SyncRun.Status.QUEUED
        )
        if not saved:
            return SyncOutcome()
        self.run.status = SyncRun.Status.QUEUED
        retry_in = math.ceil((retry_at - now).total_seconds()) + 1
        logger.info(
            "Sync %s of connection %s waits %ss for the rate limit (%s at offset %s)",
            self.run.pk,
            self.connection.pk,
            retry_in,
            self.run.phase,
            self.run.next_offset,
            extra=self._extra(),
        )
        self._report()
        return SyncOutcome(run=self.run, retry_in=retry_in)

    def _prune_pages(self):
        """Drop the page ids of this connection's earlier finished runs: they
        only serve a run until it ends (this run's stay, for diagnosis)."""
        SyncRunPage.objects.filter(run__connection=self.connection).exclude(
            run=self.run
        ).exclude(run__status__in=ACTIVE_STATUSES).delete()

    def _report(self):
        if self.progress is not None:
            self.progress(self.run)

    def _extra(self):
        return _extra(self.connection.pk, self.run.pk)
