"""Outages and interruptions, each run against a sandbox on 127.0.0.1.

- ``lead_post_timeout``: CINC stores a new lead, then stalls past the
  client's timeout. The broker sends the form again (and again); the site
  ends up with one lead of that email, on a site that refuses duplicates
  and on one that updates them (upsert).
- ``worker_killed``: a sync stops in the middle of the walk, once by an
  exception (the run is FAILED at once) and once as if its worker had been
  killed (nothing of the sync runs after it: the run stays "running" until
  ``sync_close_stale`` closes it after the stale timeout, lowered here to a
  second). The mirror keeps what was written, nothing marked removed, and
  the next run completes it.
- ``sandbox_down``: the sandbox process is stopped; the dashboard, "Sync
  now" (the run it queues, run as a worker would) and "Refresh from CINC"
  answer with a status and a message, never a 500.
- ``redis_down``: Celery's broker (and the rate limiter's store, which
  shares its URL) point at a closed loopback port; the connect callback's
  first-sync queueing, "Sync now", "Refresh from CINC" and the new-lead form
  answer with a message, never a 500, and no run stays queued.

Each returns a dict of figures with ``problems`` (broken invariants) and
``passed``.
"""

import contextlib
import re
import time

from . import harness, mirror

# Closed loopback port for "Redis down" (port 1: nothing listens there).
REDIS_DOWN_URL = "redis://127.0.0.1:1/0"
EMAIL = "stalled.post@example.test"
# The broker sends the form this many times while CINC keeps stalling.
POST_ATTEMPTS = 3
# A killed run is closed as stale after this many seconds without a sign of
# life (the production default is 600).
STALE_AFTER = 1
KILL_AFTER_PAGES = 3
MESSAGE_RE = re.compile(
    r'<li[^>]*class="[^"]*message[^"]*"[^>]*>(.*?)</li>'
    r'|<p id="lead-exists-message">(.*?)</p>',
    re.S,
)


class WorkerKilled(BaseException):
    """Raised inside a sync to stand for a worker killed mid-walk: a
    BaseException, so the sync's own error handling does not run, as with
    SIGKILL."""


def _result(name, figures, problems, started):
    figures.update(
        scenario=name,
        problems=problems,
        passed=not problems,
        seconds=round(time.monotonic() - started, 1),
    )
    return figures


def messages_of(response):
    """The flash messages of a rendered page, as plain text."""
    text = response.content.decode("utf-8", "replace")
    found = [
        re.sub(r"<[^>]+>", "", flash or exists)
        for flash, exists in MESSAGE_RE.findall(text)
    ]
    return [" ".join(item.split()) for item in found]


def _check_page(problems, what, response, *, statuses=(200, 302)):
    if response.status_code not in statuses:
        problems.append(f"{what} answered {response.status_code}")


def _follow(client, response):
    """The page a redirect leads to (messages are shown there)."""
    if response.status_code == 302:
        return client.get(response["Location"])
    return response


def _sync_fully(connection, max_runs=5):
    """Sync in the foreground until a run succeeds; the last run."""
    from leads import sync

    run = None
    for _ in range(max_runs):
        run = sync.sync_connection(connection_id=connection.pk).run
        if run is not None:
            run.refresh_from_db()
            if run.status == "succeeded":
                break
    return run


# A lead POST that times out after CINC stored it --------------------------------


def _lead_form(connection, email):
    return {
        "connection": str(connection.uuid),
        "first_name": "Stalled",
        "last_name": "Post",
        "email": email,
        "cell_phone": "(912) 756-2309",
        "city": "Richmond Hill",
        "state": "GA",
        "zip": "31324",
        "source": "Reliability",
        "status": "unworked",
    }


def _leads_with(control, email):
    return [
        lead
        for lead in control.leads("demo")
        if (lead.get("info", {}).get("contact", {}).get("email") or "").lower()
        == email.lower()
    ]


def _post_attempts(server, broker, connection, *, upsert, email, problems):
    """Send the form while CINC stalls, then once more after; return the
    LeadWrite outcomes and the POSTs CINC received."""
    from django.urls import reverse

    from leads.models import LeadWrite

    control = server.control
    client = harness.signed_in(broker)
    control.config(upsert=upsert, post_stall_seconds=harness.TIMEOUT * 2)
    before = control.stats()["requests"]["lead_create"]
    pages = []
    for attempt in range(POST_ATTEMPTS + 1):
        if attempt == POST_ATTEMPTS:
            control.config(post_stall_seconds=0)  # CINC answers again
        response = client.post(reverse("leads:create"), _lead_form(connection, email))
        _check_page(problems, f"new-lead form, attempt {attempt + 1}", response)
        pages += messages_of(_follow(client, response))
    posts = control.stats()["requests"]["lead_create"] - before
    stored = _leads_with(control, email)
    mode = "upsert" if upsert else "refuse"
    if len(stored) != 1:
        problems.append(f"{mode}: {len(stored)} leads with {email} in CINC")
    writes = LeadWrite.objects.filter(connection=connection, email__iexact=email)
    outcomes = list(writes.order_by("pk").values_list("outcome", flat=True))
    if "unknown" not in outcomes:
        problems.append(f"{mode}: no POST was recorded as unanswered: {outcomes}")
    return {
        "mode": mode,
        "submissions": POST_ATTEMPTS + 1,
        "posts": posts,
        "leads_with_email": len(stored),
        "outcomes": outcomes,
        "messages": pages,
    }


