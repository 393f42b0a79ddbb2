"""The Celery side of the sync: starting runs, idempotent deliveries, the
beat, a real worker, and what the logs say."""

import time
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from accounts.models import Connection
from accounts.services import ConnectionUnavailable
from cinc_portal.celery import app
from leads import sync, tasks
from leads.models import Lead, SyncRun

pytestmark = pytest.mark.django_db
WORKER_DEADLINE = 60.0


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
def sent(monkeypatch):
    """(args, countdown) of every sync task sent."""
    calls = []
    monkeypatch.setattr(
        tasks.sync_connection_task,
        "apply_async",
        lambda args, countdown=None: calls.append((list(args), countdown)),
    )
    return calls


def test_sync_start_queues_one_run_and_sends_its_task_on_commit(
    offline_connection, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = sync.sync_start(connection=offline_connection)
        assert sent == []  # not before the commit

    again = sync.sync_start(connection=offline_connection)

    assert run.status == SyncRun.Status.QUEUED
    assert sent == [([offline_connection.pk, run.pk], None)]
    assert again.pk == run.pk
    assert SyncRun.objects.count() == 1


def test_sync_start_refuses_a_connection_that_needs_reconnecting(offline_connection):
    Connection.objects.filter(pk=offline_connection.pk).update(
        status=Connection.Status.NEEDS_RECONNECT
    )

    with pytest.raises(ConnectionUnavailable, match="needs reconnecting"):
        sync.sync_start(connection=offline_connection)

    assert not SyncRun.objects.exists()


def test_run_whose_task_cannot_be_queued_is_failed(
    offline_connection, monkeypatch, django_capture_on_commit_callbacks
):
    def broker_down(*args, **kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr(tasks.sync_connection_task, "apply_async", broker_down)

    with django_capture_on_commit_callbacks(execute=True):
        run = sync.sync_start(connection=offline_connection)

    run.refresh_from_db()
    assert run.status == SyncRun.Status.FAILED
    assert "could not be queued" in run.error


def test_second_delivery_of_the_sync_task_does_nothing(connection, sandbox, sent):
    run = SyncRun.objects.create(connection=connection)
    tasks.sync_connection_task(connection.pk, run.pk)
    run.refresh_from_db()
    finished = (run.status, run.finished_at, run.requests)
    sandbox.control.reset_stats()

    tasks.sync_connection_task(connection.pk, run.pk)

    run.refresh_from_db()
    assert finished[0] == SyncRun.Status.SUCCEEDED
    assert (run.status, run.finished_at, run.requests) == finished
    assert sum(sandbox.control.stats()["requests"].values()) == 0
    assert SyncRun.objects.count() == 1 and sent == []


def test_task_leaves_a_run_that_another_worker_is_running(connection, sandbox):
    run = SyncRun.objects.create(
        connection=connection,
        status=SyncRun.Status.RUNNING,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )
    sandbox.control.reset_stats()

    tasks.sync_connection_task(connection.pk)
    tasks.sync_connection_task(connection.pk, run.pk)

    run.refresh_from_db()
    assert run.status == SyncRun.Status.RUNNING
    assert SyncRun.objects.count() == 1
    assert sum(sandbox.control.stats()["requests"].values()) == 0


def test_task_for_a_deleted_connection_returns_quietly(offline_connection, caplog):
    connection_id = offline_connection.pk
    offline_connection.delete()

    tasks.sync_connection_task(connection_id, 12345)

    assert "the connection is gone" in caplog.text
    assert not SyncRun.objects.exists()


def test_task_without_a_run_creates_and_completes_one(connection, sandbox):
    tasks.sync_connection_task(connection.pk)

    run = SyncRun.objects.get()
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert Lead.objects.filter(connection=connection).count() == 60


def test_beat_queues_active_connections_skips_others_and_closes_stale_runs(
    offline_connection, django_user_model, sent, django_capture_on_commit_callbacks
):
    other = Connection.objects.create(
        broker=django_user_model.objects.create(username="other-broker"),
        api_url=offline_connection.api_url,
        cinc_agent_id="AGENT_MDID10",
        cinc_username="other@demo.test",
        status=Connection.Status.NEEDS_RECONNECT,
    )
    long_ago = timezone.now() - timedelta(hours=1)
    stale = SyncRun.objects.create(
        connection=offline_connection,
        status=SyncRun.Status.RUNNING,
        started_at=long_ago,
        heartbeat_at=long_ago,
    )

    with django_capture_on_commit_callbacks(execute=True):
        queued = tasks.sync_all_connections_task()

    stale.refresh_from_db()
    assert queued == 1
    assert stale.status == SyncRun.Status.FAILED
    new = SyncRun.objects.get(status=SyncRun.Status.QUEUED)
    assert new.connection == offline_connection
    assert sent == [([offline_connection.pk, new.pk], None)]
    assert not other.sync_runs.exists()


def test_beat_schedule_runs_the_sync_of_all_connections_every_interval():
    entry = django_settings.CELERY_BEAT_SCHEDULE["sync-all-connections"]

    assert entry["task"] == tasks.sync_all_connections_task.name
    assert entry["task"] in app.tasks
    assert entry["schedule"] == timedelta(seconds=django_settings.CINC_SYNC_INTERVAL)


def test_sync_logs_ids_in_every_line_and_never_a_token(connection, sandbox, caplog):
    caplog.set_level("DEBUG")
    secrets = [connection.access_token, connection.refresh_token]
    sandbox.control.expire_tokens()  # a refresh happens along the way

    tasks.sync_connection_task(connection.pk)

    connection.refresh_from_db()
    secrets += [connection.access_token, connection.refresh_token]
    run = SyncRun.objects.get()
    lines = [r for r in caplog.records if r.name == "leads.sync"]
    assert lines
    for record in lines:
        assert record.connection_id == connection.pk
        assert record.sync_run_id == run.pk
        assert str(connection.pk) in record.getMessage()
    for secret in secrets:
        assert secret and secret not in caplog.text


@pytest.mark.django_db(transaction=True)
def test_celery_worker_runs_the_sync_task_for_real(connection, sandbox):
    from celery.contrib.testing.worker import start_worker

    with start_worker(app, pool="solo", perform_ping_check=False):
        tasks.sync_connection_task.apply_async(args=[connection.pk])
        deadline = time.monotonic() + WORKER_DEADLINE
        run = None
        while time.monotonic() < deadline:
            run = SyncRun.objects.filter(connection=connection).first()
            if run is not None and not run.is_active:
                break
            time.sleep(0.1)

    assert run is not None and run.status == SyncRun.Status.SUCCEEDED, run
    assert Lead.objects.filter(connection=connection).count() == 60
