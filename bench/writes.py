"""Benchmark 2: bulk writes of the mirror against a naive per-row loop.

Raw lead records made by the sandbox's seed generator go through
``leads.sync.upsert_leads`` page by page (500 a page, as the sync sends
them, committed ten pages at a time, as the sync commits pages that were
fetched before it could write them) three times: into an empty mirror,
again with nothing changed, and again with 1% of the leads changed (their
status, which also writes history rows). Every INSERT, UPDATE, DELETE and
COPY is counted (``support.counting_writes``), so "an unchanged re-sync
writes zero rows" is checked, not assumed.

The naive loop parses the same records with the same code and calls
``Lead.objects.update_or_create`` once per row, first into another empty
mirror, then again over the rows it wrote. It runs on a sample (the first
``naive_sample`` records) and its rate is compared with the bulk rate.

The empty-mirror pass and the naive loop right after it make a pair;
``run_pair`` measures more pairs, each in a database of its own, and the
target is judged on the median of their ratios (``bench.cli``). Two
probes run each in a database of their own too:
``run_steps`` writes the same leads into an empty mirror with a timer on
each step of ``upsert_leads`` (where a lead's time goes; the timers cost
about 5% of the pass, so the passes of ``run`` go without them), and
``run_unindexed`` writes them into a ``leads_lead`` stripped of its
secondary indexes, then builds those back: what the database's index work
costs, measured rather than estimated.
"""

import copy
import logging
from contextlib import nullcontext

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


def _write_steps():
    """Where a page's write time goes: the steps of ``upsert_leads`` (by
    their private names; a renamed one is reported as None) and the
    commit of its transaction."""
    from leads import sync

    return {
        "hash": (sync, "_hashed"),
        "existing rows": (sync, "_existing"),
        "parse": (sync, "_parsed"),
        "columns": (sync, "_lead_columns"),
        "statement": (sync, "_store"),
        "commit": (db, "commit"),
    }


def bulk_pass(connection, records, page_size=PAGE_SIZE, *, steps=False):
    """Upsert ``records`` page by page, committed as the sync commits pages
    that arrive faster than it writes them: ``GROUP_PAGES`` pages a
    transaction, written without savepoints; figures of the pass.
    ``steps=True`` also times each step of ``upsert_leads``."""
    from django.db import transaction

    from leads.sync import GROUP_PAGES, BackgroundCheckpoints, upsert_leads

    created = updated = unchanged = history = 0
    pages = support.pages_of(records, page_size)
    timers = support.time_spent_in(_write_steps()) if steps else nullcontext({})
    with (
        BackgroundCheckpoints(),
        support.counting_writes() as writes,
        timers as spent,
        support.Stopwatch() as clock,
    ):
        for group in support.pages_of(list(pages), GROUP_PAGES):
            with transaction.atomic():
                for page in group:
                    counts = upsert_leads(
                        connection=connection, records=page, savepoint=False
                    )
                    created += counts.created
                    updated += counts.updated
                    unchanged += counts.unchanged
                    history += counts.history
    figures = {
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
    if steps:
        figures["steps_us_per_lead"] = _per_lead(spent, clock.seconds, len(records))
    return figures


def _per_lead(spent, seconds, leads):
    """Microseconds a lead in each step, and in the rest of ``upsert_leads``."""
    figures = {
        step: None if value is None else round(value / leads * 1e6, 1)
        for step, value in spent.items()
    }
    known = sum(value for value in spent.values() if value)
    figures["rest"] = round((seconds - known) / leads * 1e6, 1)
    return figures


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


def _mirrors(agent_records, *prefixes):
    """A plain connection (with its agents mirrored) per broker prefix."""
    from leads.sync import upsert_agents

    connections = []
    for prefix in prefixes:
        connection = support.plain_connection(support.make_broker(prefix))
        upsert_agents(connection=connection, records=agent_records)
        connections.append(connection)
    return connections


def run(*, leads=100_000, naive_sample=5_000, page_size=PAGE_SIZE, progress=None):
    """Run the writes benchmark on the configured database; return figures."""
    from leads.sync import GROUP_PAGES

    say = progress or (lambda message: None)
    agent_records, records = support.sandbox_records(leads)
    changed, changed_count = changed_copy(records)
    # Another broker's mirror for the naive loop, so the pages benchmark
    # can adopt the bulk one.
    bulk, naive = _mirrors(agent_records, "writes", "naive")
    broker = bulk.broker

    sample = records[: min(naive_sample, len(records))]
    say(f"writes: {len(records):,} leads into an empty mirror")
    passes = {"initial": bulk_pass(bulk, records, page_size)}
    # Right after the pass it is compared with, as in run_pair.
    say(f"writes: naive update_or_create loop on {len(sample):,} leads")
    naive_figures = {"insert": naive_pass(naive, sample)}
    say("writes: the same leads again, nothing changed")
    passes["unchanged"] = bulk_pass(bulk, records, page_size)
    say(f"writes: again with {changed_count:,} leads changed")
    passes["changed_1pct"] = bulk_pass(bulk, changed, page_size)
    say(f"writes: naive update_or_create loop over its {len(sample):,} leads")
    naive_figures["update"] = naive_pass(naive, sample)
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
        "pages_per_commit": GROUP_PAGES,
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
        "lead_indexes": lead_indexes(),
        "unchanged_writes_zero": not any(
            passes["unchanged"]["write_statements"].values()
        ),
    }