def lead_post_timeout(server, *, leads=200, seed=7):
    """The broker submits a new lead while CINC stores it and then stalls
    past the client's timeout; see the module docstring."""
    started = time.monotonic()
    problems = []
    control = server.control
    control.reset(leads=leads, seed=seed)
    figures = {"stall_seconds": harness.TIMEOUT * 2, "timeout": harness.TIMEOUT}
    with harness.pointed_at(server), harness.LogTally() as tally:
        broker = harness.make_broker("post")
        connection, _ = harness.connect(server, broker)
        figures["sites"] = [
            _post_attempts(
                server, broker, connection, upsert=False, email=EMAIL, problems=problems
            ),
            _post_attempts(
                server,
                broker,
                connection,
                upsert=True,
                email="upserted." + EMAIL,
                problems=problems,
            ),
        ]
        control.config(upsert=False, post_stall_seconds=0)
    figures["requests"] = sum(site["posts"] for site in figures["sites"])
    figures["errors_logged"] = tally.errors
    if tally.errors:
        problems.append(f"ERROR log lines: {tally.error_lines}")
    return _result("lead-post-timeout", figures, problems, started)


# A worker killed in the middle of a sync -----------------------------------------


def _interrupt(after_pages, error):
    """A progress callback that raises ``error`` once the walk of leads has
    written ``after_pages`` pages."""
    pages = []

    def progress(run):
        if run.phase == "leads" and run.next_offset > 0:
            pages.append(run.next_offset)
            if len(pages) == after_pages:
                raise error

    return progress


def _consistent(connection, control, problems, what):
    """Every mirrored lead equals CINC's record; none is marked removed."""
    from leads.models import Lead
    from leads.sync import content_hash

    upstream = {lead["id"]: lead for lead in control.leads("demo")}
    rows = Lead.objects.filter(connection=connection)
    stored = rows.count()
    for cinc_id, raw, digest in rows.values_list("cinc_id", "raw", "content_hash"):
        record = upstream.get(cinc_id)
        if record is None or raw != record or digest != content_hash(record):
            problems.append(f"{what}: lead {cinc_id} differs from CINC")
            break
    if mirror.removed_ids(connection):
        problems.append(f"{what}: leads marked removed by an unfinished run")
    return stored


def _interrupted_run(server, broker, *, error, kind, problems):
    """Sync until ``error`` interrupts the walk; then check the run, the
    mirror, and that the next run completes it."""
    from django.test import override_settings

    from leads import sync
    from leads.models import SyncRun

    control = server.control
    connection, _ = harness.connect(server, broker)
    # A few pages into the walk, and never past its last full page.
    full_pages = len(control.leads("demo")) // sync.PAGE_SIZE
    after = max(1, min(KILL_AFTER_PAGES, full_pages - 1))
    figures = {"kind": kind, "stopped_after_pages": after}
    try:
        sync.sync_connection(
            connection_id=connection.pk,
            progress=_interrupt(after, error),
        )
    except WorkerKilled:
        figures["killed"] = True
    run = SyncRun.objects.filter(connection=connection).latest("pk")
    figures["status_after_stop"] = run.status
    figures["pages_kept"] = run.pages
    figures["leads_kept"] = _consistent(connection, control, problems, kind)

    if run.status == SyncRun.Status.RUNNING:
        # Nothing of the sync ran after the kill: only the stale sweep can
        # end the run. It must not do so before the timeout.
        with override_settings(CINC_SYNC_STALE_AFTER=STALE_AFTER):
            early = sync.sync_close_stale(connection=connection)
            time.sleep(STALE_AFTER + 0.5)
            closed = sync.sync_close_stale(connection=connection)
        run.refresh_from_db()
        figures["closed_as_stale"] = closed
        if early:
            problems.append(f"{kind}: a live run was closed before the timeout")
    elif run.status != SyncRun.Status.FAILED:
        problems.append(f"{kind}: run is {run.status} after the crash")
    if run.status != SyncRun.Status.FAILED:
        problems.append(f"{kind}: run still {run.status} after the stale timeout")
    figures["status_shown"] = run.status
    figures["error_shown"] = run.error.splitlines()[0] if run.error else ""
    dashboard = harness.signed_in(broker).get("/")
    _check_page(problems, f"{kind}: dashboard", dashboard, statuses=(200,))
    if "Last sync failed" not in dashboard.content.decode():
        problems.append(f"{kind}: the dashboard does not show the failed sync")

    last = _sync_fully(connection)
    figures["next_run"] = last.status if last else None
    comparison = mirror.compare(
        connection, leads=control.leads("demo"), agents=control.agents("demo")
    )
    figures["lost"] = len(comparison.lost)
    figures["doubled"] = comparison.doubled
    if last is None or last.status != SyncRun.Status.SUCCEEDED:
        problems.append(f"{kind}: the next run did not complete the sync")
    if not comparison.exact:
        problems.append(f"{kind}: {comparison.summary()}")
    return figures


