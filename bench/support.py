"""Helpers shared by the benchmark bodies (they run inside a Django process).

Timing statistics, memory readings from ``/proc`` and ``getrusage``, a
counter of the SQL writes a block of code sends, brokers and connections
(made for real through the OAuth flow, or as plain rows when no CINC call
is needed) and raw CINC records from the sandbox's own seed generator.
"""

import math
import re
import resource
import statistics
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from urllib.parse import urlsplit

SANDBOX_BROKER = "buum@cu.com"
SANDBOX_PASSWORD = "sandbox"  # noqa: S105 - the documented sandbox login
SANDBOX_REDIRECT_URI = "http://127.0.0.1:8000/cinc/callback/"
SEED = 42
AGENTS = 25
WRITE_RE = re.compile(
    r'^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)"?', re.IGNORECASE
)


# Timing ----------------------------------------------------------------------


def percentile(values, share):
    """Nearest-rank percentile: the smallest value with ``share`` of the
    values at or below it."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def summarize_ms(seconds):
    """Median and p95 (milliseconds) of a list of durations in seconds."""
    return {
        "n": len(seconds),
        "median_ms": round(statistics.median(seconds) * 1000, 2),
        "p95_ms": round(percentile(seconds, 0.95) * 1000, 2),
        "max_ms": round(max(seconds) * 1000, 2),
    }


class Stopwatch:
    def __enter__(self):
        self.started = time.perf_counter()
        self.seconds = None
        return self

    def __exit__(self, *exc_info):
        self.seconds = time.perf_counter() - self.started


# Memory ----------------------------------------------------------------------


def _status_kib(name):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return None


def rss_mb():
    """Resident set size of this process now, in MB (Linux)."""
    return round(_status_kib("VmRSS") / 1024, 1)


def peak_rss_mb():
    """Peak resident set size of this process so far (``ru_maxrss``), MB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def window_peak_mb():
    """Peak RSS since the last ``reset_window_peak`` (``VmHWM``), MB."""
    return round(_status_kib("VmHWM") / 1024, 1)


def reset_window_peak():
    """Reset ``VmHWM`` to the current RSS (Linux ``clear_refs`` value 5).

    Returns False where the kernel does not allow it; ``window_peak_mb``
    then reports the peak of the whole process.
    """
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


# SQL writes ------------------------------------------------------------------


