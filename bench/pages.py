"""Benchmark 4: the broker's pages with a large lead book.

Three steps, each in its own worker process on the same scratch database:

- ``seed``: a broker, a connection, the sandbox seed's agents and
  ``leads`` leads written through ``leads.sync.upsert_leads`` (500 a page,
  as a sync writes them), 1% of them changed once (so leads have history)
  and a finished sync run for the dashboard. When the writes benchmark ran
  first on the same database, its mirror (the same records, written and
  changed the same way) is adopted instead of written again.
- ``run``: each page requested through Django's test ``Client`` in this
  process (the whole middleware stack, the view and the template), timed
  per request: median and p95 after a warm-up, and the SQL queries one
  request makes. The list, a search and a filtered view are also counted
  with the list's page size set to 10, 50 and 200, to show that queries do
  not grow with the page size.
- ``run_csv``: the CSV export of every lead, consumed as a stream, with the
  process's peak RSS before and while it streams.
"""

import re
import statistics

from . import support

PAGE_SIZES = (10, 50, 200)
WARMUP = 2
REPEATS = 30
# A page slower than this in all (seconds) is timed fewer times.
BUDGET_S = 8.0
MIN_REPEATS = 5
DEEP_PAGE = 1_500
SLOWEST = 3
SQL_CHARS = 600