def worker_killed(server, *, leads=5000, seed=11, pages=None):
    """See the module docstring. ``pages``: records per page, if not the
    sync's own (see ``faults.page_size``)."""
    from .faults import page_size

    started = time.monotonic()
    problems = []
    server.control.reset(leads=leads, seed=seed)
    before = server.control.stats()
    with (
        harness.pointed_at(server),
        page_size(pages),
        harness.LogTally() as tally,
    ):
        broker = harness.make_broker("killed")
        figures = {
            "leads": leads,
            "stale_after": STALE_AFTER,
            "runs": [
                _interrupted_run(
                    server,
                    broker,
                    error=RuntimeError("the worker crashed"),
                    kind="exception",
                    problems=problems,
                ),
                _interrupted_run(
                    server,
                    harness.make_broker("killed"),
                    error=WorkerKilled(),
                    kind="killed",
                    problems=problems,
                ),
            ],
        }
    delta = harness.stats_delta(before, server.control.stats())
    figures["requests"] = harness.requests_of(delta)
    # The exception is a bug as far as the sync knows: it logs the traceback
    # once (that is expected here); anything more is not.
    figures["errors_logged"] = tally.errors
    if tally.errors > 1:
        problems.append(f"ERROR log lines: {tally.error_lines}")
    return _result("worker-killed", figures, problems, started)


# The sandbox down ----------------------------------------------------------------


def _run_queued(connection, problems, what):
    """Run the connection's queued run in the foreground, as a worker would;
    return it."""
    from leads import sync
    from leads.models import SyncRun

    run = SyncRun.objects.filter(connection=connection).latest("pk")
    if run.status == SyncRun.Status.QUEUED:
        sync.sync_connection(connection_id=connection.pk, sync_run_id=run.pk)
        run.refresh_from_db()
    if run.is_active:
        problems.append(f"{what}: the run is still {run.status}")
    return run


def _refresh_lead(client, connection, problems, what):
    from django.urls import reverse

    from leads.models import Lead

    lead = Lead.objects.filter(connection=connection).order_by("pk").first()
    if lead is None:
        problems.append(f"{what}: no mirrored lead to refresh")
        return []
    response = client.post(reverse("leads:refresh", args=[lead.uuid]))
    _check_page(problems, f"{what}: refresh from CINC", response)
    return messages_of(_follow(client, response))


def _sync_now(client, connection, problems, what):
    from django.urls import reverse

    response = client.post(reverse("leads:sync-start", args=[connection.uuid]))
    _check_page(problems, f"{what}: sync now", response)
    return messages_of(_follow(client, response))


def _dashboard(client, problems, what):
    response = client.get("/")
    _check_page(problems, f"{what}: dashboard", response, statuses=(200,))
    text = response.content.decode("utf-8", "replace")
    match = re.search(r'class="sync-error[^"]*"[^>]*>(.*?)</p>', text, re.S)
    state = re.search(r'class="badge badge-[a-z]+">([^<]*)<', text)
    return {
        "badge": state.group(1) if state else "",
        "error": " ".join(match.group(1).split()) if match else "",
    }


def sandbox_down(*, workdir, leads=200, seed=5):
    """Start a sandbox of its own, connect and sync, stop it (by its pid),
    then use the pages; see the module docstring."""
    from sandbox.process import start_sandbox

    started = time.monotonic()
    problems = []
    server = start_sandbox(
        workdir / "sandbox-down.sqlite3",
        leads=leads,
        seed=seed,
        window=harness.WINDOW,
        limit=harness.LIMIT,
    )
    try:
        with harness.pointed_at(server), harness.LogTally() as tally:
            broker = harness.make_broker("down")
            connection, _ = harness.connect(server, broker)
            _sync_fully(connection)
            client = harness.signed_in(broker)
            server.stop()
            figures = {"sandbox_stopped": not server.running()}
            figures["refresh_messages"] = _refresh_lead(
                client, connection, problems, "sandbox down"
            )
            figures["sync_now_messages"] = _sync_now(
                client, connection, problems, "sandbox down"
            )
            run = _run_queued(connection, problems, "sandbox down")
            figures["run_status"] = run.status
            figures["run_error"] = run.error.splitlines()[0] if run.error else ""
            figures["dashboard"] = _dashboard(client, problems, "sandbox down")
            progress = client.get(f"/connections/{connection.uuid}/sync/progress/")
            _check_page(problems, "sync progress", progress, statuses=(200,))
    finally:
        server.stop()
    if run.status != "failed":
        problems.append(f"sandbox down: the sync run ended {run.status}")
    if not figures["dashboard"]["error"]:
        problems.append("sandbox down: the dashboard shows no sync error")
    if not figures["refresh_messages"]:
        problems.append("sandbox down: refresh from CINC showed no message")
    figures["errors_logged"] = tally.errors
    if tally.errors:
        problems.append(f"ERROR log lines: {tally.error_lines}")
    return _result("sandbox-down", figures, problems, started)


