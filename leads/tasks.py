"""Celery tasks of the sync. Small: they take ids and call ``leads.sync``.

``sync_connection_task`` runs (or resumes) one connection's sync; when the
rate limit asks for a long wait, the run is queued again and the task sends
itself with a countdown instead of holding the worker asleep. The beat runs
``sync_all_connections_task`` every ``CINC_SYNC_INTERVAL`` seconds.
"""

import logging

from celery import shared_task

from accounts.models import Connection

from . import sync

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True, acks_late=True)
def sync_connection_task(connection_id, sync_run_id=None):
    """Sync one connection: agents, then leads.

    Idempotent: the run is claimed with a conditional update, so a second
    delivery, a run already finished, a gone or inactive connection all end
    quietly. Failures are stored on the run (and logged), not raised.
    """
    outcome = sync.sync_connection(connection_id=connection_id, sync_run_id=sync_run_id)
    if outcome.retry_in is not None:
        sync.sync_resume_later(run=outcome.run, countdown=outcome.retry_in)


@shared_task(ignore_result=True)
def sync_all_connections_task():
    """The beat: close stale runs and delete old finished ones, then queue
    a sync of every active connection (those that need reconnecting or were
    disconnected are skipped; one with a sync under way keeps it)."""
    sync.sync_close_stale()
    try:
        sync.sync_runs_prune()
    except Exception:  # housekeeping must not stop the syncs
        logger.exception("Could not delete old sync runs")
    queued = 0
    active = Connection.objects.filter(status=Connection.Status.ACTIVE)
    for connection in active.order_by("pk").iterator():
        try:
            sync.sync_start(connection=connection)
        except Exception:  # one connection must not stop the others
            logger.exception(
                "Could not start the sync of connection %s",
                connection.pk,
                extra={"connection_id": connection.pk},
            )
            continue
        queued += 1
    logger.info("Sync of %s active connections requested", queued)
    return queued
