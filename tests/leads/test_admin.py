"""The admin of the mirror: every model listed and viewable, read-only,
staff only, and never a token."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from leads.models import LeadWrite, SyncRunPage
from tests.leads.factories import (  # noqa: F401 (fast_passwords is a fixture)
    fast_passwords,
    make_agent,
    make_change,
    make_connection,
    make_lead,
    make_run,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    staff = get_user_model().objects.create_superuser("admin", "a@x.com", "pw-admin-1")
    client.force_login(staff)
    return client


@pytest.fixture
def rows(broker):
    site = make_connection(broker)
    site.access_token = "access-token-SECRET-1"
    site.refresh_token = "refresh-token-SECRET-2"
    site.save()
    agent = make_agent(site)
    lead = make_lead(site, primary_agent=agent, raw={"id": "LEAD_RAW_1", "info": {}})
    change = make_change(lead)
    run = make_run(
        site,
        status="succeeded",
        pages=7,
        records_seen=3200,
        started_at=timezone.now() - timedelta(minutes=2, seconds=5),
        finished_at=timezone.now(),
    )
    page = SyncRunPage.objects.create(
        run=run, phase="leads", offset=0, cinc_ids=["A", "B"]
    )
    write = LeadWrite.objects.create(
        connection=site,
        broker=broker,
        email=lead.email,
        payload={"info": {"contact": {"email": lead.email}}},
        status_code=201,
        response={"lead": {"id": lead.cinc_id}},
        outcome=LeadWrite.Outcome.CREATED,
        lead=lead,
    )
    return {
        "agent": agent,
        "lead": lead,
        "leadchange": change,
        "syncrun": run,
        "syncrunpage": page,
        "leadwrite": write,
        "connection": site,
    }


def admin_url(obj, view):
    meta = obj._meta
    name = f"admin:{meta.app_label}_{meta.model_name}_{view}"
    return reverse(name, args=[obj.pk]) if view == "change" else reverse(name)


def test_every_model_lists_and_shows_without_tokens(admin_client, rows):
    for name, obj in rows.items():
        for view in ("changelist", "change"):
            response = admin_client.get(admin_url(obj, view))
            assert response.status_code == 200, (name, view)
            assert b"SECRET" not in response.content, (name, view)
            assert b"gAAAA" not in response.content, (name, view)  # Fernet text


def test_search_and_filters_answer(admin_client, rows):
    lead = rows["lead"]

    found = admin_client.get(admin_url(lead, "changelist"), {"q": lead.email})
    filtered = admin_client.get(admin_url(lead, "changelist"), {"status": "unworked"})

    assert lead.email.encode() in found.content
    assert filtered.status_code == 200


def test_mirror_is_read_only(admin_client, rows):
    for name in ("agent", "lead", "leadchange", "syncrun", "syncrunpage", "leadwrite"):
        obj = rows[name]
        assert admin_client.get(admin_url(obj, "add")).status_code == 403, name
        response = admin_client.post(admin_url(obj, "change"), {})
        assert response.status_code == 403, name


def test_sync_runs_read_at_a_glance(admin_client, rows):
    response = admin_client.get(admin_url(rows["syncrun"], "changelist"))

    content = response.content.decode()
    assert "2 min 5 s" in content
    assert "3200" in content
    assert "Succeeded" in content


def test_raw_record_is_shown_as_json(admin_client, rows):
    response = admin_client.get(admin_url(rows["lead"], "change"))

    assert b"&quot;LEAD_RAW_1&quot;" in response.content


def test_only_staff_reach_the_admin(broker_client, rows):
    response = broker_client.get(admin_url(rows["lead"], "changelist"))

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_deleting_mirrored_rows_moves_the_mirror_version(admin_client, rows):
    from accounts.models import Connection
    from leads.models import Lead

    site = rows["lead"].connection
    before = Connection.objects.get(pk=site.pk).mirror_version

    response = admin_client.post(
        reverse("admin:leads_lead_delete", args=[rows["lead"].pk]), {"post": "yes"}
    )
    after_one = Connection.objects.get(pk=site.pk).mirror_version
    response_many = admin_client.post(
        reverse("admin:leads_agent_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": [rows["agent"].pk],
            "post": "yes",
        },
    )

    assert response.status_code == 302 and response_many.status_code == 302
    assert not Lead.objects.filter(pk=rows["lead"].pk).exists()
    assert before < after_one < Connection.objects.get(pk=site.pk).mirror_version