# Redis down ---------------------------------------------------------------------


def _drop_celery_pools(app):
    # What Celery itself does in a forked child: forget the broker
    # connections, so the next task is sent through the current broker_url.
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


@contextlib.contextmanager
def celery_broker(url):
    """Celery's broker, and the portal's CELERY_BROKER_URL (which the rate
    limiter's store follows), at ``url`` for the block."""
    from django.test import override_settings

    from cinc_portal.celery import app

    names = ("broker_url", "broker_read_url", "broker_write_url")
    previous = {name: app.conf[name] for name in names}
    _drop_celery_pools(app)
    app.conf.update(dict.fromkeys(names, url))
    try:
        with override_settings(CELERY_BROKER_URL=url):
            yield
    finally:
        app.conf.update(previous)
        _drop_celery_pools(app)


def _new_lead(client, connection, problems, what):
    from django.urls import reverse

    form = _lead_form(connection, "redis.down@example.test")
    response = client.post(reverse("leads:create"), form)
    _check_page(problems, f"{what}: new-lead form", response)
    return messages_of(_follow(client, response))


def redis_down(server, *, leads=200, seed=9):
    """See the module docstring."""
    from leads.models import SyncRun

    started = time.monotonic()
    problems = []
    server.control.reset(leads=leads, seed=seed)
    before = server.control.stats()
    what = "redis down"
    with harness.pointed_at(server), harness.LogTally() as tally:
        broker = harness.make_broker("redis")
        client = harness.signed_in(broker)
        connection, callback = harness.connect(server, broker, client=client)
        _follow(client, callback)  # its message is shown (and consumed)
        _sync_fully(connection)
        runs_before = set(SyncRun.objects.values_list("pk", flat=True))
        figures = {"broker_url": REDIS_DOWN_URL}

        with celery_broker(REDIS_DOWN_URL):
            newcomer = harness.make_broker("redis-new")
            newcomer_client = harness.signed_in(newcomer)
            first, callback = harness.connect(server, newcomer, client=newcomer_client)
            _check_page(problems, f"{what}: connect callback", callback)
            figures["connect_messages"] = messages_of(
                _follow(newcomer_client, callback)
            )
            figures["dashboard_after_connect"] = _dashboard(
                newcomer_client, problems, what
            )
            first_runs = SyncRun.objects.filter(connection=first)
            if not figures["dashboard_after_connect"]["error"]:
                problems.append(
                    f"{what}: the new connection's dashboard shows no error"
                )
            figures["sync_now_messages"] = _sync_now(client, connection, problems, what)
            figures["refresh_messages"] = _refresh_lead(
                client, connection, problems, what
            )
            figures["new_lead_messages"] = _new_lead(client, connection, problems, what)
            figures["dashboard"] = _dashboard(client, problems, what)

        new_runs = SyncRun.objects.exclude(pk__in=runs_before).filter(
            connection__in=[connection, first]
        )
        figures["runs_during_outage"] = list(new_runs.values_list("status", flat=True))
        stuck = new_runs.filter(status__in=["queued", "running"])
        if stuck.exists():
            problems.append(f"{what}: runs left queued: {stuck.count()}")
        figures["first_sync_runs"] = list(first_runs.values_list("status", flat=True))
        for key in ("connect_messages", "sync_now_messages", "refresh_messages"):
            if not figures[key]:
                problems.append(f"{what}: no message after {key.split('_')[0]}")

        # Redis is back: "Sync now" queues, a worker runs it.
        _sync_now(client, connection, problems, "redis back")
        run = _run_queued(connection, problems, "redis back")
        figures["after_outage"] = run.status
        if run.status != "succeeded":
            problems.append(f"redis back: the sync ended {run.status}")
    delta = harness.stats_delta(before, server.control.stats())
    figures["requests"] = harness.requests_of(delta)
    figures["errors_logged"] = tally.errors
    return _result("redis-down", figures, problems, started)