class WriteCounter:
    """A ``connection.execute_wrapper`` that counts INSERT, UPDATE and DELETE
    statements per table (and the rows the driver says they touched)."""

    def __init__(self):
        self.statements = Counter()
        self.rows = Counter()

    def __call__(self, execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        match = WRITE_RE.match(sql)
        if match:
            verb = match.group(1).split()[0].upper()
            key = f"{verb} {match.group(2)}"
            self.statements[key] += 1
            rowcount = getattr(context.get("cursor"), "rowcount", -1)
            if isinstance(rowcount, int) and rowcount > 0:
                self.rows[key] += rowcount
        return result

    def total(self, table=None):
        return sum(
            count
            for key, count in self.statements.items()
            if table is None or key.endswith(" " + table)
        )


@contextmanager
def counting_writes(using="default"):
    """Count the writes the block sends: statements through Django's
    cursor, and the COPYs the sync sends through the driver's own cursor on
    PostgreSQL (``leads.sync._copy``), which no execute wrapper sees."""
    from django.db import connections

    from leads import sync

    counter = WriteCounter()
    original = sync._copy

    def counted_copy(cursor, table, columns, rows):
        original(cursor, table, columns, rows)
        key = f"COPY {table.strip(chr(34))}"
        counter.statements[key] += 1
        counter.rows[key] += len(rows)

    sync._copy = counted_copy
    try:
        with connections[using].execute_wrapper(counter):
            yield counter
    finally:
        sync._copy = original


# Brokers and connections -----------------------------------------------------


def make_broker(prefix="bench"):
    from django.contrib.auth import get_user_model

    # No password: nobody signs in with it (clients use force_login), and
    # hashing one costs half a second.
    return get_user_model().objects.create_user(
        username=f"{prefix}-{uuid.uuid4().hex[:8]}",
        password=None,
        first_name="Bench",
        last_name="Broker",
    )


def plain_connection(broker, *, agent_id="AGENT_MDID0"):
    """A Connection row for writes and pages (no CINC call is made)."""
    from accounts.models import Connection

    return Connection.objects.create(
        broker=broker,
        api_url="http://127.0.0.1:9/v2/site",
        cinc_agent_id=agent_id,
        cinc_username=SANDBOX_BROKER,
        cinc_roles=["client", "broker"],
        scopes=["api:read", "api:create"],
        requested_scopes=["api:read", "api:create"],
    )


def portal_settings(server, *, max_inline_wait=60.0):
    """Settings pointing the portal at a running sandbox."""
    return {
        "CINC_AUTHORIZE_URL": server.authorize_url,
        "CINC_TOKEN_URL": server.token_url,
        "CINC_API_URL": server.api_url,
        "CINC_CLIENT_ID": server.client_id,
        "CINC_CLIENT_SECRET": server.client_secret,
        "CINC_REDIRECT_URI": SANDBOX_REDIRECT_URI,
        "CINC_SCOPES": ["api:read", "api:create"],
        "CINC_MAX_INLINE_WAIT": float(max_inline_wait),
    }


def connect_via_oauth(server, broker, *, username=SANDBOX_BROKER):
    """Connect ``broker`` to the sandbox's site through the portal's own
    views and the sandbox's consent form; return the Connection.

    Call inside ``override_settings(**portal_settings(server))``.
    """
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(broker)
    authorize_url = client.post(reverse("accounts:cinc-connect"))["Location"]
    callback = server.control.approve(authorize_url, username, SANDBOX_PASSWORD)
    parts = urlsplit(callback)
    response = client.get(f"{parts.path}?{parts.query}")
    if response.status_code not in (200, 302):
        raise RuntimeError(f"the connect callback answered {response.status_code}")
    connection = broker.cinc_connections.first()
    if connection is None:
        raise RuntimeError("the OAuth flow did not create a connection")
    return connection


# Records ---------------------------------------------------------------------


def sandbox_records(leads, *, agents=AGENTS, seed=SEED):
    """(agent records, lead records) of the sandbox's demo site, made
    in-process by the sandbox's seed generator (the same records a sandbox
    seeded with these numbers serves)."""
    from sandbox.seed import build_sites

    demo, _second = build_sites(
        agents=agents,
        leads=leads,
        seed=seed,
        second_site_agents=2,
        second_site_leads=0,
    )
    return [agent["record"] for agent in demo["agents"]], demo["leads"]


def pages_of(records, size):
    for start in range(0, len(records), size):
        yield records[start : start + size]


@contextmanager
def time_spent_in(targets):
    """Add up the seconds spent in each ``(owner, attribute)`` of
    ``targets`` (a dict label -> (owner, attribute)) while the block runs,
    by wrapping them in this process only. A target that does not exist
    (renamed code) is reported as None instead of failing the benchmark.

    Time spent in another thread than the one that entered the block (the
    sync's prefetch thread) is kept apart, under ``label + " (ahead)"``: it
    overlaps the main thread's time instead of adding to it.
    """
    import functools
    import threading

    main = threading.get_ident()
    spent = {}
    restore = []
    for label, (owner, attribute) in targets.items():
        original = getattr(owner, attribute, None)
        if original is None:
            spent[label] = None
            continue
        spent[label] = 0.0

        def wrapper(*args, _original=original, _label=label, **kwargs):
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                key = _label if threading.get_ident() == main else f"{_label} (ahead)"
                spent[key] = spent.get(key, 0.0) + time.perf_counter() - started

        functools.update_wrapper(wrapper, original)
        setattr(owner, attribute, wrapper)
        restore.append((owner, attribute, original))
    try:
        yield spent
    finally:
        for owner, attribute, original in reversed(restore):
            setattr(owner, attribute, original)
