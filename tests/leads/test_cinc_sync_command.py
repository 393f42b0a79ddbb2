"""`manage.py cinc_sync`: foreground syncs, a summary line, exit codes."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import Connection
from leads import sync
from leads.models import Lead, SyncRun

pytestmark = pytest.mark.django_db


def cinc_sync(*args):
    out, err = StringIO(), StringIO()
    call_command("cinc_sync", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_command_syncs_one_connection_by_uuid_and_prints_a_summary(connection):
    out, err = cinc_sync("--connection", str(connection.uuid))

    run = SyncRun.objects.get()
    assert run.status == SyncRun.Status.SUCCEEDED
    assert Lead.objects.count() == 60
    assert out.startswith(
        f"Connection {connection.pk} (Rebecca Lejeune): succeeded in "
    )
    assert "72 records (72 new, 0 changed, 0 unchanged, 0 removed, 0 unreadable)" in out
    assert "3 requests, 0 rate limited, 0 retries." in out


def test_command_syncs_all_active_connections_by_id_too(connection):
    cinc_sync("--connection", str(connection.pk))

    out, _ = cinc_sync("--all")

    assert "0 new, 0 changed, 72 unchanged" in out
    assert SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED).count() == 2


def test_command_exits_non_zero_when_the_sync_fails(connection, sandbox):
    sandbox.control.config(malformed_rate=1.0)

    with pytest.raises(CommandError) as failure:
        cinc_sync("--connection", str(connection.pk))

    assert failure.value.returncode == 1
    assert "1 of 1 syncs did not succeed" in str(failure.value)
    assert SyncRun.objects.get().status == SyncRun.Status.FAILED


def test_command_sleeps_through_a_long_rate_limit_wait_and_resumes(
    connection, sandbox, monkeypatch, settings, caplog
):
    monkeypatch.setattr(sync, "PAGE_SIZE", 20)
    settings.CINC_MAX_INLINE_WAIT = 0.2
    sandbox.control.config(window=1, limit=2)
    # CINC does not announce its window; tell the portal the sandbox's.
    settings.CINC_RATE_WINDOW = 1
    long_ago = timezone.now() - timedelta(hours=1)
    SyncRun.objects.create(  # an older failed run does not matter
        connection=connection, status=SyncRun.Status.FAILED, finished_at=long_ago
    )

    out, _ = cinc_sync("--connection", str(connection.pk))

    assert "succeeded" in out and "0 rate limited" in out
    assert "waits" in caplog.text and "for the rate limit" in caplog.text
    assert SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED).count() == 1
    assert Lead.objects.count() == 60


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--connection", "999"), "No connection 999"),
        (("--connection", "nope"), "neither a connection UUID nor an id"),
        ((), "one of the arguments --connection --all is required"),
    ],
)
def test_command_refuses_unknown_or_missing_connections(db, args, message):
    with pytest.raises(CommandError, match=message):
        cinc_sync(*args)


def test_command_refuses_a_connection_that_needs_reconnecting(connection):
    Connection.objects.filter(pk=connection.pk).update(
        status=Connection.Status.NEEDS_RECONNECT
    )

    with pytest.raises(CommandError, match="needs reconnect"):
        cinc_sync("--connection", str(connection.uuid))

    assert not SyncRun.objects.exists()


def test_command_with_all_and_no_active_connection_does_nothing(db):
    out, _ = cinc_sync("--all")

    assert out == "No active connections to sync.\n"
