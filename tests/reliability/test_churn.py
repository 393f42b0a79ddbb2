"""Leads removed while a sync pages through them: offset paging then skips
the rows that move up past the walk's position. A sync that also finds many
leads gone (more than it looks up one by one) must not mark those skipped,
live leads removed."""

import pytest

from leads import sync
from leads.models import Lead, SyncRun

pytestmark = pytest.mark.django_db


def removed(connection):
    rows = Lead.objects.filter(connection=connection, removed_at__isnull=False)
    return set(rows.values_list("cinc_id", flat=True))


def test_leads_skipped_by_a_shifted_walk_are_not_marked_removed_with_many_gone(
    connection, sandbox, monkeypatch, settings
):
    monkeypatch.setattr(sync, "PAGE_SIZE", 20)
    sandbox.control.config(window=1, limit=50)
    settings.CINC_RATE_WINDOW, settings.CINC_RATE_LIMIT = 1, 50
    sync.sync_connection(connection_id=connection.pk)
    ids = [lead["id"] for lead in sandbox.control.leads()]
    for lead_id in ids[40:60]:  # gone before the run: 20 leads
        sandbox.control.delete_lead("demo", lead_id)
    sandbox.control.reset_stats()

    def delete_behind_the_walk(run):
        if run.phase == SyncRun.Phase.LEADS and run.next_offset == 20:
            for lead_id in ids[:10]:
                sandbox.control.delete_lead("demo", lead_id)

    outcome = sync.sync_connection(
        connection_id=connection.pk, progress=delete_behind_the_walk
    )

    # Page two (offset 20) started at ids[30]: ids[20:30] were never listed.
    # With 30 leads missing, more than are looked up one by one, the ten
    # that sat between the two pages are looked up and found.
    run = outcome.run
    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert removed(connection) == set(ids[40:60])
    assert run.removed == 20
    assert sandbox.control.stats()["requests"]["lead"] == 10

    run = sync.sync_connection(connection_id=connection.pk).run

    run.refresh_from_db()
    assert run.removed == 10
    assert removed(connection) == set(ids[:10]) | set(ids[40:60])
    live = Lead.objects.filter(connection=connection, removed_at=None)
    assert set(live.values_list("cinc_id", flat=True)) == set(ids[10:40])


def test_a_row_mirrored_late_at_a_page_boundary_does_not_hide_skipped_leads(
    connection, sandbox, monkeypatch, settings, caplog
):
    monkeypatch.setattr(sync, "PAGE_SIZE", 20)
    sandbox.control.config(window=1, limit=50)
    settings.CINC_RATE_WINDOW, settings.CINC_RATE_LIMIT = 1, 50
    sync.sync_connection(connection_id=connection.pk)
    records = sandbox.control.leads()
    ids = [lead["id"] for lead in records]
    # The last lead of page one mirrored again (as after an earlier run
    # skipped it): its row now has a larger pk than the leads after it.
    Lead.objects.filter(connection=connection, cinc_id=ids[19]).delete()
    sync.upsert_leads(connection=connection, records=[records[19]])
    for lead_id in ids[40:60]:
        sandbox.control.delete_lead("demo", lead_id)

    def delete_behind_the_walk(run):
        if run.phase == SyncRun.Phase.LEADS and run.next_offset == 20:
            for lead_id in ids[:10]:
                sandbox.control.delete_lead("demo", lead_id)

    run = sync.sync_connection(
        connection_id=connection.pk, progress=delete_behind_the_walk
    ).run

    # ids[20:30] were skipped; with the 20 gone before, 30 are missing.
    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert not removed(connection) & set(ids[10:40])
    assert "left for a later sync to confirm" in caplog.text

    sync.sync_connection(connection_id=connection.pk)

    assert removed(connection) == set(ids[:10]) | set(ids[40:60])
