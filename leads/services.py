"""Writes for the mirror that a broker starts from a page.

Every function takes keyword arguments. The bulk write of CINC records lives
in ``leads.sync`` (``upsert_leads``), shared with the sync.
"""

import logging

from django.db import transaction
from django.utils import timezone

from accounts.services import connection_client
from cinc.errors import MalformedResponse, NotFound
from cinc.records import parse_lead

from .models import Lead, SyncRun
from .sync import lock_mirror, mirror_changed, upsert_leads

logger = logging.getLogger(__name__)

# The client's events, and the SyncRun counters they go to.
EVENT_COUNTERS = {
    "request": "requests",
    "rate_limited": "rate_limited",
    "retry": "retries",
}


def lead_refresh(*, lead, max_wait=None):
    """Fetch one lead from CINC and write it to the mirror; return it fresh.

    A 404 marks the lead removed upstream (``removed_at``); a lead found
    again is no longer marked removed. Status and assignment changes are
    kept as history rows, as in the sync. The call is recorded as a
    ``SyncRun`` of kind LEAD.

    Raises what the client raises (``cinc.errors.RateLimited`` when the wait
    would exceed ``max_wait``, ``UpstreamError``, ``MalformedResponse``,
    ``RecordError`` for a record that cannot be read ...) and
    ``accounts.services.ConnectionUnavailable`` when the connection needs
    reconnecting; the run records the error first.
    """
    connection = lead.connection
    run = SyncRun.objects.create(
        connection=connection,
        kind=SyncRun.Kind.LEAD,
        status=SyncRun.Status.RUNNING,
        phase=SyncRun.Phase.LEADS,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
        expected_records=1,
    )
    counted = {"requests": 0, "rate_limited": 0, "retries": 0}

    def on_event(kind, **info):
        name = EVENT_COUNTERS.get(kind)
        if name:
            counted[name] += 1

    # A broker waits on this from the lead page.
    client = connection_client(
        connection=connection, on_event=on_event, max_wait=max_wait, interactive=True
    )
    try:
        try:
            raw = client.lead(lead.cinc_id)
        except NotFound:
            with transaction.atomic():
                lock_mirror(connection)
                removed = Lead.objects.filter(pk=lead.pk, removed_at=None).update(
                    removed_at=timezone.now()
                )
                if removed:
                    mirror_changed(connection)
            _finish(run, counted, removed=removed)
            _log(lead, run, "not found upstream; marked removed")
            return Lead.objects.get(pk=lead.pk)

        record = parse_lead(raw)
        if record.id != lead.cinc_id:
            raise MalformedResponse("CINC answered with another lead", endpoint="lead")
        counts = upsert_leads(connection=connection, records=[raw], sync_run=run)
        _finish(run, counted, counts=counts)
    except Exception as exc:
        _finish(run, counted, error=exc)
        raise
    finally:
        client.session.close()
    _log(lead, run, "refreshed")
    return Lead.objects.get(pk=lead.pk)


def _finish(run, counted, *, counts=None, removed=0, error=None):
    run.status = SyncRun.Status.FAILED if error else SyncRun.Status.SUCCEEDED
    run.phase = SyncRun.Phase.DONE
    run.finished_at = timezone.now()
    run.heartbeat_at = run.finished_at
    run.removed = removed
    for name, value in counted.items():
        setattr(run, name, value)
    if counts is not None:
        run.pages = 1
        run.records_seen = counts.seen
        run.created = counts.created
        run.updated = counts.updated
        run.unchanged = counts.unchanged
        run.record_errors = counts.record_errors
    if error is not None:
        run.error = f"Refreshing the lead failed: {error}"
    run.save()


def _log(lead, run, what):
    logger.info(
        "Lead %s of connection %s %s",
        lead.pk,
        lead.connection_id,
        what,
        extra={"connection_id": lead.connection_id, "sync_run_id": run.pk},
    )
