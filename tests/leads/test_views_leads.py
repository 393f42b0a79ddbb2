"""The leads list (search, filters, sorting, paging, bad input), the CSV
export and the lead page."""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.paginator import Paginator
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from leads.models import Lead, SyncRun
from tests.leads.factories import (  # noqa: F401 (fast_passwords is a fixture)
    fast_passwords,
    make_agent,
    make_change,
    make_connection,
    make_lead,
    make_leads,
    make_run,
)

pytestmark = pytest.mark.django_db

LIST = reverse("leads:list")
EXPORT = reverse("leads:export")


@pytest.fixture
def site(broker):
    return make_connection(broker)


def listed(response):
    return [lead.email for lead in response.context["page"].object_list]


def exported(response):
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(body)))


def local(year, month, day, hour=12):
    return timezone.make_aware(datetime(year, month, day, hour))


# Listing and paging -----------------------------------------------------------


def test_list_shows_fifty_a_page_with_page_links(broker_client, site):
    make_leads(site, 120)

    first = broker_client.get(LIST)
    last = broker_client.get(LIST, {"page": 3})

    assert len(listed(first)) == 50
    assert len(listed(last)) == 20
    assert b'id="pagination"' in first.content
    assert b"?page=2" in first.content
    assert b"120 leads" in first.content


def test_list_hides_removed_leads_unless_asked(broker_client, site):
    make_lead(site, email="here@example.com")
    make_lead(site, email="gone@example.com", removed_at=timezone.now())

    default = broker_client.get(LIST)
    with_removed = broker_client.get(LIST, {"removed": "on"})

    assert listed(default) == ["here@example.com"]
    assert sorted(listed(with_removed)) == ["gone@example.com", "here@example.com"]
    assert b"removed in CINC" in with_removed.content


@pytest.mark.parametrize(
    "query, expected",
    [
        ("jane", {"jane@example.com"}),
        ("JANE DOE", {"jane@example.com"}),
        ("example.org", {"bob@example.org"}),
        ("(912) 756-2309", {"jane@example.com"}),
        ("756-2309", {"jane@example.com"}),
        ("4045551234", {"bob@example.org"}),
        ("nobody", set()),
    ],
)
def test_search_by_name_email_or_phone(broker_client, site, query, expected):
    make_lead(
        site,
        first_name="Jane",
        last_name="Doe",
        email="jane@example.com",
        cell_phone="9127562309",
    )
    make_lead(
        site,
        first_name="Bob",
        last_name="Stone",
        email="bob@example.org",
        cell_phone="",
        home_phone="404-555-1234",
    )

    response = broker_client.get(LIST, {"q": query})

    assert set(listed(response)) == expected


def test_filters_by_status_source_buyer_seller_city_and_state(broker_client, site):
    make_lead(
        site,
        email="a@x.com",
        status="closed",
        source="Zillow",
        is_buyer=True,
        city="Dallas",
        state="TX",
    )
    make_lead(
        site,
        email="b@x.com",
        status="closed",
        source="Zillow",
        is_seller=True,
        city="Dallas",
        state="TX",
    )
    make_lead(
        site, email="c@x.com", status="unworked", source="Facebook", is_buyer=True
    )

    def emails(**params):
        return sorted(listed(broker_client.get(LIST, params)))

    assert emails(status="closed") == ["a@x.com", "b@x.com"]
    assert emails(source="Facebook") == ["c@x.com"]
    assert emails(buyer="yes") == ["a@x.com", "c@x.com"]
    assert emails(buyer="no") == ["b@x.com"]
    assert emails(seller="yes") == ["b@x.com"]
    assert emails(city="dallas", state="tx", buyer="yes") == ["a@x.com"]


def test_agent_filter_matches_any_role(broker_client, site):
    agent = make_agent(site)
    make_lead(site, email="primary@x.com", primary_agent=agent)
    make_lead(site, email="listing@x.com", listing_agent=agent)
    make_lead(site, email="partner@x.com", partner=agent)
    make_lead(site, email="other@x.com")

    response = broker_client.get(LIST, {"agent": str(agent.uuid)})

    assert sorted(listed(response)) == [
        "listing@x.com",
        "partner@x.com",
        "primary@x.com",
    ]


