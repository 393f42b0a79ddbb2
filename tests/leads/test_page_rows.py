"""The rows of the lead tables (``views._table_rows``): plain values worked
out once per row, escaped by the template."""

import pytest
from django.urls import reverse
from django.utils import timezone

from leads import selectors
from leads.views import _table_rows
from tests.leads.factories import make_agent, make_connection, make_lead

pytestmark = pytest.mark.django_db

LIST = reverse("leads:list")


@pytest.fixture
def site(broker):
    return make_connection(broker, cinc_agent_name="", cinc_username="main@x.com")


def rows_of(broker):
    leads = selectors.lead_base(broker=broker).order_by("pk")
    return _table_rows(selectors.lead_table_values(leads))


def test_row_names_fall_back_to_email_then_cinc_id(broker, site):
    make_lead(site, first_name="Ann", last_name="", email="ann@x.com")
    make_lead(site, first_name="", last_name="", email="bob@x.com")
    make_lead(site, first_name="", last_name="", email="", cinc_id="LEAD_9")

    rows = rows_of(broker)

    assert [row.name for row in rows] == ["Ann", "bob@x.com", "LEAD_9"]


def test_row_phone_is_the_first_number_given_formatted(broker, site):
    make_lead(site, cell_phone="", home_phone="", work_phone="6105550100")
    make_lead(site, cell_phone="", home_phone="", work_phone="", office_phone="")

    rows = rows_of(broker)

    assert [row.phone for row in rows] == ["(610) 555-0100", ""]


def test_row_place_agent_site_and_removal(broker, site):
    agent = make_agent(site, first_name="", last_name="", email="", cinc_id="AG_7")
    make_lead(site, city="Media", state="PA", primary_agent=agent)
    make_lead(site, city="", state="PA", removed_at=timezone.now())

    first, second = rows_of(broker)

    assert (first.place, second.place) == ("Media, PA", "PA")
    assert first.agent_name == "AG_7"
    assert first.agent_url == reverse("leads:agent-detail", args=[agent.uuid])
    assert (second.agent_name, second.agent_url) == ("", "")
    assert first.site == "main@x.com"
    assert (first.removed, second.removed) == (False, True)


def test_rows_are_escaped_in_the_table(broker_client, broker, site):
    make_connection(broker)  # two sites: the table has a site column
    site.cinc_agent_name = "<i>Site</i>"
    site.save()
    agent = make_agent(site, first_name="<b>Agent</b>")
    make_lead(
        site,
        first_name="<script>x</script>",
        status="hot <lead>",
        source='"Ads"',
        city="<u>City</u>",
        primary_agent=agent,
    )

    content = broker_client.get(LIST).content.decode()

    assert "<script>x" not in content
    assert "&lt;script&gt;x&lt;/script&gt;" in content
    assert 'class="badge badge-lead-hot-lead">hot &lt;lead&gt;</span>' in content
    assert "&quot;Ads&quot;" in content
    assert "&lt;u&gt;City&lt;/u&gt;" in content
    assert "&lt;b&gt;Agent&lt;/b&gt;" in content
    assert '<td class="hide-md">&lt;i&gt;Site&lt;/i&gt;</td>' in content
