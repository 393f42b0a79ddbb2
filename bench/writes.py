"""Benchmark 2: bulk writes of the mirror against a naive per-row loop.

Raw lead records made by the sandbox's seed generator go through
``leads.sync.upsert_leads`` page by page (500 a page, as the sync sends
them) three times: into an empty mirror, again with nothing changed, and
again with 1% of the leads changed (their status, which also writes
history rows). Every INSERT/UPDATE/DELETE statement is counted with an
execute wrapper, so "an unchanged re-sync writes zero rows" is checked, not
assumed.

The naive loop parses the same records with the same code and calls
``Lead.objects.update_or_create`` once per row, first into another empty
mirror, then again over the rows it wrote. It runs on a sample (the first
``naive_sample`` records) and its rate is compared with the bulk rate.
"""

import copy
import logging

from django.db import connection as db

from . import support

logger = logging.getLogger(__name__)

PAGE_SIZE = 500
CHANGED_SHARE = 0.01
LEAD_TABLE = "leads_lead"


def database_label():
    vendor = db.vendor
    if vendor == "sqlite":
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    if vendor == "postgresql":
        version = db.pg_version
        return f"PostgreSQL {version // 10000}.{version % 10000}"
    return vendor


def lead_indexes():
    """Indexes (unique ones included, not the primary key) on leads_lead."""
    with db.cursor() as cursor:
        constraints = db.introspection.get_constraints(cursor, "leads_lead")
    return sum(
        1
        for constraint in constraints.values()
        if (constraint["index"] or constraint["unique"])
        and not constraint["primary_key"]
    )


def changed_copy(records, share=CHANGED_SHARE):
    """A deep copy of ``records`` with every n-th lead's status moved on to
    the next documented status; returns (records, number changed)."""
    from sandbox.seed import LEAD_STATUSES

    step = max(1, round(1 / share))
    changed = copy.deepcopy(records)
    count = 0
    for record in changed[::step]:
        info = record.setdefault("info", {})
        current = info.get("status")
        position = LEAD_STATUSES.index(current) if current in LEAD_STATUSES else -1
        info["status"] = LEAD_STATUSES[(position + 1) % len(LEAD_STATUSES)]
        count += 1
    return changed, count


def bulk_pass(connection, records, page_size=PAGE_SIZE):
    """Upsert ``records`` page by page; figures of the pass."""
    from leads.sync import upsert_leads

    created = updated = unchanged = history = 0
    with support.counting_writes() as writes, support.Stopwatch() as clock:
        for page in support.pages_of(records, page_size):
            counts = upsert_leads(connection=connection, records=page)
            created += counts.created
            updated += counts.updated
            unchanged += counts.unchanged
            history += counts.history
    return {
        "records": len(records),
        "seconds": round(clock.seconds, 3),
        "rows_per_s": round(len(records) / clock.seconds),
        "created": created,
        "updated": updated,
        "unchanged": unchanged,
        "history_rows": history,
        "write_statements": dict(writes.statements),
        "lead_write_statements": writes.total(LEAD_TABLE),
        "rows_written": dict(writes.rows),
    }


def _naive_rows(connection, records):
    """What the naive loop writes per record: the same parse, columns and
    hash as the sync, and the assigned agents resolved by a dict lookup."""
    from cinc.records import parse_lead
    from leads.models import Agent
    from leads.sync import _lead_columns, content_hash

    agents = dict(
        Agent.objects.filter(connection=connection).values_list("cinc_id", "pk")
    )
    for raw in records:
        record = parse_lead(raw)
        values = _lead_columns(record)
        values.update(
            raw=record.raw,
            content_hash=content_hash(record.raw),
            primary_agent_id=agents.get(values["primary_agent_cinc_id"]),
            listing_agent_id=agents.get(values["listing_agent_cinc_id"]),
            partner_id=agents.get(values["partner_cinc_id"]),
        )
        yield record.id, values