def test_registered_date_range_uses_the_brokers_days(broker_client, site, settings):
    settings.TIME_ZONE = "America/New_York"
    # 23:30 in New York on March 1st is March 2nd in UTC.
    make_lead(
        site,
        email="late@x.com",
        registered_at=local(2024, 3, 1, 23) + timedelta(minutes=30),
    )
    make_lead(site, email="next@x.com", registered_at=local(2024, 3, 2, 9))
    make_lead(site, email="before@x.com", registered_at=local(2024, 2, 20))

    response = broker_client.get(
        LIST, {"registered_from": "2024-03-01", "registered_to": "2024-03-01"}
    )
    open_ended = broker_client.get(LIST, {"registered_from": "2024-03-02"})

    assert listed(response) == ["late@x.com"]
    assert listed(open_ended) == ["next@x.com"]


def test_connection_filter_when_the_broker_has_several_sites(
    broker_client, broker, site
):
    second = make_connection(broker, cinc_agent_name="Second site")
    make_lead(site, email="first@x.com")
    make_lead(second, email="second@x.com")

    everything = broker_client.get(LIST)
    only_second = broker_client.get(LIST, {"connection": str(second.uuid)})

    assert sorted(listed(everything)) == ["first@x.com", "second@x.com"]
    assert listed(only_second) == ["second@x.com"]
    assert b'id="id_connection"' in everything.content
    assert b"Second site" in everything.content


def test_connection_filter_is_hidden_with_one_site(broker_client, site):
    make_lead(site)

    response = broker_client.get(LIST)

    assert b'id="id_connection"' not in response.content


@pytest.mark.parametrize(
    "sort, expected",
    [
        ("name", ["Adams", "Brown", "Clark"]),
        ("-name", ["Clark", "Brown", "Adams"]),
        ("registered", ["Brown", "Clark", "Adams"]),
        ("-registered", ["Adams", "Clark", "Brown"]),
    ],
)
def test_sortable_columns(broker_client, site, sort, expected):
    now = timezone.now()
    make_lead(site, last_name="Adams", registered_at=now)
    make_lead(site, last_name="Brown", registered_at=now - timedelta(days=2))
    make_lead(site, last_name="Clark", registered_at=now - timedelta(days=1))

    response = broker_client.get(LIST, {"sort": sort})

    assert [lead.last_name for lead in response.context["page"].object_list] == expected


def test_sort_links_keep_the_filters_and_flip_direction(broker_client, site):
    make_lead(site, status="closed")

    response = broker_client.get(
        LIST, {"status": "closed", "sort": "name", "page": "1"}
    )

    content = response.content.decode()
    assert 'href="?status=closed&amp;sort=-name"' in content
    assert 'aria-sort="ascending"' in content


def test_filters_live_in_the_url(broker_client, site):
    make_lead(site, status="closed", city="Dallas")

    response = broker_client.get(LIST, {"status": "closed", "city": "Dallas"})

    content = response.content.decode()
    assert 'method="get"' in content
    assert '<option value="closed" selected>' in content
    assert 'value="Dallas"' in content
    assert f"{EXPORT}?status=closed&amp;city=Dallas" in content


@pytest.mark.parametrize(
    "params, message",
    [
        ({"registered_from": "2024-02-30"}, "Registered from"),
        ({"registered_to": "yesterday"}, "Registered to"),
        ({"registered_from": "0001-01-01"}, "between 1900"),
        ({"registered_to": "9999-12-31"}, "between 1900"),
        ({"sort": "password"}, "Sort"),
        ({"sort": "-"}, "Sort"),
        ({"status": "x" * 1000}, "Status"),
        ({"q": "x" * 101}, "Search"),
        ({"city": "y" * 500}, "City"),
        ({"agent": "not-a-uuid"}, "Assigned agent"),
        ({"connection": "12"}, "CINC site"),
        ({"buyer": "maybe"}, "Buyer"),
        ({"page": "abc"}, "not a page number"),
        ({"page": "-1"}, "not a page number"),
        ({"page": "9" * 30}, "not a page number"),
        ({"page": "1e9"}, "not a page number"),
        ({"page": "9999999"}, "does not exist"),
    ],
)
def test_bad_parameters_render_with_a_message(broker_client, site, params, message):
    make_leads(site, 3)

    response = broker_client.get(LIST, params)

    assert response.status_code == 200
    assert b'id="filter-problems"' in response.content
    assert message in " ".join(response.context["problems"])
    assert len(listed(response)) == 3  # the bad value was ignored


