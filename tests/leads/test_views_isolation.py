"""Another broker's rows: every page, export and form answers 404; lists
never mix two brokers' data; every page needs a signed-in broker."""

import pytest
from django.urls import reverse

from leads.models import LeadWrite, SyncRun
from tests.leads.factories import (  # noqa: F401 (fast_passwords is a fixture)
    fast_passwords,
    make_agent,
    make_connection,
    make_lead,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def mine(broker):
    site = make_connection(broker)
    agent = make_agent(site, email="my-agent@x.com")
    lead = make_lead(site, email="my-lead@x.com", primary_agent=agent)
    return site, agent, lead


@pytest.fixture
def theirs(make_broker):
    site = make_connection(make_broker())
    agent = make_agent(site, email="their-agent@x.com")
    lead = make_lead(site, email="their-lead@x.com", primary_agent=agent)
    return site, agent, lead


def test_pages_of_another_brokers_rows_are_404(broker_client, mine, theirs):
    site, agent, lead = theirs
    gets = [
        reverse("leads:detail", args=[lead.uuid]),
        reverse("leads:agent-detail", args=[agent.uuid]),
        reverse("leads:sync-progress", args=[site.uuid]),
        reverse("leads:list") + f"?agent={agent.uuid}",
        reverse("leads:list") + f"?connection={site.uuid}",
        reverse("leads:export") + f"?connection={site.uuid}",
        reverse("leads:export") + f"?agent={agent.uuid}",
        reverse("leads:agent-list") + f"?connection={site.uuid}",
        reverse("leads:create") + f"?connection={site.uuid}",
    ]
    posts = [
        reverse("leads:refresh", args=[lead.uuid]),
        reverse("leads:sync-start", args=[site.uuid]),
    ]

    for url in gets:
        assert broker_client.get(url).status_code == 404, url
    for url in posts:
        assert broker_client.post(url).status_code == 404, url
    assert not SyncRun.objects.filter(connection=site).exists()


def test_new_lead_post_for_another_brokers_site_is_404(broker_client, mine, theirs):
    site, _, _ = theirs

    response = broker_client.post(
        reverse("leads:create"), {"connection": str(site.uuid), "email": "x@y.com"}
    )

    assert response.status_code == 404
    assert not LeadWrite.objects.exists()


def test_lists_and_export_never_mix_brokers(broker_client, mine, theirs):
    pages = [
        broker_client.get(reverse("leads:list")),
        broker_client.get(reverse("leads:agent-list")),
        broker_client.get(reverse("leads:dashboard")),
        broker_client.get(reverse("leads:list"), {"q": "their"}),
    ]
    export = b"".join(broker_client.get(reverse("leads:export")).streaming_content)

    for response in pages:
        assert b"their-" not in response.content
    assert b"my-lead@x.com" in pages[0].content
    assert b"my-agent@x.com" in pages[1].content
    assert b"their-" not in export
    assert b"my-lead@x.com" in export


def test_filter_menus_list_only_the_brokers_agents(broker_client, mine, theirs):
    response = broker_client.get(reverse("leads:list"))

    assert b"my-agent@x.com" in response.content
    assert b"their-agent@x.com" not in response.content


@pytest.mark.parametrize(
    "name, args",
    [
        ("leads:dashboard", []),
        ("leads:list", []),
        ("leads:export", []),
        ("leads:create", []),
        ("leads:agent-list", []),
    ],
)
def test_pages_need_sign_in(client, name, args):
    response = client.get(reverse(name, args=args))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_row_pages_need_sign_in(client, mine):
    site, agent, lead = mine

    for url in (
        reverse("leads:detail", args=[lead.uuid]),
        reverse("leads:agent-detail", args=[agent.uuid]),
        reverse("leads:sync-progress", args=[site.uuid]),
    ):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url
