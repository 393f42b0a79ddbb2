"""Benchmark 1: a real sync against the rate-limit floor.

A sandbox (started here, on 127.0.0.1, with its own temporary database) is
seeded with ``leads`` leads and a short rate window (15 requests per 2 s
instead of per 20 s). A broker connects through the portal's OAuth views
and the sandbox's consent form; then the function the Celery task calls,
``leads.sync.sync_connection``, runs in the foreground with
``CINC_MAX_INLINE_WAIT`` long enough that every wait is slept in place.

The sandbox's own counters say how many requests reached each endpoint and
how many 429s the portal caused. The floor is the time the rate limit
imposes on those requests in the order the sync makes them (see
``floor_windows``).
"""

import math
import shutil
import tempfile
from pathlib import Path

from . import support

PAGE_SIZE = 500
WINDOW = 2.0
LIMIT = 15
# The sync's order: one phase after the other.
SYNC_ORDER = ("me", "agents", "leads")
STARTUP_TIMEOUT = 300.0


def walk_requests(records, page_size=PAGE_SIZE):
    """Requests an offset walk makes: full pages, then the short (or empty)
    page that ends it, since nothing else says the walk is over."""
    return records // page_size + 1


def expected_requests(*, agents, leads, page_size=PAGE_SIZE):
    return {
        "me": 1,
        "agents": walk_requests(agents, page_size),
        "leads": walk_requests(leads, page_size),
    }


def floor_windows(requests, *, limit=LIMIT, order="sequence"):
    """Rate windows the requests need, end to end.

    Each endpoint has its own budget of ``limit`` requests per window, and
    a window opens with the first request after the previous one closed.
    ``n`` requests to one endpoint therefore span ``ceil(n / limit)``
    windows: ``ceil(n / limit) - 1`` of them must be waited out in full,
    and the last one is where the final requests go.

    - ``order="sequence"`` (what the sync does: ``me``, then agents, then
      leads): one phase starts when the previous one ended, so the waits
      add up, and the run ends in the last window of the last phase:
      ``1 + sum(ceil(n / limit) - 1)``. A phase that fits in one window
      costs no wait at all.
    - ``order="parallel"``: the busiest endpoint decides,
      ``max(ceil(n / limit))``.
    """
    spans = [math.ceil(n / limit) for n in requests.values() if n > 0]
    if not spans:
        return 0
    if order == "parallel":
        return max(spans)
    if order != "sequence":
        raise ValueError("order is 'sequence' or 'parallel'")
    return 1 + sum(span - 1 for span in spans)


def _breakdown(spent, wall):
    figures = {
        label: round(seconds, 2) if seconds is not None else None
        for label, seconds in spent.items()
    }
    # What the prefetch thread spent overlaps the main thread's time.
    known = [
        seconds
        for label, seconds in spent.items()
        if seconds is not None and not label.endswith("(ahead)")
    ]
    figures["other"] = round(wall - sum(known), 2)
    return figures


def portal_limits(window, limit, *, prefetch=True):
    """Settings for the portal's limiter and walk: told the site's window
    and limit (``CINC_RATE_WINDOW`` / ``CINC_RATE_LIMIT``; ``window`` None
    keeps the shipped defaults, CINC's 15 per 20 s) and whether pages are
    fetched ahead (``CINC_SYNC_PREFETCH``)."""
    values = {"CINC_SYNC_PREFETCH": prefetch}
    if window is not None:
        values.update(CINC_RATE_WINDOW=float(window), CINC_RATE_LIMIT=int(limit))
    return values