def test_bad_parameters_on_an_empty_mirror_never_fail(broker_client, site):
    response = broker_client.get(
        LIST,
        {"page": "5", "q": "\x00", "registered_from": "2024-13-01", "removed": "zz"},
    )

    assert response.status_code == 200


@pytest.mark.skipif(db_connection.vendor != "sqlite", reason="SQLite's plan")
def test_agent_filter_finds_leads_on_the_agent_indexes(broker_client, site):
    agent = make_agent(site)
    make_lead(site, primary_agent=agent)
    make_lead(site, listing_agent=agent, removed_at=timezone.now())

    response = broker_client.get(LIST, {"agent": str(agent.uuid)})

    steps = response.context["filter"].qs.explain()
    for role in ("primary_agent", "listing_agent", "partner"):
        assert f"COVERING INDEX leads_lead_{role}_id" in steps
    assert len(listed(response)) == 1  # the removed lead stays hidden


def test_unknown_agent_uuid_is_404(broker_client, site):
    response = broker_client.get(
        LIST, {"agent": "6a1f0f4e-6b42-4c43-9d0c-0e9c3f0b7a11"}
    )

    assert response.status_code == 404


def test_no_results_state(broker_client, site):
    make_lead(site, status="closed")

    response = broker_client.get(LIST, {"status": "trash"})

    assert b'id="no-results"' in response.content
    assert b"Clear filters" in response.content


def test_no_leads_state(broker_client, site):
    response = broker_client.get(LIST)

    assert b'id="no-leads"' in response.content


def test_first_sync_running_state(broker_client, site):
    make_run(site, status=SyncRun.Status.RUNNING)

    response = broker_client.get(LIST)

    assert b'id="first-sync-running"' in response.content


def test_no_connection_state(broker_client):
    response = broker_client.get(LIST)

    assert b'id="no-connection"' in response.content


def test_list_queries_do_not_grow_with_rows(broker_client, broker, site):
    second = make_connection(broker)  # the site column and filter show too
    agent = make_agent(site)
    make_leads(site, 5, primary_agent=agent)
    make_lead(second)
    with CaptureQueriesContext(db_connection) as few:
        response = broker_client.get(LIST, {"q": "lead"})
    assert len(listed(response)) == 6
    make_leads(site, 60, primary_agent=agent)

    with CaptureQueriesContext(db_connection) as many:
        response = broker_client.get(LIST, {"q": "lead"})

    assert len(listed(response)) == 50
    assert len(many) == len(few)


def test_list_queries_do_not_grow_with_page_size_or_depth(
    broker_client, site, monkeypatch
):
    make_leads(site, 130)
    counts = []

    for size, page in ((10, 1), (50, 1), (200, 1), (10, 12), (50, 3)):
        monkeypatch.setattr("leads.views.PAGE_SIZE", size)
        with CaptureQueriesContext(db_connection) as queries:
            response = broker_client.get(LIST, {"page": page})
        assert listed(response), (size, page)
        counts.append(len(queries))

    assert len(set(counts)) == 1, counts


def test_long_list_says_more_than_the_counted_rows(broker_client, site, monkeypatch):
    monkeypatch.setattr("leads.views.LEAD_COUNT_LIMIT", 60)
    make_leads(site, 120)

    response = broker_client.get(LIST)

    content = response.content.decode()
    assert len(listed(response)) == 50
    assert "More than 60 leads · showing 1–50" in content
    assert 'class="page-next"' in content and "?page=2" in content
    assert 'class="page-last"' not in content  # the last page is not known
    # 61 rows counted: two pages known, more may follow.
    assert response.context["page"].elided_range == [1, 2, Paginator.ELLIPSIS]


