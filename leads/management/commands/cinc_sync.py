"""Sync CINC connections in the foreground, with a progress bar.

    python manage.py cinc_sync --connection 3
    python manage.py cinc_sync --connection 0b7c...-uuid
    python manage.py cinc_sync --all

Runs the same sync as the Celery task, in this process; a long rate-limit
wait is slept through here instead of rescheduling. Prints one summary line
per connection and exits non-zero when any sync did not succeed.
"""

import sys
import time
import uuid

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from accounts.models import Connection
from leads.models import SyncRun
from leads.sync import sync_connection

# Rate-limit waits slept through per connection before giving up.
MAX_RESUMES = 1000


class Command(BaseCommand):
    help = "Sync CINC agents and leads of one connection or of all active ones."

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument(
            "--connection",
            metavar="UUID_OR_ID",
            help="The connection to sync: its UUID or its database id.",
        )
        which.add_argument(
            "--all", action="store_true", help="Sync every active connection."
        )

    def handle(self, *args, connection=None, all=False, verbosity=1, **options):
        connections = self._connections(connection, all)
        if not connections:
            self.stdout.write("No active connections to sync.")
            return

        failed = 0
        for item in connections:
            if not self._sync(item, quiet=verbosity == 0):
                failed += 1
        if failed:
            raise CommandError(
                f"{failed} of {len(connections)} syncs did not succeed.", returncode=1
            )

    def _connections(self, wanted, every):
        if every:
            return list(
                Connection.objects.filter(status=Connection.Status.ACTIVE).order_by(
                    "pk"
                )
            )
        lookup = {"uuid": wanted} if _is_uuid(wanted) else {"pk": wanted}
        if "pk" in lookup and not wanted.isdigit():
            raise CommandError(f"'{wanted}' is neither a connection UUID nor an id.")
        connection = Connection.objects.filter(**lookup).first()
        if connection is None:
            raise CommandError(f"No connection {wanted}.")
        if not connection.is_active:
            raise CommandError(
                f"Connection {connection.pk} is {connection.get_status_display().lower()}"
                "; reconnect it before syncing."
            )
        return [connection]

    def _sync(self, connection, *, quiet):
        started = time.monotonic()
        bar = tqdm(
            desc=f"Connection {connection.pk}",
            unit=" records",
            file=sys.stderr,
            disable=True if quiet else None,
        )
        run_id, run = None, None
        try:
            for _ in range(MAX_RESUMES):
                outcome = sync_connection(
                    connection_id=connection.pk,
                    sync_run_id=run_id,
                    progress=lambda current: _show(bar, current),
                )
                run = outcome.run
                if run is None or outcome.retry_in is None:
                    break
                bar.set_postfix_str(f"waiting {outcome.retry_in}s for the rate limit")
                time.sleep(outcome.retry_in)
                run_id = run.pk
        finally:
            bar.close()

        seconds = time.monotonic() - started
        connection.refresh_from_db()
        label = connection.cinc_agent_name or connection.cinc_username
        if run is None:
            self.stderr.write(
                f"Connection {connection.pk} ({label}): not synced here; another "
                "sync of it is running or waiting."
            )
            return False
        run.refresh_from_db()
        self.stdout.write(
            f"Connection {connection.pk} ({label}): {_summary(run, seconds)}"
        )
        if run.status != SyncRun.Status.SUCCEEDED:
            self.stderr.write(run.error or "The sync did not finish.")
            return False
        return True


def _show(bar, run):
    bar.total = max(run.expected_records, run.records_seen)
    bar.n = run.records_seen
    bar.set_postfix_str(run.get_phase_display().lower())


def _summary(run, seconds):
    return (
        f"{run.get_status_display().lower()} in {seconds:.1f}s: "
        f"{run.records_seen:,} records "
        f"({run.created:,} new, {run.updated:,} changed, {run.unchanged:,} "
        f"unchanged, {run.removed:,} removed, {run.record_errors:,} unreadable); "
        f"{run.pages:,} pages, {run.requests:,} requests, {run.rate_limited:,} "
        f"rate limited, {run.retries:,} retries."
    )


def _is_uuid(value):
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
