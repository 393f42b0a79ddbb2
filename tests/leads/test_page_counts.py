"""The dashboard's lead counts are cached under the mirror's version: served
from the cache while no write moved it, counted again once one did, and
never shared between brokers."""

import pytest
from django.core.cache import cache
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from accounts.models import Connection
from leads import selectors, sync
from leads.models import Lead
from tests.leads.factories import (  # noqa: F401 (fast_passwords is a fixture)
    fast_passwords,
    make_connection,
    make_lead,
    make_leads,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def site(broker):
    return make_connection(broker)


def mirror_written(connection):
    """What the sync, a lead refresh and a lead creation do with each write."""
    Connection.objects.filter(pk=connection.pk).update(
        mirror_version=F("mirror_version") + 1
    )


def test_counts_come_from_the_cache_while_the_mirror_is_unchanged(
    broker, site, django_assert_num_queries
):
    make_leads(site, 3, status="closed")
    first = selectors.lead_counts(broker=broker)
    make_lead(site, status="closed")  # not through the sync: no new version

    with django_assert_num_queries(1):  # the versions only
        again = selectors.lead_counts(broker=broker)

    assert again == first
    assert again["total"] == 3


def test_counts_are_counted_again_when_the_mirror_version_moves(broker, site):
    make_leads(site, 3, status="closed", source="Zillow")
    selectors.lead_counts(broker=broker)
    make_lead(site, status="unworked", source="Zillow")
    mirror_written(site)

    counts = selectors.lead_counts(broker=broker)

    assert counts["total"] == 4
    assert counts["by_status"] == [
        {"status": "closed", "count": 3},
        {"status": "unworked", "count": 1},
    ]


def test_a_lead_marked_removed_leaves_the_counts_with_the_new_version(broker, site):
    leads = make_leads(site, 2)
    selectors.lead_counts(broker=broker)
    Lead.objects.filter(pk=leads[0].pk).update(removed_at=timezone.now())
    mirror_written(site)

    assert selectors.lead_counts(broker=broker)["total"] == 1


def test_a_new_site_of_the_broker_is_counted(broker, site):
    make_leads(site, 2)
    selectors.lead_counts(broker=broker)
    make_leads(make_connection(broker), 3)

    assert selectors.lead_counts(broker=broker)["total"] == 5


def test_brokers_at_the_same_versions_keep_their_own_counts(broker, site, make_broker):
    other = make_broker()
    make_leads(site, 2)
    make_leads(make_connection(other), 5)

    mine = [selectors.lead_counts(broker=broker)["total"] for _ in range(2)]
    theirs = [selectors.lead_counts(broker=other)["total"] for _ in range(2)]

    assert mine == [2, 2]
    assert theirs == [5, 5]


def test_dashboard_shows_the_counts_of_the_current_version(broker_client, site):
    make_leads(site, 2, status="closed")
    first = broker_client.get(reverse("leads:dashboard"))
    make_leads(site, 3, status="closed")
    mirror_written(site)

    second = broker_client.get(reverse("leads:dashboard"))

    assert first.context["counts"]["total"] == 2
    assert second.context["counts"]["total"] == 5
    assert 'id="lead-total">5</p>' in second.content.decode()


def lead_record(number, status):
    return {
        "id": f"LEAD_C{number}",
        "registered_date": "2024-03-01T10:00:00Z",
        "info": {
            "status": status,
            "contact": {"first_name": f"First{number}", "email": f"c{number}@ex.test"},
        },
    }


def test_counts_follow_each_page_the_sync_writes(broker_client, site):
    sync.upsert_leads(
        connection=site, records=[lead_record(n, "unworked") for n in range(3)]
    )
    before = broker_client.get(reverse("leads:dashboard")).context["counts"]
    sync.upsert_leads(
        connection=site,
        records=[lead_record(0, "closed"), lead_record(3, "closed")],
    )

    after = broker_client.get(reverse("leads:dashboard")).context["counts"]

    assert before["by_status"] == [{"status": "unworked", "count": 3}]
    assert after["total"] == 4
    assert after["by_status"] == [
        {"status": "closed", "count": 2},
        {"status": "unworked", "count": 2},
    ]