def seed(*, leads=100_000, adopt=None, progress=None):
    """Fill the mirror (or adopt the broker ``adopt`` whose mirror the
    writes benchmark left); return what the other steps need to find it."""
    from django.contrib.auth import get_user_model

    from leads.models import Lead

    say = progress or (lambda message: None)
    if adopt:
        broker = get_user_model().objects.get(username=adopt)
        connection = broker.cinc_connections.get()
        seconds = None
        say(f"pages: using the mirror of {adopt} that the writes benchmark left")
    else:
        broker, connection, seconds = _fill(leads, say)
    _finished_run(connection)
    _analyze()

    mirrored = Lead.objects.filter(connection=connection).order_by("pk")
    count = mirrored.count()
    lead = mirrored[count // 2]
    names = mirrored.filter(last_name__regex=r"^[A-Za-z]+$")
    name = names.values_list("last_name", flat=True)[count // 4 :].first() or "a"
    phones = mirrored.exclude(cell_phone="").values_list("cell_phone", flat=True)
    phone = phones[count // 3 :].first() or "555"
    return {
        "broker": broker.username,
        "leads": count,
        "adopted": bool(adopt),
        "seed_seconds": seconds,
        "lead_uuid": str(lead.uuid),
        "search_name": name,
        "search_phone": phone[-7:],
    }


def _fill(leads, say):
    """A broker, a connection and ``leads`` leads written as a sync writes
    them, then 1% of them changed once (so leads have history)."""
    from leads.sync import upsert_agents, upsert_leads

    from .writes import changed_copy

    agent_records, records = support.sandbox_records(leads)
    broker = support.make_broker("pages")
    connection = support.plain_connection(broker)
    upsert_agents(connection=connection, records=agent_records)
    say(f"pages: writing {len(records):,} leads into the mirror")
    with support.Stopwatch() as clock:
        for page in support.pages_of(records, 500):
            upsert_leads(connection=connection, records=page)
        changed, _count = changed_copy(records)
        for page in support.pages_of(changed, 500):
            upsert_leads(connection=connection, records=page)
    return broker, connection, round(clock.seconds, 1)


def _finished_run(connection):
    """A finished full sync, as the dashboard shows after the first sync."""
    from django.utils import timezone

    from leads.models import Lead, SyncRun

    now = timezone.now()
    total = Lead.objects.filter(connection=connection).count()
    SyncRun.objects.create(
        connection=connection,
        status=SyncRun.Status.SUCCEEDED,
        phase=SyncRun.Phase.DONE,
        started_at=now,
        finished_at=now,
        records_seen=total,
        created=total,
    )


def _analyze():
    """On PostgreSQL, what autovacuum does soon after a sync wrote 100,000
    rows: planner statistics and the visibility map (index-only scans).
    Nothing does the like for a SQLite mirror, so neither does this."""
    from django.db import connection as db

    if db.vendor == "postgresql":
        # VACUUM cannot run in a transaction (a test's); ANALYZE can.
        with db.cursor() as cursor:
            cursor.execute("ANALYZE" if db.in_atomic_block else "VACUUM ANALYZE")


def pages(*, lead_uuid, search_name, search_phone, deep_page=DEEP_PAGE):
    """(name, url, query-counted-per-page-size?) of every measured page."""
    from urllib.parse import urlencode

    from django.urls import reverse

    leads = reverse("leads:list")
    return [
        ("leads list", leads, True),
        ("search: name", f"{leads}?{urlencode({'q': search_name})}", True),
        ("search: phone digits", f"{leads}?{urlencode({'q': search_phone})}", False),
        (
            "filtered + sorted",
            f"{leads}?status=inprogress&buyer=yes&sort=name",
            True,
        ),
        (f"deep page ({deep_page:,})", f"{leads}?page={deep_page}", False),
        ("lead page", reverse("leads:detail", args=[lead_uuid]), False),
        ("dashboard", reverse("leads:dashboard"), False),
    ]


def _client(username):
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    return client


def _get(client, url):
    response = client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}")
    return response


def capture_queries(client, url):
    """The SQL queries one request makes, with their times (seconds)."""
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(db) as captured:
        _get(client, url)
    return [
        {"sql": query["sql"], "seconds": float(query["time"])}
        for query in captured.captured_queries
    ]


def count_queries(client, url):
    return len(capture_queries(client, url))


def condensed(sql, limit=SQL_CHARS):
    """The SQL with its column list cut out, at most ``limit`` characters."""
    sql = re.sub(
        r"^(SELECT (?:DISTINCT )?)(.{80,}?)( FROM )", r"\1…\3", sql, flags=re.S
    )
    return sql if len(sql) <= limit else sql[: limit - 1] + "…"


def slowest_queries(queries, count=SLOWEST):
    ranked = sorted(queries, key=lambda query: query["seconds"], reverse=True)
    return [
        {"ms": round(query["seconds"] * 1000, 1), "sql": condensed(query["sql"])}
        for query in ranked[:count]
    ]


def queries_by_page_size(client, url, sizes=PAGE_SIZES):
    """Queries one request makes with the list's page size set to each of
    ``sizes`` (``leads.views.PAGE_SIZE``, patched in this process only)."""
    from leads import views

    original = views.PAGE_SIZE
    counts = {}
    try:
        for size in sizes:
            views.PAGE_SIZE = size
            counts[str(size)] = count_queries(client, url)
    finally:
        views.PAGE_SIZE = original
    return counts


def time_page(client, url, repeats=REPEATS, warmup=WARMUP, budget=BUDGET_S):
    """``repeats`` timed requests after ``warmup``; a page slower than
    ``budget`` seconds in all stops early (after at least ``MIN_REPEATS``)."""
    import time

    for _ in range(warmup):
        _get(client, url)
    seconds = []
    deadline = time.monotonic() + budget
    for _ in range(repeats):
        started = time.perf_counter()
        _get(client, url)
        seconds.append(time.perf_counter() - started)
        if len(seconds) >= MIN_REPEATS and time.monotonic() > deadline:
            break
    return support.summarize_ms(seconds)


def run(
    *,
    broker,
    lead_uuid,
    search_name,
    search_phone,
    leads=None,
    repeats=REPEATS,
    deep_page=DEEP_PAGE,
    progress=None,
):
    """Time every page; return figures per page."""
    from .writes import database_label

    say = progress or (lambda message: None)
    client = _client(broker)
    results = []
    for name, url, by_size in pages(
        lead_uuid=lead_uuid,
        search_name=search_name,
        search_phone=search_phone,
        deep_page=deep_page,
    ):
        say(f"pages: {name}")
        figures = {"page": name, "url": url, **time_page(client, url, repeats)}
        queries = capture_queries(client, url)
        figures["queries"] = len(queries)
        figures["query_ms"] = round(sum(q["seconds"] for q in queries) * 1000, 1)
        figures["slowest_queries"] = slowest_queries(queries)
        if by_size:
            counts = queries_by_page_size(client, url)
            figures["queries_by_page_size"] = counts
            figures["queries_constant"] = len(set(counts.values())) == 1
        figures["bytes"] = len(_get(client, url).content)
        results.append(figures)
    return {
        "database": database_label(),
        "leads": leads,
        "repeats": repeats,
        "pages": results,
        "worst_p95_ms": max(page["p95_ms"] for page in results),
        "median_of_medians_ms": round(
            statistics.median(page["median_ms"] for page in results), 2
        ),
    }


def run_csv(*, broker, leads=None, progress=None, **_ignored):
    """Stream the CSV export of every lead; memory and time."""
    from django.urls import reverse

    from .writes import database_label

    say = progress or (lambda message: None)
    client = _client(broker)
    say("pages: CSV export of every lead, streamed")
    window_reset = support.reset_window_peak()
    rss_before = support.rss_mb()
    with support.Stopwatch() as clock:
        response = _get(client, reverse("leads:export"))
        if not response.streaming:
            raise RuntimeError("the CSV export is not a streaming response")
        size = lines = 0
        for chunk in response.streaming_content:
            size += len(chunk)
            lines += chunk.count(b"\n")
        response.close()
    peak = support.window_peak_mb() if window_reset else support.peak_rss_mb()
    return {
        "database": database_label(),
        "leads": leads,
        "rows": lines - 1,
        "megabytes": round(size / 1e6, 1),
        "seconds": round(clock.seconds, 2),
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak,
        "growth_mb": round(peak - rss_before, 1),
        "process_peak_rss_mb": support.peak_rss_mb(),
    }
