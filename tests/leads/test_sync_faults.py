"""The sync under faults, against the sandbox's knobs: rate windows, early
429s, 5xx, malformed pages, expiring tokens, long waits, crashes, stale runs."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Connection
from cinc.client import CincClient
from leads import sync, tasks
from leads.models import Lead, SyncRun, SyncRunPage

pytestmark = pytest.mark.django_db
MAX_RUNS = 6


@pytest.fixture
def rate_window(sandbox, monkeypatch, settings):
    """Give the sandbox a short rate window, and tell the portal's limiter
    (CINC announces its limit in headers, but not its window)."""

    def configure(*, window, limit):
        sandbox.control.config(window=window, limit=limit)
        settings.CINC_RATE_WINDOW = window
        settings.CINC_RATE_LIMIT = limit

    return configure


@pytest.fixture
def offline_connection(django_user_model):
    """A connection row for tests that never call CINC (no OAuth flow)."""
    broker = django_user_model.objects.create(username="offline-broker")
    return Connection.objects.create(
        broker=broker,
        api_url="http://127.0.0.1:9/v2/site",
        cinc_agent_id="AGENT_MDID0",
        cinc_username="buum@cu.com",
    )


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(sync, "PAGE_SIZE", 10)
    return 10


def run_sync(connection, **kwargs):
    outcome = sync.sync_connection(connection_id=connection.pk, **kwargs)
    if outcome.run is not None:
        outcome.run.refresh_from_db()
    return outcome.run


def mirror(connection):
    rows = Lead.objects.filter(connection=connection, removed_at=None)
    return dict(rows.values_list("cinc_id", "raw"))


def upstream(sandbox):
    return {lead["id"]: lead for lead in sandbox.control.leads()}


def test_small_rate_window_causes_no_429(connection, sandbox, rate_window, small_pages):
    rate_window(window=2, limit=3)

    run = run_sync(connection)

    stats = sandbox.control.stats()
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert stats["requests"]["leads"] == 7  # 60 leads, 10 a page, then empty
    assert stats["rate_limited"] == {"window": 0, "early": 0}
    assert run.rate_limited == 0
    assert mirror(connection) == upstream(sandbox)


def test_early_429s_and_5xx_still_converge_to_the_exact_data(
    connection, sandbox, rate_window, monkeypatch
):
    monkeypatch.setattr(sync, "PAGE_SIZE", 5)
    rate_window(window=2, limit=15)
    sandbox.control.config(early_429_rate=0.1, fail_rate=0.2, random_seed=5)

    runs = []
    while len(runs) < MAX_RUNS:
        runs.append(run_sync(connection))
        if runs[-1].status == SyncRun.Status.SUCCEEDED:
            break

    stats = sandbox.control.stats()
    assert runs[-1].status == SyncRun.Status.SUCCEEDED
    assert stats["injected_5xx"] > 0 and stats["rate_limited"]["early"] > 0
    assert stats["rate_limited"]["window"] == 0
    assert sum(run.retries for run in runs) >= stats["injected_5xx"] - len(runs)
    assert sum(run.rate_limited for run in runs) == stats["rate_limited"]["early"]
    assert mirror(connection) == upstream(sandbox)
    assert Lead.objects.count() == 60  # none doubled


@pytest.fixture
def failed_offsets():
    """Where a walk can stop once CINC breaks after its first lead page:
    fetching in line, at the next page."""
    return {20}


def test_malformed_page_fails_the_run_and_keeps_the_previous_mirror(
    connection, sandbox, monkeypatch, caplog, failed_offsets
):
    monkeypatch.setattr(sync, "PAGE_SIZE", 20)
    sync.sync_connection(connection_id=connection.pk)
    connection.refresh_from_db()
    synced_at = connection.last_synced_at
    raw = sandbox.control.leads()
    early, late, deleted = raw[2], raw[45], raw[50]
    sandbox.control.update_lead("demo", early["id"], info={"source": "Early page"})
    sandbox.control.update_lead("demo", late["id"], info={"source": "Late page"})
    sandbox.control.delete_lead("demo", deleted["id"])

    def break_after_first_lead_page(run):
        if run.phase == SyncRun.Phase.LEADS and run.next_offset == 20:
            sandbox.control.config(malformed_rate=1.0)

    run = run_sync(connection, progress=break_after_first_lead_page)

    assert run.status == SyncRun.Status.FAILED
    assert "cannot read" in run.error and "nothing was marked removed" in run.error
    # What CINC sent is not quoted: it holds leads' contact details.
    assert raw[20]["id"] not in run.error and "characters" in run.error
    assert raw[20]["id"] not in caplog.text  # leads' data stays out of logs
    assert run.phase == SyncRun.Phase.LEADS
    assert run.next_offset in failed_offsets
    assert Lead.objects.get(cinc_id=early["id"]).source == "Early page"
    assert Lead.objects.get(cinc_id=late["id"]).source == late["info"]["source"]
    assert Lead.objects.get(cinc_id=deleted["id"]).removed_at is None
    assert not Lead.objects.filter(removed_at__isnull=False).exists()
    connection.refresh_from_db()
    assert connection.last_synced_at == synced_at
    assert connection.last_sync_attempt_at == run.started_at


def test_access_token_expiring_mid_sync_is_refreshed(connection, sandbox, monkeypatch):
    monkeypatch.setattr(sync, "PAGE_SIZE", 20)
    refreshed_at = connection.token_refreshed_at

    def expire_after_first_lead_page(run):
        if run.phase == SyncRun.Phase.LEADS and run.next_offset == 20:
            sandbox.control.expire_tokens()

    run = run_sync(connection, progress=expire_after_first_lead_page)

    stats = sandbox.control.stats()
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert stats["token_grants"]["refresh_token"] == 1
    assert stats["unauthorized"] == 1
    assert run.retries == 1
    connection.refresh_from_db()
    assert connection.token_refreshed_at > refreshed_at
    assert mirror(connection) == upstream(sandbox)


def test_long_rate_limit_wait_reschedules_and_resumes_at_next_offset(
    connection,
    sandbox,
    rate_window,
    small_pages,
    monkeypatch,
    settings,
    django_capture_on_commit_callbacks,
):
    rate_window(window=2, limit=3)
    settings.CINC_MAX_INLINE_WAIT = 0.2
    sandbox.control.reset_stats()
    sent = []
    monkeypatch.setattr(
        tasks.sync_connection_task,
        "apply_async",
        lambda args, countdown=None: sent.append((list(args), countdown)),
    )

    def deliver(*args):
        with django_capture_on_commit_callbacks(execute=True):
            tasks.sync_connection_task(*args)

    deliver(connection.pk)
    run = SyncRun.objects.get()
    waits = []
    for _ in range(10):
        if not sent:
            break
        args, countdown = sent.pop()
        run.refresh_from_db()
        assert args == [connection.pk, run.pk] and countdown >= 1
        assert run.status == SyncRun.Status.QUEUED and run.waiting_until
        waits.append((run.phase, run.next_offset))
        if run.waiting_until - timezone.now() > sync.WAKE_SLACK + timedelta(seconds=1):
            deliver(*args)  # an early second delivery does nothing
            assert not sent
        time.sleep(max(0.0, (run.waiting_until - timezone.now()).total_seconds()))
        deliver(*args)

    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert waits and all(offset > 0 for phase, offset in waits if phase == "leads")
    offsets = SyncRunPage.objects.filter(run=run, phase="leads").order_by("offset")
    assert list(offsets.values_list("offset", flat=True)) == [0, 10, 20, 30, 40, 50, 60]
    stats = sandbox.control.stats()
    assert stats["requests"]["leads"] == 7  # no page asked for twice
    assert stats["requests"]["me"] == 1
    assert stats["rate_limited"]["window"] == 0
    assert SyncRun.objects.count() == 1
    assert mirror(connection) == upstream(sandbox)


def test_refused_refresh_fails_the_run_as_needing_reconnect(connection, sandbox):
    sandbox.control.revoke_tokens()
    sandbox.control.reset_stats()

    run = run_sync(connection)

    assert run.status == SyncRun.Status.FAILED
    assert "needs reconnecting" in run.error or "Reconnect" in run.error
    assert sandbox.control.stats()["requests"]["me"] == 1  # no retry loop
    connection.refresh_from_db()
    assert connection.status == Connection.Status.NEEDS_RECONNECT
    assert run_sync(connection) is None  # skipped from now on


def test_upstream_failure_after_retries_fails_the_run_with_the_error(
    connection, sandbox
):
    sandbox.control.config(fail_rate=1.0)

    run = run_sync(connection)

    assert run.status == SyncRun.Status.FAILED
    assert "CINC did not answer properly" in run.error and "HTTP 50" in run.error
    assert run.requests == 5 and run.retries == 4
    connection.refresh_from_db()
    assert connection.last_synced_at is None
    assert connection.status == Connection.Status.ACTIVE


def test_crash_mid_run_leaves_a_consistent_mirror_that_the_next_run_completes(
    connection, sandbox, monkeypatch, caplog
):
    monkeypatch.setattr(sync, "PAGE_SIZE", 20)
    real_upsert = sync.upsert_leads
    calls = []

    def crash_on_third_page(**kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("worker killed")
        return real_upsert(**kwargs)

    monkeypatch.setattr(sync, "upsert_leads", crash_on_third_page)

    run = run_sync(connection)

    assert run.status == SyncRun.Status.FAILED
    assert "RuntimeError" in run.error
    assert "failed unexpectedly" in caplog.text
    assert Lead.objects.count() == 40 and run.created == 12 + 40
    assert not Lead.objects.filter(removed_at__isnull=False).exists()
    monkeypatch.setattr(sync, "upsert_leads", real_upsert)

    run = run_sync(connection)

    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert (run.created, run.unchanged, run.removed) == (20, 52, 0)
    assert mirror(connection) == upstream(sandbox)


def test_server_repeating_a_full_page_ends_the_run_partial(
    connection, sandbox, monkeypatch
):
    monkeypatch.setattr(sync, "PAGE_SIZE", 20)
    real_page = CincClient.leads_page
    # The sandbox never repeats itself; this client asks it for the first
    # page whatever the offset, as a confused server would answer.
    monkeypatch.setattr(
        CincClient, "leads_page", lambda self, offset, limit: real_page(self, 0, limit)
    )
    Lead.objects.create(connection=connection, cinc_id="LEAD_OLD", content_hash="x")

    run = run_sync(connection)

    assert run.status == SyncRun.Status.PARTIAL
    assert "already sent" in run.error
    assert sandbox.control.stats()["requests"]["leads"] == 2
    assert Lead.objects.get(cinc_id="LEAD_OLD").removed_at is None
    connection.refresh_from_db()
    assert connection.last_synced_at is None


def test_page_cap_ends_the_run_partial(connection, sandbox, monkeypatch):
    monkeypatch.setattr(sync, "PAGE_SIZE", 20)
    monkeypatch.setattr(sync, "MAX_PAGES", 2)

    run = run_sync(connection)

    assert run.status == SyncRun.Status.PARTIAL
    assert "Stopped after 2 pages of leads" in run.error
    assert Lead.objects.count() == 40


def test_stale_running_run_is_closed_as_failed_by_the_next_start(offline_connection):
    long_ago = timezone.now() - timedelta(minutes=11)
    stale = SyncRun.objects.create(
        connection=offline_connection,
        status=SyncRun.Status.RUNNING,
        started_at=long_ago,
        heartbeat_at=long_ago,
    )

    run = sync.sync_start(connection=offline_connection)

    stale.refresh_from_db()
    assert stale.status == SyncRun.Status.FAILED and stale.finished_at
    assert "no sign of life" in stale.error
    assert run.pk != stale.pk and run.status == SyncRun.Status.QUEUED


def test_run_waiting_for_the_rate_limit_is_not_stale_before_its_wait_ends(
    offline_connection,
):
    long_ago = timezone.now() - timedelta(minutes=30)
    waiting = SyncRun.objects.create(
        connection=offline_connection,
        status=SyncRun.Status.QUEUED,
        heartbeat_at=long_ago,
        waiting_until=timezone.now() + timedelta(minutes=5),
    )
    queued_long_ago = SyncRun.objects.create(
        connection=offline_connection, status=SyncRun.Status.QUEUED
    )
    SyncRun.objects.filter(pk=queued_long_ago.pk).update(created_at=long_ago)

    closed = sync.sync_close_stale()

    assert closed == 1
    waiting.refresh_from_db()
    queued_long_ago.refresh_from_db()
    assert waiting.status == SyncRun.Status.QUEUED
    assert queued_long_ago.status == SyncRun.Status.FAILED
    assert "no worker started it" in queued_long_ago.error


def test_a_paused_run_whose_resume_was_lost_says_it_had_started(offline_connection):
    long_ago = timezone.now() - timedelta(minutes=30)
    paused = SyncRun.objects.create(
        connection=offline_connection,
        status=SyncRun.Status.QUEUED,
        started_at=long_ago,
        heartbeat_at=long_ago,
        next_offset=37_500,
        waiting_until=long_ago + timedelta(seconds=20),
    )

    assert sync.sync_close_stale() == 1

    paused.refresh_from_db()
    assert paused.status == SyncRun.Status.FAILED
    assert "paused for CINC's rate limit and did not resume" in paused.error
    assert "no worker started it" not in paused.error
    assert paused.waiting_until is None


def test_sync_of_inactive_connection_does_nothing_and_closes_its_queued_run(
    connection, sandbox
):
    run = SyncRun.objects.create(connection=connection)
    Connection.objects.filter(pk=connection.pk).update(
        status=Connection.Status.NEEDS_RECONNECT
    )
    sandbox.control.reset_stats()

    outcome = sync.sync_connection(connection_id=connection.pk, sync_run_id=run.pk)

    assert outcome.run is None
    run.refresh_from_db()
    assert run.status == SyncRun.Status.FAILED
    assert "needs reconnecting" in run.error
    assert sum(sandbox.control.stats()["requests"].values()) == 0


def test_run_kept_waiting_for_the_rate_limit_too_long_gives_up(
    connection, sandbox, rate_window, monkeypatch, settings
):
    monkeypatch.setattr(sync, "PAGE_SIZE", 5)
    rate_window(window=2, limit=1)
    settings.CINC_MAX_INLINE_WAIT = 0.2
    old = SyncRun.objects.create(
        connection=connection, started_at=timezone.now() - timedelta(hours=13)
    )

    run = run_sync(connection, sync_run_id=old.pk)

    assert run.status == SyncRun.Status.FAILED
    assert "waiting for its rate limit for more than 12 hours" in run.error
    assert run.waiting_until is None
