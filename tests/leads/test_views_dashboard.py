"""The dashboard: connection cards, sync progress, counts, chart, empty states."""

import json
from datetime import timedelta

import pytest
from django.db import connection as db_connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Connection
from leads.models import SyncRun
from tests.leads.factories import (  # noqa: F401 (fast_passwords is a fixture)
    fast_passwords,
    make_agent,
    make_connection,
    make_lead,
    make_leads,
    make_run,
)

pytestmark = pytest.mark.django_db


def mirror_written(connection):
    """What the sync does with each write: a new version of the mirror, so
    the dashboard counts again rather than showing its cached counts."""
    Connection.objects.filter(pk=connection.pk).update(
        mirror_version=F("mirror_version") + 1
    )


def chart_data(response):
    content = response.content.decode()
    start = content.index('id="weekly-chart-data"')
    start = content.index(">", start) + 1
    end = content.index("</script>", start)
    return json.loads(content[start:end])


def test_dashboard_needs_sign_in(client):
    response = client.get(reverse("leads:dashboard"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_dashboard_without_connection_offers_to_connect(broker_client):
    response = broker_client.get(reverse("leads:dashboard"))

    assert response.status_code == 200
    assert b'id="connect-cinc"' in response.content
    assert b'id="connect-button"' in response.content
    assert b'id="lead-stats"' not in response.content


def test_card_shows_identity_scopes_and_last_sync(broker_client, broker):
    site = make_connection(
        broker,
        cinc_agent_name="Peachtree Realty",
        scopes=["api:read"],
        last_synced_at=timezone.now() - timedelta(hours=2),
    )
    make_run(
        site,
        status=SyncRun.Status.FAILED,
        error="CINC leads HTTP 500: server error",
        started_at=timezone.now() - timedelta(minutes=5),
        finished_at=timezone.now() - timedelta(minutes=4),
    )

    response = broker_client.get(reverse("leads:dashboard"))

    content = response.content.decode()
    assert "Peachtree Realty" in content
    assert f'id="connection-{site.uuid}"' in content
    assert "api:read" in content
    assert "create leads in CINC" in content  # the missing scope's feature
    assert "2\xa0hours ago" in content
    assert "CINC leads HTTP 500: server error" in content
    assert f'id="sync-now-{site.uuid}"' in content
    assert f'id="reconnect-{site.uuid}"' in content
    assert f'id="disconnect-{site.uuid}"' in content


def test_running_sync_shows_a_self_updating_progress_bar(broker_client, broker):
    site = make_connection(broker)
    make_run(
        site,
        status=SyncRun.Status.RUNNING,
        phase=SyncRun.Phase.LEADS,
        pages=3,
        records_seen=1200,
        expected_records=3000,
        started_at=timezone.now(),
    )

    response = broker_client.get(reverse("leads:dashboard"))

    content = response.content.decode()
    progress_url = reverse("leads:sync-progress", args=[site.uuid])
    assert f'hx-get="{progress_url}"' in content
    assert 'hx-trigger="every 2s"' in content
    assert f'<progress id="sync-bar-{site.uuid}" max="3000" value="1200"' in content
    assert "3 pages done" in content
    assert "1,200 records seen" in content
    assert 'id="first-sync-running"' in content  # no leads yet
    assert 'id="no-leads"' not in content


def test_last_attempt_of_a_sync_under_way_says_in_progress(broker_client, broker):
    # The attempt time is the active run's; the status of the run before it
    # must not be shown beside it.
    site = make_connection(broker, last_sync_attempt_at=timezone.now())
    make_run(
        site,
        status=SyncRun.Status.SUCCEEDED,
        started_at=timezone.now() - timedelta(hours=1),
        finished_at=timezone.now() - timedelta(minutes=59),
    )
    make_run(site, status=SyncRun.Status.RUNNING, started_at=timezone.now())

    content = broker_client.get(reverse("leads:dashboard")).content.decode()

    assert "· in progress" in content
    assert "· succeeded" not in content

    SyncRun.objects.filter(status=SyncRun.Status.RUNNING).update(
        status=SyncRun.Status.FAILED, finished_at=timezone.now()
    )
    content = broker_client.get(reverse("leads:dashboard")).content.decode()
    assert "· failed" in content and "· in progress" not in content


def test_last_attempt_of_a_first_sync_not_yet_started_says_queued(
    broker_client, broker
):
    site = make_connection(broker)
    make_run(site, status=SyncRun.Status.QUEUED)

    content = broker_client.get(reverse("leads:dashboard")).content.decode()

    assert "<dt>Last attempt</dt><dd>queued, not started yet</dd>" in content


def test_progress_partial_tells_of_a_rate_limit_wait(broker_client, broker):
    site = make_connection(broker)
    make_run(
        site,
        status=SyncRun.Status.RUNNING,
        records_seen=10,
        waiting_until=timezone.now() + timedelta(seconds=40),
    )

    response = broker_client.get(reverse("leads:sync-progress", args=[site.uuid]))

    assert response.status_code == 200
    assert b"Waiting for CINC's rate limit until" in response.content
    assert b"<html" not in response.content  # a partial, for htmx
    assert b"hx-get" in response.content


def test_progress_partial_stops_polling_when_the_run_is_done(broker_client, broker):
    site = make_connection(broker)
    make_run(
        site,
        status=SyncRun.Status.SUCCEEDED,
        records_seen=72,
        created=60,
        started_at=timezone.now() - timedelta(minutes=1),
        finished_at=timezone.now(),
    )

    response = broker_client.get(reverse("leads:sync-progress", args=[site.uuid]))

    assert b"hx-get" not in response.content
    assert b"Last sync succeeded" in response.content
    assert b"60 new" in response.content
    assert f'id="sync-finished-reload-{site.uuid}"'.encode() in response.content


def test_progress_of_another_brokers_connection_is_404(broker_client, make_broker):
    other = make_connection(make_broker())

    response = broker_client.get(reverse("leads:sync-progress", args=[other.uuid]))

    assert response.status_code == 404


def test_needs_reconnect_shows_the_banner_with_its_button(broker_client, broker):
    site = make_connection(broker, status=Connection.Status.NEEDS_RECONNECT)

    response = broker_client.get(reverse("leads:dashboard"))

    content = response.content.decode()
    assert f'id="reconnect-banner-{site.uuid}"' in content
    assert reverse("accounts:cinc-reconnect", args=[site.uuid]) in content
    assert f'id="sync-now-{site.uuid}"' not in content


def test_banner_shows_on_every_page(broker_client, broker):
    site = make_connection(broker, status=Connection.Status.NEEDS_RECONNECT)

    for name in ("leads:list", "leads:agent-list", "leads:create"):
        response = broker_client.get(reverse(name))
        assert f'id="reconnect-banner-{site.uuid}"'.encode() in response.content, name


def test_counts_by_status_and_source_and_recent_leads(broker_client, broker):
    site = make_connection(broker)
    make_leads(site, 3, status="unworked", source="Facebook")
    make_leads(site, 2, status="closed", source="Zillow")
    make_lead(site, status="closed", source="Zillow", removed_at=timezone.now())
    newest = make_lead(site, first_name="Newest", registered_at=timezone.now())

    response = broker_client.get(reverse("leads:dashboard"))

    content = response.content.decode()
    assert response.context["counts"]["total"] == 6  # the removed one is left out
    by_status = {
        row["status"]: row["count"] for row in response.context["counts"]["by_status"]
    }
    assert by_status == {"unworked": 4, "closed": 2}
    by_source = {
        row["source"]: row["count"] for row in response.context["counts"]["by_source"]
    }
    assert by_source == {"Facebook": 4, "Zillow": 2}
    assert 'id="leads-by-status"' in content
    assert 'id="leads-by-source"' in content
    assert response.context["recent_leads"][0].uuid == newest.uuid
    assert str(newest.uuid) in content


def test_chart_counts_new_leads_per_week(broker_client, broker):
    site = make_connection(broker)
    now = timezone.now()
    make_leads(site, 2, registered_at=now)
    make_lead(site, registered_at=now - timedelta(weeks=3))
    make_lead(site, registered_at=now - timedelta(weeks=30))  # before the chart

    response = broker_client.get(reverse("leads:dashboard"))

    data = chart_data(response)
    assert len(data["labels"]) == len(data["counts"]) == 12
    assert data["counts"][-1] == 2
    assert data["counts"][-4] == 1
    assert sum(data["counts"]) == 3
    assert b'id="weekly-chart"' in response.content
    assert b"js/dashboard.js" in response.content


def test_no_leads_and_no_sync_says_so(broker_client, broker):
    make_connection(broker)

    response = broker_client.get(reverse("leads:dashboard"))

    assert b'id="no-leads"' in response.content
    assert b'id="first-sync-running"' not in response.content


def test_dashboard_queries_do_not_grow_with_leads(broker_client, broker):
    site = make_connection(broker)
    agent = make_agent(site)
    make_leads(site, 5, primary_agent=agent)
    with CaptureQueriesContext(db_connection) as few:
        broker_client.get(reverse("leads:dashboard"))
    make_leads(site, 60, primary_agent=agent)
    mirror_written(site)

    with CaptureQueriesContext(db_connection) as many:
        broker_client.get(reverse("leads:dashboard"))

    assert len(many) == len(few)


def test_sync_now_queues_a_run(broker_client, broker):
    site = make_connection(broker)

    response = broker_client.post(reverse("leads:sync-start", args=[site.uuid]))

    assert response.status_code == 302
    run = SyncRun.objects.get(connection=site)
    assert run.status == SyncRun.Status.QUEUED
    followed = broker_client.get(response["Location"])
    assert b"Sync queued" in followed.content


def test_sync_now_twice_keeps_one_run(broker_client, broker):
    site = make_connection(broker)
    broker_client.post(reverse("leads:sync-start", args=[site.uuid]))

    response = broker_client.post(
        reverse("leads:sync-start", args=[site.uuid]), follow=True
    )

    assert SyncRun.objects.filter(connection=site).count() == 1
    assert b"already under way" in response.content


def test_sync_now_on_a_connection_needing_reconnect_explains(broker_client, broker):
    site = make_connection(broker, status=Connection.Status.NEEDS_RECONNECT)

    response = broker_client.post(
        reverse("leads:sync-start", args=[site.uuid]), follow=True
    )

    assert not SyncRun.objects.filter(connection=site).exists()
    assert b"needs reconnecting" in response.content


def test_sync_now_needs_post(broker_client, broker):
    site = make_connection(broker)

    response = broker_client.get(reverse("leads:sync-start", args=[site.uuid]))

    assert response.status_code == 405


def test_a_run_paused_for_the_rate_limit_says_so(broker_client, broker):
    site = make_connection(broker)
    make_run(
        site,
        status=SyncRun.Status.QUEUED,
        phase=SyncRun.Phase.LEADS,
        pages=4,
        waiting_until=timezone.now() + timedelta(seconds=25),
    )

    response = broker_client.get(reverse("leads:sync-progress", args=[site.uuid]))

    assert b"Paused" in response.content
    assert b"waiting for CINC's rate limit" in response.content
    assert b"waiting for a worker" not in response.content
    assert b"hx-get" in response.content


def test_dashboard_queries_do_not_grow_with_leads_or_sources(broker_client, broker):
    site = make_connection(broker)
    make_run(site, status=SyncRun.Status.SUCCEEDED)
    make_leads(site, 3, source="Zillow")
    with CaptureQueriesContext(db_connection) as few:
        broker_client.get(reverse("leads:dashboard"))
    for number in range(12):
        make_leads(site, 5, source=f"Source {number}", status=f"status {number}")
    mirror_written(site)

    with CaptureQueriesContext(db_connection) as many:
        response = broker_client.get(reverse("leads:dashboard"))

    assert response.context["counts"]["total"] == 63
    assert len(many) == len(few)


def test_recent_leads_link_to_their_pages(broker_client, broker):
    site = make_connection(broker)
    agent = make_agent(site)
    lead = make_lead(site, primary_agent=agent)

    content = broker_client.get(reverse("leads:dashboard")).content.decode()

    table = content[content.index('id="recent-lead-table"') :]
    assert f'href="{reverse("leads:detail", args=[lead.uuid])}"' in table
    assert f'href="{reverse("leads:agent-detail", args=[agent.uuid])}"' in table
