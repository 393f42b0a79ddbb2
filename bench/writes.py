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


def bulk_pass(connection, records, page_size=PAGE_SIZE):
    """Upsert ``records`` page by page, committed as the sync commits pages
    that arrive faster than it writes them: ``GROUP_PAGES`` pages a
    transaction, written without savepoints; figures of the pass."""
    from django.db import transaction

    from leads.sync import GROUP_PAGES, BackgroundCheckpoints, upsert_leads

    created = updated = unchanged = history = 0
    pages = support.pages_of(records, page_size)
    with (
        BackgroundCheckpoints(),
        support.counting_writes() as writes,
        support.time_spent_in(_write_steps()) as spent,
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
        "steps_us_per_lead": _per_lead(spent, clock.seconds, len(records)),
    }


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


def run(*, leads=100_000, naive_sample=5_000, page_size=PAGE_SIZE, progress=None):
    """Run the writes benchmark on the configured database; return figures."""
    from leads.sync import GROUP_PAGES, upsert_agents

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