def test_long_list_counts_exactly_on_its_last_page(broker_client, site, monkeypatch):
    monkeypatch.setattr("leads.views.LEAD_COUNT_LIMIT", 60)
    make_leads(site, 120)

    response = broker_client.get(LIST, {"page": 3})

    content = response.content.decode()
    assert len(listed(response)) == 20
    assert "120 leads · showing 101–120" in content
    assert 'class="page-next"' not in content


def test_deep_page_of_a_long_list_shows_its_rows(broker_client, site, monkeypatch):
    monkeypatch.setattr("leads.views.LEAD_COUNT_LIMIT", 20)
    leads = make_leads(site, 160)
    newest_first = sorted(leads, key=lambda lead: (lead.registered_at, lead.pk))[::-1]

    response = broker_client.get(LIST, {"page": 2})

    assert listed(response) == [lead.email for lead in newest_first[50:100]]
    assert "More than 100 leads · showing 51–100" in response.content.decode()


def test_page_past_the_end_of_a_long_list_shows_the_last_page(
    broker_client, site, monkeypatch
):
    monkeypatch.setattr("leads.views.LEAD_COUNT_LIMIT", 60)
    make_leads(site, 120)

    response = broker_client.get(LIST, {"page": 9})

    assert "showing the last page (3)" in " ".join(response.context["problems"])
    assert len(listed(response)) == 20
    assert "120 leads · showing 101–120" in response.content.decode()


def test_list_rows_link_to_the_lead_and_agent_and_show_local_dates(
    broker_client, site, settings
):
    settings.TIME_ZONE = "America/New_York"
    agent = make_agent(site)
    lead = make_lead(
        site,
        primary_agent=agent,
        registered_at=datetime(2024, 3, 2, 3, 30, tzinfo=UTC),  # Mar 1 local
    )

    content = broker_client.get(LIST).content.decode()

    row = content[content.index(f'data-lead="{lead.uuid}"') :]
    row = row[: row.index("</tr>")]
    assert f'href="{reverse("leads:detail", args=[lead.uuid])}"' in row
    assert f'href="{reverse("leads:agent-detail", args=[agent.uuid])}"' in row
    assert '<time datetime="2024-03-01T22:30:00-05:00">Mar 1, 2024</time>' in row


# CSV ----------------------------------------------------------------------------


def test_export_is_exactly_the_filtered_set(broker_client, site):
    make_leads(site, 3, status="closed")
    make_leads(site, 2, status="unworked")
    make_lead(site, status="closed", removed_at=timezone.now())

    response = broker_client.get(EXPORT, {"status": "closed", "page": "1"})

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    rows = exported(response)
    assert len(rows) == 3
    assert {row["Status"] for row in rows} == {"closed"}


def test_export_is_not_cut_to_a_page(broker_client, site):
    make_leads(site, 130)

    rows = exported(broker_client.get(EXPORT))

    assert len(rows) == 130


def test_export_columns_hold_the_lead(broker_client, site, settings):
    settings.TIME_ZONE = "America/New_York"
    agent = make_agent(site, first_name="Rebecca", last_name="Lejeune")
    make_lead(
        site,
        cinc_id="LEAD_X",
        first_name="Janis",
        last_name="A. Doe",
        email="jane.doe@email.com",
        registered_at=datetime(2022, 4, 14, 9, 21, tzinfo=UTC),
        is_buyer=True,
        buyer_average_price=Decimal("250000.00"),
        primary_agent=agent,
    )

    (row,) = exported(broker_client.get(EXPORT))

    assert row["CINC id"] == "LEAD_X"
    assert row["First name"] == "Janis"
    assert row["Last name"] == "A. Doe"
    assert row["Email"] == "jane.doe@email.com"
    assert row["Registered"] == "2022-04-14 05:21"
    assert row["Buyer"] == "yes"
    assert row["Average price"] == "250000.00"
    assert row["Primary agent"] == "Rebecca Lejeune"


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_export_neutralises_spreadsheet_formulas(broker_client, site, start):
    make_lead(site, first_name=f'{start}HYPERLINK("http://evil")', city=f"{start}1+1")

    (row,) = exported(broker_client.get(EXPORT))

    assert row["First name"] == f'\'{start}HYPERLINK("http://evil")'
    assert row["City"] == f"'{start}1+1"