def run(
    *,
    leads=50_000,
    agents=support.AGENTS,
    window=WINDOW,
    limit=LIMIT,
    limiter_window_s=None,
    prefetch=True,
    seed=support.SEED,
    workdir=None,
    progress=None,
):
    """Start a sandbox, connect, sync in the foreground; return figures.

    ``limiter_window_s``: the window the portal's limiter is told (None:
    the shipped 20 s); ``prefetch``: ``CINC_SYNC_PREFETCH``.
    """
    from django.test import override_settings

    from sandbox.process import start_sandbox

    say = progress or (lambda message: None)
    own_workdir = workdir is None
    workdir = Path(workdir or tempfile.mkdtemp(prefix="bench-sync-"))
    say(f"sync: starting a sandbox with {leads:,} leads, {limit} per {window:g} s")
    server = start_sandbox(
        workdir / "sandbox.sqlite3",
        agents=agents,
        leads=leads,
        seed=seed,
        second_site_agents=2,
        second_site_leads=0,
        window=window,
        limit=limit,
        startup_timeout=STARTUP_TIMEOUT,
    )
    try:
        limits = portal_limits(limiter_window_s, limit, prefetch=prefetch)
        with override_settings(**support.portal_settings(server), **limits):
            figures = _measure(server, leads, agents, window, limit, say)
        figures["limiter_window_s"] = limiter_window_s
        figures["prefetch"] = prefetch
        return figures
    finally:
        server.stop()
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def _breakdown_targets():
    """Where a sync's time goes: HTTP round trips, the client's limiter
    (its sleeps included), and writing pages."""
    from cinc.client import CincClient
    from leads import sync

    return {
        "http": (CincClient, "_send"),
        "limiter": (CincClient, "_acquire"),
        "write_leads": (sync, "upsert_leads"),
        "write_agents": (sync, "upsert_agents"),
    }


def _measure(server, leads, agents, window, limit, say):
    from accounts import services
    from leads import sync

    broker = support.make_broker("sync")
    connection = support.connect_via_oauth(server, broker)
    server.control.reset_stats()
    server.control.reset_rate_limits()

    say("sync: running leads.sync.sync_connection in the foreground")
    window_reset = support.reset_window_peak()
    rss_before = support.rss_mb()
    with (
        support.time_spent_in(_breakdown_targets()) as spent,
        support.Stopwatch() as clock,
    ):
        outcome = sync.sync_connection(connection_id=connection.pk)
    sync_peak = support.window_peak_mb() if window_reset else support.peak_rss_mb()
    run = outcome.run
    run.refresh_from_db()
    stats = server.control.stats()

    made = {endpoint: stats["requests"].get(endpoint, 0) for endpoint in SYNC_ORDER}
    expected = expected_requests(agents=agents, leads=leads)
    windows = floor_windows(made, limit=limit, order="sequence")
    floor_seconds = windows * window
    return {
        "leads": leads,
        "agents": agents,
        "window_s": window,
        "limit": limit,
        "order": "sequence (me, then agents, then leads)",
        "portal_limiter_window_s": services.rate_limiter().window,
        "run_status": run.status,
        "run_error": run.error,
        "requests": made,
        "requests_other": {
            endpoint: count
            for endpoint, count in stats["requests"].items()
            if endpoint not in SYNC_ORDER and count
        },
        "expected_requests": expected,
        "issue_formula_lead_requests": math.ceil(leads / PAGE_SIZE),
        "extra_requests": sum(made.values()) - sum(expected.values()),
        "portal_429": stats["rate_limited"]["window"],
        "early_429": stats["rate_limited"]["early"],
        "run_rate_limited": run.rate_limited,
        "run_retries": run.retries,
        "records_seen": run.records_seen,
        "created": run.created,
        "wall_s": round(clock.seconds, 2),
        "breakdown_s": _breakdown(spent, clock.seconds),
        "floor_windows": windows,
        "floor_parallel_windows": floor_windows(made, limit=limit, order="parallel"),
        "floor_s": floor_seconds,
        "wall_over_floor": round(clock.seconds / floor_seconds, 3),
        "rss_mb_before": rss_before,
        "sync_peak_rss_mb": sync_peak,
        "peak_rss_mb": support.peak_rss_mb(),
    }
