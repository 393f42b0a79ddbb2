"""The filter forms of the lists: their widgets are written in Python
(``leads.filters.Plain*``), and must write what Django's templates write."""

import pytest
from django import forms
from django.urls import reverse

from leads.filters import (
    AgentFilter,
    LeadFilter,
    PlainInput,
    PlainSelect,
    attrs_html,
)
from leads.models import Agent, Lead
from tests.leads.factories import make_agent, make_connection, make_lead

pytestmark = pytest.mark.django_db

LIST = reverse("leads:list")


@pytest.fixture
def sites(broker):
    first = make_connection(broker, cinc_agent_name='Main "<site>"')
    second = make_connection(broker, cinc_agent_name="Second & co")
    return first, second


@pytest.fixture
def agent(sites):
    return make_agent(sites[0], first_name="<Rebecca>", last_name="O'Hara")


def drawn(filter_class, data, broker):
    """Each field of the filter form as HTML, by name."""
    form = filter_class(data, queryset=Lead.objects.none(), broker=broker).form
    form.is_valid()
    return {name: str(form[name]) for name in form.fields}


def with_django_templates(monkeypatch):
    monkeypatch.setattr(PlainSelect, "render", forms.Select.render)
    monkeypatch.setattr(PlainInput, "render", forms.Widget.render)


LEAD_QUERIES = [
    {},
    {
        "status": "closed",
        "source": "Zillow",
        "buyer": "yes",
        "seller": "no",
        "city": '<b>"Paris"</b>',
        "state": "PA & NJ",
        "registered_from": "2024-01-02",
        "registered_to": "2024-02-03",
        "removed": "on",
        "sort": "-name",
    },
    {
        "status": "nope",
        "source": "<script>",
        "buyer": "maybe",
        "registered_from": "2024-13-45",
        "registered_to": "1800-01-01",
        "agent": "not-a-uuid",
        "connection": "00000000-0000-0000-0000-000000000000",
        "sort": "bogus",
        "city": "x" * 200,
    },
]


@pytest.mark.parametrize("data", LEAD_QUERIES)
def test_lead_filter_widgets_write_what_django_templates_write(
    broker, sites, agent, monkeypatch, data
):
    make_lead(sites[0], status="closed", source="Zillow", primary_agent=agent)
    make_lead(sites[1], status="odd <status>", source="Open House")

    plain = drawn(LeadFilter, data, broker)
    with_django_templates(monkeypatch)
    django = drawn(LeadFilter, data, broker)

    assert plain == django


def test_lead_filter_widgets_mark_a_chosen_agent_and_site_as_django_does(
    broker, sites, agent, monkeypatch
):
    data = {"agent": str(agent.uuid), "connection": str(sites[1].uuid)}

    plain = drawn(LeadFilter, data, broker)
    with_django_templates(monkeypatch)
    django = drawn(LeadFilter, data, broker)

    assert plain == django
    assert f'<option value="{agent.uuid}" selected>' in plain["agent"]
    assert f'<option value="{sites[1].uuid}" selected>' in plain["connection"]


@pytest.mark.parametrize(
    "data", [{}, {"q": "<a>", "status": "active", "removed": "on"}, {"status": "x"}]
)
def test_agent_filter_widgets_write_what_django_templates_write(
    broker, sites, agent, monkeypatch, data
):
    plain = drawn(AgentFilter, data, broker)
    with_django_templates(monkeypatch)
    django = drawn(AgentFilter, data, broker)

    assert plain == django


def test_plain_select_escapes_values_and_labels():
    widget = PlainSelect(choices=[("", "Any"), ('a"b', "<i>c & d</i>")])

    html = widget.render("pick", 'a"b', attrs={"id": "id_pick"})

    assert html == (
        '<select name="pick" id="id_pick">'
        '\n  <option value="">Any</option>\n'
        '\n  <option value="a&quot;b" selected>&lt;i&gt;c &amp; d&lt;/i&gt;</option>\n'
        "\n</select>"
    )


def test_plain_select_selects_only_the_first_of_equal_values():
    widget = PlainSelect(choices=[("a", "First"), ("a", "Again")])

    html = widget.render("pick", "a")

    assert html.count(" selected") == 1
    assert '<option value="a" selected>First</option>' in html


def test_attrs_html_writes_true_bare_and_leaves_false_out():
    html = attrs_html({"id": "x", "required": True, "disabled": False, "data-n": 3})

    assert html == ' id="x" required data-n="3"'


def test_list_marks_the_chosen_options(broker_client, sites, agent):
    make_lead(sites[0], status="closed", primary_agent=agent)

    content = broker_client.get(
        LIST, {"status": "closed", "agent": str(agent.uuid), "buyer": "no"}
    ).content.decode()

    assert '<option value="closed" selected>closed</option>' in content
    assert (
        f'<option value="{agent.uuid}" selected>'
        f"&lt;Rebecca&gt; O&#x27;Hara ({agent.email})</option>"
    ) in content
    assert '<option value="no" selected>No</option>' in content
    assert '<option value="" selected>Any source</option>' in content


def test_list_shows_a_bad_value_next_to_its_menu(broker_client, sites):
    content = broker_client.get(LIST, {"status": "nope"}).content.decode()

    assert (
        '<select name="status" aria-invalid="true" '
        'aria-describedby="id_status_error" id="id_status">'
    ) in content
    assert '<p class="field-error" id="id_status_error">' in content
    assert "Status: Select a valid choice." in content


def test_agent_menu_lists_only_the_brokers_agents_still_in_cinc(
    broker_client, make_broker, sites, agent
):
    gone = make_agent(sites[0], last_name="Gone")
    Agent.objects.filter(pk=gone.pk).update(removed_at=gone.registered_at)
    stranger = make_agent(make_connection(make_broker()), last_name="Stranger")

    content = broker_client.get(LIST).content.decode()

    assert f'<option value="{agent.uuid}">' in content
    assert str(gone.uuid) not in content
    assert str(stranger.uuid) not in content