def test_export_keeps_ordinary_text(broker_client, site):
    make_lead(site, first_name="Ann=Marie", city="Winston-Salem")

    (row,) = exported(broker_client.get(EXPORT))

    assert row["First name"] == "Ann=Marie"
    assert row["City"] == "Winston-Salem"


def test_export_with_a_bad_filter_exports_nothing_and_says_why(broker_client, site):
    make_leads(site, 2)

    response = broker_client.get(
        EXPORT, {"registered_from": "nope", "status": "closed"}
    )

    assert response.status_code == 302
    assert response["Location"] == f"{LIST}?registered_from=nope&status=closed"
    shown = broker_client.get(response["Location"])
    assert b"Nothing was exported" in shown.content
    assert b'id="filter-problems"' in shown.content


def test_export_ignores_the_page(broker_client, site):
    make_leads(site, 2)

    response = broker_client.get(EXPORT, {"page": "abc"})

    assert response.status_code == 200
    assert len(exported(response)) == 2


# The lead page ----------------------------------------------------------------------


def test_lead_page_shows_every_field_and_links_agents(broker_client, site):
    primary = make_agent(site, first_name="Rebecca", last_name="Lejeune")
    make_agent(site, cinc_id="AGENT_MDID5", first_name="Lou", last_name="Lister")
    lead = make_lead(
        site,
        first_name="Janis",
        last_name="A. Doe",
        email="jane.doe@email.com",
        cell_phone="9127562309",
        office_phone="5555555555",
        street="9390 Ford Ave",
        city="Richmond Hill",
        state="Georgia",
        zip_code="31324",
        is_buyer=True,
        buyer_median_price=Decimal("0"),
        buyer_average_price=Decimal("250000"),
        buyer_favorite_city="Dallas",
        buyer_timeline="4 to 6 weeks",
        is_seller=True,
        seller_timeline="soon",
        primary_agent=primary,
        partner_cinc_id="AGENT_UNKNOWN",
        source="Facebook",
        status="unworked",
        raw={"id": "LEAD_MDID0", "info": {"contact": {"email": "jane.doe@email.com"}}},
    )

    response = broker_client.get(reverse("leads:detail", args=[lead.uuid]))

    content = response.content.decode()
    for text in (
        "Janis A. Doe",
        "jane.doe@email.com",
        "(912) 756-2309",
        "(555) 555-5555",
        "9390 Ford Ave",
        "Richmond Hill",
        "31324",
        "$250,000",
        "$0",
        "Dallas",
        "4 to 6 weeks",
        "soon",
        "Facebook",
        "unworked",
        "AGENT_UNKNOWN",
        "not in the mirror yet",
    ):
        assert text in content, text
    assert reverse("leads:agent-detail", args=[primary.uuid]) in content
    assert 'id="raw-record"' in content
    assert "&quot;LEAD_MDID0&quot;" in content
    assert 'id="removed-marker"' not in content


def test_lead_page_shows_status_and_assignment_history(broker_client, site):
    lead = make_lead(site)
    make_change(lead, field="status", old_value="unworked", new_value="inprogress")
    make_change(lead, field="primary_agent", old_value="AGENT_1", new_value="AGENT_2")

    response = broker_client.get(reverse("leads:detail", args=[lead.uuid]))

    content = response.content.decode()
    assert 'id="lead-history-table"' in content
    assert "inprogress" in content
    assert "Primary agent" in content
    assert "AGENT_2" in content


