"""Scoped reads: search, ownership checks, dashboard figures, agent counts."""

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Count
from django.http import Http404
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Connection
from leads import selectors
from leads.filters import LEAD_SORTS, order_by, sort_choices
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


# Reads of a large lead book -----------------------------------------------------
#
# These check the shape of the SQL as well as the rows: the plans are
# SQLite's (the test database), which needs no table statistics to choose
# an index, so they are the same for 3 leads as for 100,000.

sqlite_only = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="reads SQLite's query plans"
)


def plan(queryset):
    return queryset.explain()


def test_lead_base_covers_every_connection_of_the_broker(broker, make_broker, site):
    second = make_connection(broker)
    make_lead(site, email="one@x.com")
    make_lead(second, email="two@x.com")
    make_lead(make_connection(make_broker()), email="theirs@x.com")

    emails = selectors.lead_base(broker=broker).values_list("email", flat=True)

    assert sorted(emails) == ["one@x.com", "two@x.com"]


def test_lead_base_of_a_broker_without_connections_is_empty(
    broker, django_assert_num_queries
):
    with django_assert_num_queries(1):  # the connection ids, then no query
        assert list(selectors.lead_base(broker=broker)) == []


@sqlite_only
def test_lead_base_asks_by_connection_id_not_through_a_join(broker, site):
    sql = str(selectors.lead_base(broker=broker).query)

    assert "accounts_connection" not in sql
    assert f'"connection_id" = {site.pk}' in sql


def test_lead_choices_lists_each_value_once_in_order(broker, make_broker, site):
    second = make_connection(broker)
    make_leads(site, 3, source="Zillow")
    make_lead(site, source="")
    make_lead(second, source="Facebook")
    make_lead(second, source="Open House", removed_at=timezone.now())
    make_lead(make_connection(make_broker()), source="Theirs")

    sources = selectors.lead_choices(broker=broker, column="source")

    assert sources == ["Facebook", "Open House", "Zillow"]


def test_lead_choices_costs_one_query_and_knows_only_menu_columns(
    broker, site, django_assert_num_queries
):
    make_leads(site, 5, status="closed")
    make_leads(site, 5, status="unworked")

    with django_assert_num_queries(1):
        statuses = selectors.lead_choices(broker=broker, column="status")

    assert statuses == ["closed", "unworked"]
    with pytest.raises(ValueError):
        selectors.lead_choices(broker=broker, column="email")


def test_lead_choices_of_a_broker_without_leads(broker, site):
    assert selectors.lead_choices(broker=broker, column="status") == []


@sqlite_only
def test_lead_choices_walk_the_index_instead_of_reading_every_lead(broker, site):
    sql = "EXPLAIN QUERY PLAN " + selectors_choices_sql(broker)

    with connection.cursor() as cursor:
        cursor.execute(sql)
        steps = " ".join(row[-1] for row in cursor.fetchall())

    assert "SCAN leads_lead" not in steps
    assert "COVERING INDEX lead_by_status (connection_id=? AND status>?)" in steps


def selectors_choices_sql(broker):
    """The SQL ``lead_choices`` sends for the status menu, as executed."""
    with CaptureQueriesContext(connection) as captured:
        selectors.lead_choices(broker=broker, column="status")
    return captured.captured_queries[-1]["sql"]


def test_lead_counts_read_the_mirror_once(broker, site, django_assert_num_queries):
    make_leads(site, 3, status="unworked", source="Zillow")
    make_leads(site, 2, status="closed", source="Zillow")
    make_lead(site, status="closed", source="Facebook")

    with django_assert_num_queries(2):  # the connection ids, one count
        counts = selectors.lead_counts(broker=broker)

    assert counts["total"] == 6
    assert counts["by_status"] == [  # equal counts by name
        {"status": "closed", "count": 3},
        {"status": "unworked", "count": 3},
    ]
    assert counts["by_source"] == [
        {"source": "Zillow", "count": 5},
        {"source": "Facebook", "count": 1},
    ]


@sqlite_only
def test_lead_counts_are_answered_by_an_index_alone(broker, site):
    leads = selectors.lead_base(broker=broker).filter(removed_at__isnull=True)

    steps = plan(leads.values("status", "source").annotate(n=Count("*")).order_by())

    assert "COVERING INDEX lead_facets" in steps


def test_lead_slice_reads_rows_at_an_offset_in_order(broker, site):
    for number in range(7):
        make_lead(site, last_name=f"Name{number}")
    leads = selectors.lead_base(broker=broker).order_by("last_name", "pk")

    rows = selectors.lead_slice(leads, offset=2, limit=3)

    assert [row["last_name"] for row in rows] == ["Name2", "Name3", "Name4"]


def test_lead_slice_of_an_unordered_queryset_is_newest_first(broker, site):
    now = timezone.now()
    for days in (3, 1, 2):
        make_lead(site, last_name=f"Days{days}", registered_at=now - timedelta(days))

    rows = selectors.lead_slice(Lead.objects.order_by(), offset=0, limit=2)

    assert [row["last_name"] for row in rows] == ["Days1", "Days2"]


def test_lead_count_upto_stops_at_the_limit(broker, site):
    make_leads(site, 7)
    leads = selectors.lead_base(broker=broker)

    assert selectors.lead_count_upto(leads, 5) == 5
    assert selectors.lead_count_upto(leads, 50) == 7


@sqlite_only
@pytest.mark.parametrize("sort", sort_choices(LEAD_SORTS))
def test_each_sort_of_the_list_reads_an_index_in_order(broker, site, sort):
    leads = selectors.lead_base(broker=broker).filter(removed_at__isnull=True)
    leads = leads.order_by(*order_by(LEAD_SORTS, sort[0]))

    steps = plan(leads.values("pk")[1000:1051])

    assert "TEMP B-TREE" not in steps  # no sort of the broker's leads
    assert "COVERING INDEX lead_by_" in steps  # the page found on the index


@sqlite_only
def test_the_count_of_a_facet_filter_reads_an_index_alone(broker, site):
    leads = selectors.lead_base(broker=broker).filter(
        removed_at__isnull=True, status="inprogress", is_buyer=True
    )

    steps = plan(leads.order_by().values("connection_id")[:10001])

    assert "COVERING INDEX lead_facets" in steps


@sqlite_only
def test_the_search_reads_a_narrow_index_not_the_leads(broker, site):
    leads = selectors.lead_base(broker=broker).filter(
        selectors.search_q("poole"), removed_at__isnull=True
    )

    steps = plan(leads.order_by("-registered_at", "-pk").values("pk")[:51])

    assert "COVERING INDEX lead_search_scan" in steps
