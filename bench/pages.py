"""Benchmark 4: the broker's pages with a large lead book.

Three steps, each in its own worker process on the same scratch database:

- ``seed``: a broker, a connection, the sandbox seed's agents and
  ``leads`` leads written through ``leads.sync.upsert_leads`` (500 a page,
  as a sync writes them), 1% of them changed once (so leads have history)
  and a finished sync run for the dashboard.
- ``run``: each page requested through Django's test ``Client`` in this
  process (the whole middleware stack, the view and the template), timed
  per request: median and p95 after a warm-up, and the SQL queries one
  request makes. The list, a search and a filtered view are also counted
  with the list's page size set to 10, 50 and 200, to show that queries do
  not grow with the page size.
- ``run_csv``: the CSV export of every lead, consumed as a stream, with the
  process's peak RSS before and while it streams.
"""

import statistics

from . import support

PAGE_SIZES = (10, 50, 200)
WARMUP = 2
REPEATS = 30
DEEP_PAGE = 1_500


def seed(*, leads=100_000, progress=None):
    """Fill the mirror; return what the other steps need to find it."""
    from django.utils import timezone

    from leads.models import Lead, SyncRun
    from leads.sync import upsert_agents, upsert_leads

    from .writes import changed_copy

    say = progress or (lambda message: None)
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
    now = timezone.now()
    SyncRun.objects.create(
        connection=connection,
        status=SyncRun.Status.SUCCEEDED,
        phase=SyncRun.Phase.DONE,
        started_at=now,
        finished_at=now,
        records_seen=len(records) + len(agent_records),
        created=len(records) + len(agent_records),
    )
    _analyze()

    mirrored = Lead.objects.filter(connection=connection).order_by("pk")
    lead = mirrored[len(records) // 2]
    phones = mirrored.exclude(cell_phone="").values_list("cell_phone", flat=True)
    phone = phones[len(records) // 3 :].first() or ""
    return {
        "broker": broker.username,
        "leads": Lead.objects.filter(connection=connection).count(),
        "seed_seconds": round(clock.seconds, 1),
        "lead_uuid": str(lead.uuid),
        "search_name": lead.last_name,
        "search_phone": phone[-7:],
    }


def _analyze():
    """On PostgreSQL, fresh planner statistics, as autovacuum has them by
    the time a broker browses a synced mirror. (Nothing runs ANALYZE on a
    SQLite mirror, so neither does the benchmark.)"""
    from django.db import connection as db

    if db.vendor == "postgresql":
        with db.cursor() as cursor:
            cursor.execute("ANALYZE")


def pages(*, lead_uuid, search_name, search_phone, deep_page=DEEP_PAGE):
    """(name, url, query-counted-per-page-size?) of every measured page."""
    from django.urls import reverse

    leads = reverse("leads:list")
    return [
        ("leads list", leads, True),
        ("search: name", f"{leads}?q={search_name}", True),
        ("search: phone digits", f"{leads}?q={search_phone}", False),
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


def count_queries(client, url):
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(db) as captured:
        _get(client, url)
    return len(captured.captured_queries)


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


def time_page(client, url, repeats=REPEATS, warmup=WARMUP):
    import time

    for _ in range(warmup):
        _get(client, url)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        _get(client, url)
        seconds.append(time.perf_counter() - started)
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
        figures["queries"] = count_queries(client, url)
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
    rss_before = support.rss_mb()
    window_reset = support.reset_window_peak()
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
