"""`leads.services.lead_refresh`: one lead fetched from CINC and written."""

import pytest

from accounts.services import ConnectionUnavailable
from leads import sync
from leads.models import Lead, LeadChange, SyncRun
from leads.services import lead_refresh

pytestmark = pytest.mark.django_db


@pytest.fixture
def synced(connection):
    sync.sync_connection(connection_id=connection.pk)
    return connection


def test_refresh_writes_the_lead_as_cinc_has_it_now(synced, sandbox):
    raw = sandbox.control.leads()[7]
    lead = Lead.objects.get(cinc_id=raw["id"])
    new_status = "closed" if lead.status != "closed" else "hot"
    sandbox.control.update_lead("demo", raw["id"], info={"status": new_status})
    sandbox.control.reset_stats()

    fresh = lead_refresh(lead=lead)

    assert fresh.status == new_status
    assert fresh.raw["info"]["status"] == new_status
    change = LeadChange.objects.get(lead=lead)
    assert (change.field, change.old_value, change.new_value) == (
        "status",
        lead.status,
        new_status,
    )
    run = SyncRun.objects.get(kind=SyncRun.Kind.LEAD)
    assert change.sync_run == run
    assert (run.status, run.requests, run.updated) == ("succeeded", 1, 1)
    assert sandbox.control.stats()["requests"]["lead"] == 1


def test_refresh_of_a_lead_cinc_no_longer_has_marks_it_removed(synced, sandbox):
    raw = sandbox.control.leads()[9]
    sandbox.control.delete_lead("demo", raw["id"])
    lead = Lead.objects.get(cinc_id=raw["id"])

    fresh = lead_refresh(lead=lead)

    assert fresh.removed_at is not None
    assert Lead.objects.filter(pk=lead.pk).exists()
    run = SyncRun.objects.get(kind=SyncRun.Kind.LEAD)
    assert (run.status, run.removed) == ("succeeded", 1)


def test_refresh_of_a_lead_found_again_clears_its_removed_mark(synced, sandbox):
    raw = sandbox.control.leads()[11]
    sandbox.control.delete_lead("demo", raw["id"])
    lead = lead_refresh(lead=Lead.objects.get(cinc_id=raw["id"]))
    sandbox.control.add_lead("demo", raw)

    fresh = lead_refresh(lead=lead)

    assert fresh.removed_at is None


def test_refresh_failure_is_raised_and_recorded(synced, sandbox):
    lead = Lead.objects.first()
    sandbox.control.revoke_tokens()

    with pytest.raises(ConnectionUnavailable):
        lead_refresh(lead=lead)

    run = SyncRun.objects.get(kind=SyncRun.Kind.LEAD)
    assert run.status == SyncRun.Status.FAILED
    assert "Refreshing the lead failed" in run.error