def _ratio(bulk, naive):
    return round(bulk["rows_per_s"] / naive["rows_per_s"], 1)


def run_steps(*, leads=100_000, page_size=PAGE_SIZE, progress=None):
    """Where a lead's write time goes: the empty-mirror pass, then the
    unchanged one, with a timer on each step of ``upsert_leads``."""
    say = progress or (lambda message: None)
    agent_records, records = support.sandbox_records(leads)
    (connection,) = _mirrors(agent_records, "steps")
    say(f"writes: {len(records):,} leads into an empty mirror, each step timed")
    initial = bulk_pass(connection, records, page_size, steps=True)
    say("writes: the same leads again, each step timed")
    unchanged = bulk_pass(connection, records, page_size, steps=True)
    return {
        "leads": len(records),
        "rows_per_s": initial["rows_per_s"],
        "steps_us_per_lead": initial["steps_us_per_lead"],
        "unchanged_steps_us_per_lead": unchanged["steps_us_per_lead"],
    }


def secondary_indexes():
    """[(name, CREATE INDEX statement)] of the indexes on ``leads_lead``
    that back neither its primary key nor a unique constraint: the ones a
    new lead only pays for so that pages are fast."""
    with db.cursor() as cursor:
        constraints = db.introspection.get_constraints(cursor, LEAD_TABLE)
        if db.vendor == "postgresql":
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s",
                [LEAD_TABLE],
            )
        else:
            cursor.execute(
                "SELECT name, sql FROM sqlite_master "
                "WHERE type = 'index' AND tbl_name = %s",
                [LEAD_TABLE],
            )
        statements = dict(cursor.fetchall())
    return sorted(
        (name, statements[name])
        for name, constraint in constraints.items()
        if constraint["index"]
        and not constraint["unique"]
        and not constraint["primary_key"]
        and statements.get(name)
    )


def run_unindexed(*, leads=100_000, page_size=PAGE_SIZE, progress=None):
    """The empty-mirror pass into a ``leads_lead`` without its secondary
    indexes, then the time to build them over the rows written: what the
    index work costs a new lead, and what building the indexes after a
    first load (instead of keeping them during it) would give. This
    database is its own: nothing else reads it afterwards."""
    from django.db import transaction

    say = progress or (lambda message: None)
    agent_records, records = support.sandbox_records(leads)
    (connection,) = _mirrors(agent_records, "unindexed")
    indexes = secondary_indexes()
    quote = db.ops.quote_name
    with db.cursor() as cursor:
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {quote(name)}")
    built = False
    try:
        say(f"writes: {len(records):,} leads without {len(indexes)} secondary indexes")
        figures = bulk_pass(connection, records, page_size)
        say(f"writes: building the {len(indexes)} indexes over them")
        with support.Stopwatch() as build:
            with transaction.atomic(), db.cursor() as cursor:
                for _, statement in indexes:
                    cursor.execute(statement)
        built = True
    finally:
        if not built:  # the database is left as it was found
            with db.cursor() as cursor:
                for name, statement in indexes:
                    cursor.execute(f"DROP INDEX IF EXISTS {quote(name)}")
                    cursor.execute(statement)
    total = figures["seconds"] + build.seconds
    return {
        "leads": len(records),
        "dropped": [name for name, _ in indexes],
        "seconds": figures["seconds"],
        "rows_per_s": figures["rows_per_s"],
        "created": figures["created"],
        "build_seconds": round(build.seconds, 3),
        "rows_per_s_with_build": round(len(records) / total),
    }


def run_pair(*, leads=100_000, naive_sample=5_000, page_size=PAGE_SIZE, progress=None):
    """One more paired measurement of the empty-mirror target: the bulk
    pass into an empty mirror, then the naive loop on its sample right
    after it, in this process's own database. On a shared host the rate
    of either can move by 10-20% from one minute to the next; pairs
    measured back to back and the median of their ratios keep one slow
    minute from deciding the verdict."""
    say = progress or (lambda message: None)
    agent_records, records = support.sandbox_records(leads)
    bulk, naive = _mirrors(agent_records, "pair", "pair-naive")
    say(f"writes: paired run, {len(records):,} leads into an empty mirror")
    initial = bulk_pass(bulk, records, page_size)
    sample = records[: min(naive_sample, len(records))]
    say(f"writes: paired run, naive loop on {len(sample):,} leads")
    insert = naive_pass(naive, sample)
    return {
        "bulk_rows_per_s": initial["rows_per_s"],
        "naive_rows_per_s": insert["rows_per_s"],
        "ratio": _ratio(initial, insert),
    }