def test_history_names_mirrored_agents_and_keeps_unknown_ids(broker_client, site):
    lead = make_lead(site)
    make_agent(site, cinc_id="AGENT_OLD", first_name="Olga", last_name="Old")
    make_agent(site, cinc_id="AGENT_NEW", first_name="Ned", last_name="<New>")
    make_change(
        lead, field="listing_agent", old_value="AGENT_OLD", new_value="AGENT_NEW"
    )
    make_change(lead, field="partner", old_value="", new_value="AGENT_GONE")

    response = broker_client.get(reverse("leads:detail", args=[lead.uuid]))

    rows = response.content.decode().split('id="lead-history-table"')[1]
    assert "<td>Olga Old</td><td>Ned &lt;New&gt;</td>" in rows
    assert "<td>—</td><td>AGENT_GONE</td>" in rows
    assert "AGENT_OLD" not in rows


def test_lead_removed_upstream_is_marked(broker_client, site):
    lead = make_lead(site, removed_at=timezone.now())

    response = broker_client.get(reverse("leads:detail", args=[lead.uuid]))

    assert b'id="removed-marker"' in response.content
    assert b"Removed in CINC" in response.content


def test_lead_page_escapes_upstream_text(broker_client, site):
    lead = make_lead(
        site, first_name="<script>alert(1)</script>", raw={"x": "</pre><script>"}
    )

    response = broker_client.get(reverse("leads:detail", args=[lead.uuid]))

    assert b"<script>alert(1)" not in response.content
    assert b"</pre><script>" not in response.content


def test_lead_page_queries_are_bounded(
    broker_client, site, django_assert_max_num_queries
):
    lead = make_lead(site, primary_agent=make_agent(site))
    for _ in range(20):
        make_change(lead)

    with django_assert_max_num_queries(12):
        broker_client.get(reverse("leads:detail", args=[lead.uuid]))


def test_refresh_needs_post(broker_client, site):
    lead = make_lead(site)

    response = broker_client.get(reverse("leads:refresh", args=[lead.uuid]))

    assert response.status_code == 405


def test_refresh_of_a_connection_needing_reconnect_says_so(broker_client, broker):
    site = make_connection(broker, status="needs_reconnect")
    lead = make_lead(site)

    response = broker_client.post(
        reverse("leads:refresh", args=[lead.uuid]), follow=True
    )

    assert response.status_code == 200
    assert b"needs reconnecting" in response.content
    assert b"was not refreshed" in response.content


# Refresh from CINC (against the sandbox) -------------------------------------------


@pytest.fixture
def sandbox_lead(connection, sandbox):
    from leads import sync

    record = sandbox.control.leads()[0]
    sync.upsert_leads(connection=connection, records=[record])
    return Lead.objects.get(connection=connection, cinc_id=record["id"])


def test_refresh_brings_the_lead_up_to_date(broker_client, sandbox, sandbox_lead):
    sandbox.control.update_lead("demo", sandbox_lead.cinc_id, info={"status": "closed"})

    response = broker_client.post(
        reverse("leads:refresh", args=[sandbox_lead.uuid]), follow=True
    )

    sandbox_lead.refresh_from_db()
    assert sandbox_lead.status == "closed"
    assert b"Refreshed from CINC." in response.content
    assert b"closed" in response.content


def test_refresh_of_a_lead_gone_upstream_marks_it_removed(
    broker_client, sandbox, sandbox_lead
):
    sandbox.control.delete_lead("demo", sandbox_lead.cinc_id)

    response = broker_client.post(
        reverse("leads:refresh", args=[sandbox_lead.uuid]), follow=True
    )

    assert b"CINC no longer has this lead." in response.content
    assert b'id="removed-marker"' in response.content


def test_refresh_when_cinc_fails_shows_the_fault(
    broker_client, sandbox, sandbox_lead, settings
):
    sandbox.control.config(fail_rate=1.0)

    response = broker_client.post(
        reverse("leads:refresh", args=[sandbox_lead.uuid]), follow=True
    )

    assert response.status_code == 200
    assert b"CINC could not be asked for this lead" in response.content


def test_blank_dates_are_no_filter(broker_client, site):
    make_leads(site, 2)

    response = broker_client.get(LIST, {"registered_from": "  ", "registered_to": ""})
    export = broker_client.get(EXPORT, {"registered_from": " "})

    assert response.context["problems"] == []
    assert len(listed(response)) == 2
    assert export.status_code == 200