def naive_pass(connection, records):
    """``update_or_create`` once per record (autocommit, as a plain loop)."""
    from leads.models import Lead

    with support.counting_writes() as writes, support.Stopwatch() as clock:
        for cinc_id, values in _naive_rows(connection, records):
            Lead.objects.update_or_create(
                connection=connection, cinc_id=cinc_id, defaults=values
            )
    return {
        "records": len(records),
        "seconds": round(clock.seconds, 3),
        "rows_per_s": round(len(records) / clock.seconds),
        "lead_write_statements": writes.total(LEAD_TABLE),
    }


def run(*, leads=100_000, naive_sample=5_000, page_size=PAGE_SIZE, progress=None):
    """Run the writes benchmark on the configured database; return figures."""
    from leads.sync import upsert_agents

    say = progress or (lambda message: None)
    agent_records, records = support.sandbox_records(leads)
    changed, changed_count = changed_copy(records)
    broker = support.make_broker("writes")
    bulk = support.plain_connection(broker)
    # Another broker's mirror, so the pages benchmark can adopt the bulk one.
    naive = support.plain_connection(support.make_broker("naive"))
    for connection in (bulk, naive):
        upsert_agents(connection=connection, records=agent_records)

    say(f"writes: {len(records):,} leads into an empty mirror")
    passes = {"initial": bulk_pass(bulk, records, page_size)}
    existing_lookup = probe_existing_lookup(bulk)
    say("writes: the same leads again, nothing changed")
    passes["unchanged"] = bulk_pass(bulk, records, page_size)
    say(f"writes: again with {changed_count:,} leads changed")
    passes["changed_1pct"] = bulk_pass(bulk, changed, page_size)

    sample = records[: min(naive_sample, len(records))]
    say(f"writes: naive update_or_create loop on {len(sample):,} leads (twice)")
    naive_figures = {
        "insert": naive_pass(naive, sample),
        "update": naive_pass(naive, sample),
    }
    ratios = {
        "initial": _ratio(passes["initial"], naive_figures["insert"]),
        "unchanged": _ratio(passes["unchanged"], naive_figures["update"]),
        "changed_1pct": _ratio(passes["changed_1pct"], naive_figures["update"]),
    }
    return {
        "database": database_label(),
        "broker": broker.username,
        "leads": len(records),
        "page_size": page_size,
        "changed": changed_count,
        "passes": passes,
        "naive": {
            "sample": len(sample),
            **naive_figures,
            "extrapolated_seconds": round(
                len(records) / naive_figures["insert"]["rows_per_s"], 1
            ),
        },
        "ratio": ratios,
        "existing_lookup_probe": existing_lookup,
        "lead_indexes": lead_indexes(),
        "unchanged_writes_zero": not any(
            passes["unchanged"]["write_statements"].values()
        ),
    }


def probe_existing_lookup(connection, *, size=PAGE_SIZE, repeats=5):
    """Diagnostic: loading a page's existing rows (ids ``IN`` a page, a few
    columns), timed three ways: through ``leads.sync._existing`` as
    ``upsert_leads`` calls it (None if that helper is gone), and as a plain
    query with the model's ordering (``Lead.Meta.ordering``) and without."""
    import time

    from leads import sync
    from leads.models import Lead

    rows = Lead.objects.filter(connection=connection).order_by("pk")
    total = rows.count()
    step = max(1, total // size)
    ids = list(rows.values_list("cinc_id", flat=True)[::step][:size])
    fields = ["cinc_id", "content_hash", "changed_at", "removed_at", "status"]
    base = Lead.objects.filter(connection=connection, cinc_id__in=ids).only(*fields)
    helper = getattr(sync, "_existing", None)
    loads = {
        "upsert_leads_ms": (
            (lambda: helper(Lead, connection, ids, fields)) if helper else None
        ),
        "with_model_ordering_ms": lambda: list(base.all()),
        "without_ordering_ms": lambda: list(base.order_by()),
    }
    timings = {}
    for label, load in loads.items():
        if load is None:
            timings[label] = None
            continue
        load()
        started = time.perf_counter()
        for _ in range(repeats):
            load()
        timings[label] = round((time.perf_counter() - started) / repeats * 1000, 1)
    timings["mirror_rows"] = total
    return timings


def _ratio(bulk, naive):
    return round(bulk["rows_per_s"] / naive["rows_per_s"], 1)
