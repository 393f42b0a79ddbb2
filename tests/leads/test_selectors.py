"""Scoped reads: search, ownership checks, dashboard figures, agent counts."""

from datetime import datetime, timedelta

import pytest
from django.http import Http404
from django.utils import timezone

from accounts.models import Connection
from leads import selectors
from leads.models import Agent, Lead
from tests.leads.factories import (  # noqa: F401 (fast_passwords is a fixture)
    fast_passwords,
    make_agent,
    make_connection,
    make_lead,
    make_leads,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(broker):
    return make_connection(broker)


def search(broker, text):
    leads = selectors.lead_base(broker=broker).filter(selectors.search_q(text))
    return sorted(leads.values_list("email", flat=True))


def test_search_needs_every_word(broker, site):
    make_lead(site, first_name="Jane", last_name="Doe", email="jd@x.com")
    make_lead(site, first_name="Jane", last_name="Roe", email="jr@x.com")

    assert search(broker, "jane") == ["jd@x.com", "jr@x.com"]
    assert search(broker, "Jane  Roe") == ["jr@x.com"]
    assert search(broker, "   ") == ["jd@x.com", "jr@x.com"]


def test_search_matches_phone_digits_however_written(broker, site):
    make_lead(site, email="p@x.com", cell_phone="", work_phone="+1 (404) 555-7788")

    assert search(broker, "404.555.7788") == ["p@x.com"]
    assert search(broker, "+1 404 555 7788") == ["p@x.com"]
    assert search(broker, "555-7789") == []


def test_owned_uuid(broker, make_broker, site):
    agent = make_agent(site)
    stranger = make_agent(make_connection(make_broker()))

    assert (
        selectors.owned_uuid(broker=broker, model=Agent, value=str(agent.uuid)) == agent
    )
    assert (
        selectors.owned_uuid(broker=broker, model=Connection, value=str(site.uuid))
        == site
    )
    assert selectors.owned_uuid(broker=broker, model=Agent, value="nope") is None
    with pytest.raises(Http404):
        selectors.owned_uuid(broker=broker, model=Agent, value=str(stranger.uuid))


def test_weeks_start_on_monday_in_the_brokers_timezone(broker, site, settings):
    settings.TIME_ZONE = "America/New_York"
    with timezone.override("America/New_York"):
        monday = timezone.make_aware(datetime(2024, 3, 11, 0, 30))
        make_lead(site, registered_at=monday)  # 04:30 UTC
        make_lead(site, registered_at=monday - timedelta(hours=1))  # Sunday, local

        weeks = selectors.weekly_new_leads(
            broker=broker, weeks=3, now=monday + timedelta(days=2)
        )

    assert [row["week"].isoformat() for row in weeks] == [
        "2024-02-26",
        "2024-03-04",
        "2024-03-11",
    ]
    assert [row["count"] for row in weeks] == [0, 1, 1]


def test_lead_counts_group_small_sources(broker, site):
    for number in range(selectors.TOP_SOURCES + 2):
        make_leads(site, number + 1, source=f"Source {number:02d}")

    counts = selectors.lead_counts(broker=broker)

    assert len(counts["by_source"]) == selectors.TOP_SOURCES + 1
    assert counts["by_source"][-1] == {"source": None, "count": 1 + 2}
    assert counts["total"] == sum(range(1, selectors.TOP_SOURCES + 3))


def test_agent_counts_skip_removed_leads_and_other_roles(broker, site):
    agent = make_agent(site)
    make_leads(site, 2, primary_agent=agent)
    make_lead(site, primary_agent=agent, removed_at=timezone.now())
    make_lead(site, listing_agent=agent)

    (row,) = selectors.agent_list(broker=broker)

    assert (row.primary_count, row.listing_count, row.partner_count) == (2, 1, 0)


def test_lead_by_email_ignores_case_and_removed_leads(broker, site):
    kept = make_lead(site, email="Jane@Example.com")
    make_lead(site, email="gone@example.com", removed_at=timezone.now())

    assert selectors.lead_by_email(connection=site, email=" jane@example.COM ") == kept
    assert selectors.lead_by_email(connection=site, email="gone@example.com") is None
    assert selectors.lead_by_email(connection=site, email="") is None


def test_lead_get_is_scoped_to_the_broker(broker, make_broker, site):
    other = make_lead(make_connection(make_broker()))

    with pytest.raises(Http404):
        selectors.lead_get(broker=broker, uuid=other.uuid)
    assert Lead.objects.filter(pk=other.pk).exists()
