"""The agents list (status filter, lead counts) and the agent page."""

import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.leads.factories import (  # noqa: F401 (fast_passwords is a fixture)
    fast_passwords,
    make_agent,
    make_connection,
    make_lead,
    make_leads,
)

pytestmark = pytest.mark.django_db

AGENTS = reverse("leads:agent-list")


@pytest.fixture
def site(broker):
    return make_connection(broker)


def rows(response):
    return {agent.email: agent for agent in response.context["page"].object_list}


def test_agents_list_counts_leads_per_role(broker_client, site):
    busy = make_agent(site, email="busy@x.com")
    idle = make_agent(site, email="idle@x.com")
    make_leads(site, 3, primary_agent=busy, listing_agent=busy)
    make_leads(site, 2, partner=busy)
    make_lead(site, primary_agent=busy, removed_at=timezone.now())

    response = broker_client.get(AGENTS)

    listed = rows(response)
    assert (listed["busy@x.com"].primary_count, listed["busy@x.com"].listing_count) == (
        3,
        3,
    )
    assert listed["busy@x.com"].partner_count == 2
    assert listed["idle@x.com"].primary_count == 0
    assert f"?agent={busy.uuid}" in response.content.decode()
    assert str(idle.uuid) in response.content.decode()


def test_agents_list_filters_by_status(broker_client, site):
    make_agent(site, email="on@x.com", status="active")
    make_agent(site, email="away@x.com", status="onvacation")

    response = broker_client.get(AGENTS, {"status": "onvacation"})

    assert list(rows(response)) == ["away@x.com"]


def test_agents_list_hides_removed_agents_unless_asked(broker_client, site):
    make_agent(site, email="here@x.com")
    make_agent(site, email="gone@x.com", removed_at=timezone.now())

    assert list(rows(broker_client.get(AGENTS))) == ["here@x.com"]
    assert sorted(rows(broker_client.get(AGENTS, {"removed": "on"}))) == [
        "gone@x.com",
        "here@x.com",
    ]


def test_agents_sorted_by_lead_count(broker_client, site):
    few = make_agent(site, email="few@x.com")
    many = make_agent(site, email="many@x.com")
    make_leads(site, 1, primary_agent=few)
    make_leads(site, 4, primary_agent=many)

    response = broker_client.get(AGENTS, {"sort": "-leads"})

    assert list(rows(response)) == ["many@x.com", "few@x.com"]


@pytest.mark.parametrize(
    "params",
    [{"status": "x" * 300}, {"sort": "hack"}, {"page": "zz"}, {"q": "q" * 200}],
)
def test_agents_list_bad_parameters_show_a_message(broker_client, site, params):
    make_agent(site)

    response = broker_client.get(AGENTS, params)

    assert response.status_code == 200
    assert b'id="filter-problems"' in response.content


def test_agents_list_empty_state(broker_client, site):
    response = broker_client.get(AGENTS)

    assert b'id="no-agents"' in response.content


def test_agents_list_queries_do_not_grow_with_rows(broker_client, site):
    for _ in range(3):
        make_leads(site, 2, primary_agent=make_agent(site))
    with CaptureQueriesContext(db_connection) as few:
        broker_client.get(AGENTS)
    for _ in range(30):
        make_leads(site, 2, primary_agent=make_agent(site))

    with CaptureQueriesContext(db_connection) as many:
        response = broker_client.get(AGENTS)

    assert len(rows(response)) == 33
    assert len(many) == len(few)


def test_agent_page_lists_leads_by_role(broker_client, site):
    agent = make_agent(site, first_name="Rebecca", last_name="Lejeune")
    make_lead(site, email="p@x.com", primary_agent=agent)
    make_lead(site, email="l@x.com", listing_agent=agent)
    make_lead(site, email="t@x.com", partner=agent)

    response = broker_client.get(reverse("leads:agent-detail", args=[agent.uuid]))

    content = response.content.decode()
    assert "Rebecca Lejeune" in content
    for role, email in (
        ("primary", "p@x.com"),
        ("listing", "l@x.com"),
        ("partner", "t@x.com"),
    ):
        section = content[content.index(f'id="leads-{role}"') :]
        section = section[: section.index("</section>")]
        assert email in section, role
    assert f"?agent={agent.uuid}" in content


def test_agent_page_queries_do_not_grow_with_leads(broker_client, site):
    agent = make_agent(site)
    make_leads(site, 2, primary_agent=agent, listing_agent=agent)
    url = reverse("leads:agent-detail", args=[agent.uuid])
    with CaptureQueriesContext(db_connection) as few:
        broker_client.get(url)
    make_leads(site, 40, primary_agent=agent, partner=agent)

    with CaptureQueriesContext(db_connection) as many:
        broker_client.get(url)

    assert len(many) == len(few)


def test_agent_page_rows_link_to_the_leads(broker_client, site):
    agent = make_agent(site)
    lead = make_lead(site, listing_agent=agent)

    response = broker_client.get(reverse("leads:agent-detail", args=[agent.uuid]))

    content = response.content.decode()
    section = content[content.index('id="leads-listing"') :]
    assert f'href="{reverse("leads:detail", args=[lead.uuid])}"' in section
