"""Creating leads through the portal, against the sandbox over HTTP.

Covers the new-lead page and ``leads.creation``: created (201), updated
(200), refused (409), invalid fields, the confirmation step with its diff,
a POST that times out after the sandbox stored the lead, the audit log, and
the form's own checks before anything is sent.
"""

import re

import pytest
from django.urls import reverse

from leads import creation, sync
from leads.forms import LeadForm, field_for_path
from leads.models import Lead, LeadWrite
from tests.conftest import connect_site
from tests.leads.factories import (  # noqa: F401 (fast_passwords is a fixture)
    fast_passwords,
    make_agent,
    make_connection,
    make_lead,
)

pytestmark = pytest.mark.django_db

CREATE = reverse("leads:create")


@pytest.fixture
def mirrored(connection, sandbox):
    """The connection with the sandbox's agents and leads in the mirror."""
    sync.upsert_agents(connection=connection, records=sandbox.control.agents())
    sync.upsert_leads(connection=connection, records=sandbox.control.leads())
    return connection


def form_data(connection, **fields):
    data = {
        "connection": str(connection.uuid),
        "first_name": "Janis",
        "last_name": "A. Doe",
        "email": "janis.new@example.com",
        "cell_phone": "(912) 756-2309",
        "street": "9390 Ford Ave",
        "city": "Richmond Hill",
        "state": "GA",
        "zip": "31324",
        "is_buyer": "on",
        "median_price": "0",
        "average_price": "$250,000",
        "favorite_city": "Dallas",
        "buyer_timeline": "4 to 6 weeks",
        "source": "Open house",
        "status": "unworked",
    }
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


def sandbox_leads_with(sandbox, email):
    return [
        lead
        for lead in sandbox.control.leads()
        if lead["info"]["contact"].get("email", "").lower() == email.lower()
    ]


def confirm_token(response):
    return re.search(
        r'name="confirm_token" value="([^"]+)"', response.content.decode()
    ).group(1)


def lead_create_posts(sandbox):
    return sandbox.control.stats()["requests"].get("lead_create", 0)


# Created ---------------------------------------------------------------------


def test_new_lead_is_created_mirrored_and_shown(
    broker_client, broker, mirrored, sandbox
):
    agent = mirrored.agents.order_by("cinc_id").first()

    response = broker_client.post(
        CREATE, form_data(mirrored, primary_agent=str(agent.uuid))
    )

    lead = Lead.objects.get(connection=mirrored, email="janis.new@example.com")
    assert response.status_code == 302
    assert response["Location"] == reverse("leads:detail", args=[lead.uuid])
    assert lead.cell_phone == "9127562309"
    assert lead.buyer_average_price == 250000
    assert lead.primary_agent == agent
    (stored,) = sandbox_leads_with(sandbox, "janis.new@example.com")
    assert stored["id"] == lead.cinc_id
    assert stored["info"]["contact"]["mailing_address"]["postal_or_zip"] == "31324"
    assert stored["info"]["assigned_agents"]["primary_agent"]["id"] == agent.cinc_id
    write = LeadWrite.objects.get()
    assert (write.outcome, write.status_code) == (LeadWrite.Outcome.CREATED, 201)
    assert write.broker == broker
    assert write.lead == lead
    assert write.payload["info"]["contact"]["email"] == "janis.new@example.com"
    page = broker_client.get(response["Location"])
    assert b"Lead created in CINC." in page.content


def test_form_offers_the_connections_agents_and_every_field(broker_client, mirrored):
    response = broker_client.get(CREATE)

    content = response.content.decode()
    for name in (
        "first_name",
        "last_name",
        "email",
        "cell_phone",
        "home_phone",
        "work_phone",
        "office_phone",
        "street",
        "city",
        "state",
        "zip",
        "is_buyer",
        "median_price",
        "average_price",
        "favorite_city",
        "buyer_timeline",
        "is_seller",
        "seller_timeline",
        "primary_agent",
        "listing_agent",
        "partner",
        "source",
        "status",
    ):
        assert f'name="{name}"' in content, name
        assert f'for="id_{name}"' in content, name
    agent = mirrored.agents.first()
    assert str(agent.uuid) in content


# Checked before sending ----------------------------------------------------------


@pytest.mark.parametrize(
    "fields, field, text",
    [
        ({"email": ""}, "email", "CINC needs an email"),
        ({"email": "not-an-email"}, "email", "valid email"),
        ({"average_price": "-5"}, "average_price", "cannot be negative"),
        ({"median_price": "lots"}, "median_price", "amount in dollars"),
        ({"median_price": "NaN"}, "median_price", "amount in dollars"),
        ({"cell_phone": "call me"}, "cell_phone", "digits"),
        ({"home_phone": "12"}, "home_phone", "between 3 and 20"),
        ({"is_buyer": None}, "is_buyer", "tick Buyer"),
        ({"seller_timeline": "soon"}, "is_seller", "tick Seller"),
        ({"first_name": "x" * 151}, "first_name", "at most 150"),
        ({"status": "bogus"}, "status", "valid choice"),
        ({"primary_agent": "not-a-uuid"}, "primary_agent", "not a valid"),
    ],
)
def test_bad_input_is_refused_before_anything_is_sent(
    broker_client, mirrored, sandbox, fields, field, text
):
    data = form_data(mirrored, **fields)

    response = broker_client.post(CREATE, data)

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert text in " ".join(errors[field]), errors
    assert f'id="id_{field}_error"' in response.content.decode()
    assert b'id="form-errors"' in response.content
    assert b'value="Richmond Hill"' in response.content  # input kept
    assert lead_create_posts(sandbox) == 0
    assert not LeadWrite.objects.exists()


@pytest.mark.parametrize("site", ["garbage", ""])
def test_a_post_that_does_not_name_its_site_is_not_sent_to_another(
    broker_client, broker, mirrored, sandbox, site
):
    # The broker has a second site that could take the lead too.
    make_connection(broker)
    data = form_data(mirrored)
    data["connection"] = site

    response = broker_client.post(CREATE, data)

    assert response.status_code == 200
    assert "did not say which CINC site" in response.content.decode()
    assert b'value="Richmond Hill"' in response.content  # input kept
    assert lead_create_posts(sandbox) == 0
    assert not LeadWrite.objects.exists()
    # Sent again as the form now shows it, the lead is created.
    data["connection"] = str(response.context["connection"].uuid)
    assert broker_client.post(CREATE, data).status_code == 302
    assert lead_create_posts(sandbox) == 1


def test_agent_of_another_connection_is_not_a_choice(broker_client, broker, mirrored):
    other_site = make_connection(broker)
    stranger = make_agent(other_site)

    response = broker_client.post(
        CREATE, form_data(mirrored, primary_agent=str(stranger.uuid))
    )

    assert "primary_agent" in response.context["form"].errors


# Already in the mirror: confirmation with a diff -------------------------------------


@pytest.fixture
def known_lead(mirrored):
    return (
        Lead.objects.filter(connection=mirrored, is_buyer=False).order_by("pk").first()
    )


def test_existing_email_asks_for_confirmation_and_shows_the_diff(
    broker_client, mirrored, sandbox, known_lead
):
    data = form_data(mirrored, email=known_lead.email.upper(), first_name="Changed")

    response = broker_client.post(CREATE, data)

    content = response.content.decode()
    assert response.status_code == 200
    assert 'id="lead-exists"' in content
    assert reverse("leads:detail", args=[known_lead.uuid]) in content
    assert 'id="existing-lead-link"' in content
    changes = {change.label: change for change in response.context["result"].changes}
    assert changes["First name"].current == known_lead.first_name
    assert changes["First name"].new == "Changed"
    assert changes["Average price"].new == "$250,000"
    assert 'id="lead-diff"' in content
    assert 'id="confirm-update"' in content
    assert lead_create_posts(sandbox) == 0
    assert not LeadWrite.objects.exists()


def test_diff_shows_values_the_update_would_clear(broker_client, mirrored):
    lead = Lead.objects.filter(connection=mirrored).exclude(cell_phone="").first()
    data = form_data(
        mirrored,
        email=lead.email,
        first_name=lead.first_name,
        last_name=lead.last_name,
        cell_phone="",
    )

    response = broker_client.post(CREATE, data)

    changes = {change.label: change for change in response.context["result"].changes}
    assert (changes["Cell phone"].current, changes["Cell phone"].new) == (
        lead.cell_phone,
        "",
    )
    assert "First name" not in changes
    assert b'<span class="cleared">cleared</span>' in response.content


def test_confirmed_update_is_sent_when_the_site_upserts(
    broker_client, mirrored, sandbox, known_lead
):
    sandbox.control.config(upsert=True)
    before = len(sandbox.control.leads())
    data = form_data(mirrored, email=known_lead.email, first_name="Updated")
    asked = broker_client.post(CREATE, data)

    response = broker_client.post(
        CREATE, {**data, "confirm": "1", "confirm_token": confirm_token(asked)}
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("leads:detail", args=[known_lead.uuid])
    known_lead.refresh_from_db()
    assert known_lead.first_name == "Updated"
    assert len(sandbox.control.leads()) == before
    write = LeadWrite.objects.get()
    assert (write.outcome, write.status_code, write.lead) == (
        LeadWrite.Outcome.UPDATED,
        200,
        known_lead,
    )


def test_confirmation_of_other_details_than_shown_asks_again(
    broker_client, mirrored, sandbox, known_lead
):
    data = form_data(mirrored, email=known_lead.email, first_name="Shown")
    asked = broker_client.post(CREATE, data)

    response = broker_client.post(
        CREATE,
        {
            **data,
            "first_name": "Swapped",
            "confirm": "1",
            "confirm_token": confirm_token(asked),
        },
    )

    assert response.status_code == 200
    assert b'id="lead-exists"' in response.content
    assert b"details changed" in response.content
    assert lead_create_posts(sandbox) == 0


def test_confirmation_with_a_forged_token_sends_nothing(
    broker_client, mirrored, sandbox, known_lead
):
    data = form_data(mirrored, email=known_lead.email)

    response = broker_client.post(
        CREATE, {**data, "confirm": "1", "confirm_token": "forged"}
    )

    assert b'id="lead-exists"' in response.content
    assert lead_create_posts(sandbox) == 0


def test_confirmed_update_refused_by_the_site_says_so(
    broker_client, mirrored, sandbox, known_lead
):
    data = form_data(mirrored, email=known_lead.email, first_name="Nope")
    asked = broker_client.post(CREATE, data)

    response = broker_client.post(
        CREATE,
        {**data, "confirm": "1", "confirm_token": confirm_token(asked)},
        follow=True,
    )

    assert b"CINC refused to change the existing lead" in response.content
    write = LeadWrite.objects.get()
    assert (write.outcome, write.status_code) == (LeadWrite.Outcome.DUPLICATE, 409)
    known_lead.refresh_from_db()
    assert known_lead.first_name != "Nope"


def test_edit_button_brings_the_form_back_with_the_input(
    broker_client, mirrored, known_lead
):
    data = form_data(mirrored, email=known_lead.email, first_name="Keep me")

    response = broker_client.post(CREATE, {**data, "edit": "1"})

    assert b'id="lead-form"' in response.content
    assert b'value="Keep me"' in response.content


def test_blanks_can_be_filled_from_the_existing_lead(broker_client, mirrored):
    lead = Lead.objects.filter(connection=mirrored).exclude(last_name="").first()
    data = {
        "connection": str(mirrored.uuid),
        "email": lead.email,
        "first_name": "Renamed",
    }
    asked = broker_client.post(CREATE, data)
    assert b'id="fill-from-existing"' in asked.content

    filled = broker_client.post(
        CREATE, {**data, "fill": "1", "existing_lead": str(lead.uuid)}
    )
    resent = filled.context["form"].data.dict()
    del resent["fill"]
    again = broker_client.post(CREATE, resent)

    assert b'id="lead-form"' in filled.content
    assert f'value="{lead.last_name}"'.encode() in filled.content
    assert b'value="Renamed"' in filled.content
    labels = [change.label for change in again.context["result"].changes]
    assert labels == ["First name"]


def test_fill_from_another_brokers_lead_takes_nothing(
    broker_client, make_broker, mirrored
):
    stranger = make_lead(make_connection(make_broker()), last_name="Stranger")
    data = {"connection": str(mirrored.uuid), "email": "x@example.com"}

    response = broker_client.post(
        CREATE, {**data, "fill": "1", "existing_lead": str(stranger.uuid)}
    )

    assert b"Stranger" not in response.content
    assert b"could not be found" in response.content


# Not in the mirror, but in CINC -------------------------------------------------------


def add_unmirrored_lead(sandbox, email):
    return sandbox.control.add_lead(
        "demo",
        {
            "info": {
                "contact": {"email": email, "first_name": "Hidden"},
                "status": "closed",
            }
        },
    )


def test_409_links_to_the_existing_lead_fetched_into_the_mirror(
    broker_client, mirrored, sandbox
):
    existing_id = add_unmirrored_lead(sandbox, "hidden@example.com")

    response = broker_client.post(
        CREATE, form_data(mirrored, email="hidden@example.com")
    )

    content = response.content.decode()
    lead = Lead.objects.get(connection=mirrored, cinc_id=existing_id)
    assert response.status_code == 200
    assert 'id="lead-exists"' in content
    assert reverse("leads:detail", args=[lead.uuid]) in content
    assert 'id="confirm-update"' not in content  # the site refuses updates
    assert response.context["result"].changes  # how the form differs
    write = LeadWrite.objects.get()
    assert (write.outcome, write.status_code, write.lead) == (
        LeadWrite.Outcome.DUPLICATE,
        409,
        lead,
    )
    assert write.response["existing_id"] == existing_id
    assert len(sandbox_leads_with(sandbox, "hidden@example.com")) == 1


def test_200_from_an_upserting_site_is_shown_as_an_update(
    broker_client, mirrored, sandbox
):
    sandbox.control.config(upsert=True)
    existing_id = add_unmirrored_lead(sandbox, "hidden@example.com")

    response = broker_client.post(
        CREATE, form_data(mirrored, email="hidden@example.com"), follow=True
    )

    lead = Lead.objects.get(connection=mirrored, cinc_id=existing_id)
    assert response.redirect_chain[-1][0] == reverse("leads:detail", args=[lead.uuid])
    assert b"already existed in CINC" in response.content
    assert lead.first_name == "Janis"
    write = LeadWrite.objects.get()
    assert (write.outcome, write.status_code) == (LeadWrite.Outcome.UPDATED, 200)


# Refused fields ------------------------------------------------------------------------


def test_fields_cinc_refuses_are_shown_next_to_them(broker_client, mirrored, sandbox):
    gone = make_agent(mirrored, cinc_id="AGENT_GONE")  # mirrored, not in CINC

    response = broker_client.post(CREATE, form_data(mirrored, partner=str(gone.uuid)))

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "no such agent" in " ".join(errors["partner"])
    assert b'id="id_partner_error"' in response.content
    write = LeadWrite.objects.get()
    assert (write.outcome, write.status_code) == (LeadWrite.Outcome.INVALID, 400)
    assert write.response["errors"]


@pytest.mark.parametrize(
    "path, field",
    [
        ("info.contact.email", "email"),
        ("info.lead.contact.email", "email"),
        ("info.contact.phone_numbers.work_phone", "work_phone"),
        ("info.contact.mailing_address.postal_code", "zip"),
        ("info.contact.mailing_address.postal_or_zip", "zip"),
        ("info.buyer.average_price", "average_price"),
        ("info.buyer_info.timeline", "buyer_timeline"),
        ("info.seller.timeline", "seller_timeline"),
        ("info.assigned_agents.listing_agent.id", "listing_agent"),
        ("info.status", "status"),
        ("city", "city"),
        ("info.something_new", None),
        ("", None),
    ],
)
def test_upstream_field_paths_map_to_form_fields(path, field):
    assert field_for_path(path) == field


def test_unknown_upstream_paths_go_to_the_top_of_the_form(broker):
    site = make_connection(broker)
    form = LeadForm({"email": "a@b.co"}, connection=site)
    assert form.is_valid()

    form.apply_upstream_errors(
        [("info.mystery", "too odd"), ("info.contact.email", "taken")]
    )

    assert "too odd" in " ".join(form.non_field_errors())
    assert "taken" in " ".join(form.errors["email"])


# No answer: the POST timed out after the sandbox stored the lead ----------------------------


@pytest.fixture
def stalling(sandbox, settings):
    settings.CINC_TIMEOUT = 0.5
    sandbox.control.config(post_stall_seconds=1.5)
    return sandbox


def test_timeout_after_store_is_recorded_as_unknown(broker_client, mirrored, stalling):
    response = broker_client.post(CREATE, form_data(mirrored))

    assert response.status_code == 200
    assert b"may or may not have been created" in response.content
    write = LeadWrite.objects.get()
    assert (write.outcome, write.status_code, write.lead) == (
        LeadWrite.Outcome.UNKNOWN,
        None,
        None,
    )
    assert len(sandbox_leads_with(stalling, "janis.new@example.com")) == 1


def test_retry_after_a_timeout_makes_no_second_lead(broker_client, mirrored, stalling):
    broker_client.post(CREATE, form_data(mirrored))

    response = broker_client.post(CREATE, form_data(mirrored))

    (stored,) = sandbox_leads_with(stalling, "janis.new@example.com")
    lead = Lead.objects.get(connection=mirrored, cinc_id=stored["id"])
    assert b"earlier unanswered attempt did create this lead" in response.content
    assert reverse("leads:detail", args=[lead.uuid]).encode() in response.content
    first, second = LeadWrite.objects.order_by("created_at", "pk")
    assert first.outcome == LeadWrite.Outcome.UNKNOWN
    assert first.lead == lead  # resolved by the retry
    assert (second.outcome, second.status_code) == (LeadWrite.Outcome.DUPLICATE, 409)


def test_retry_on_an_upserting_site_confirms_the_same_lead(
    broker_client, mirrored, stalling
):
    stalling.control.config(upsert=True)
    broker_client.post(CREATE, form_data(mirrored))
    broker_client.post(CREATE, form_data(mirrored))  # stalls again: still unknown
    stalling.control.config(post_stall_seconds=0)

    response = broker_client.post(CREATE, form_data(mirrored), follow=True)

    (stored,) = sandbox_leads_with(stalling, "janis.new@example.com")
    lead = Lead.objects.get(connection=mirrored, cinc_id=stored["id"])
    assert response.redirect_chain[-1][0] == reverse("leads:detail", args=[lead.uuid])
    assert b"earlier unanswered attempt had created this lead" in response.content
    outcomes = list(LeadWrite.objects.order_by("pk").values_list("outcome", flat=True))
    assert outcomes == ["unknown", "unknown", "updated"]


def test_retry_with_other_details_after_a_timeout_asks_first(
    broker_client, mirrored, stalling
):
    broker_client.post(CREATE, form_data(mirrored))
    posts = lead_create_posts(stalling)

    response = broker_client.post(CREATE, form_data(mirrored, first_name="Different"))

    assert b'id="lead-exists"' in response.content
    assert b'id="earlier-write"' in response.content
    assert lead_create_posts(stalling) == posts
    assert any(
        change.new == "Different" for change in response.context["result"].changes
    )


def test_unanswered_write_found_by_a_later_sync_is_handled_as_known(
    broker_client, mirrored, stalling
):
    broker_client.post(CREATE, form_data(mirrored))
    sync.upsert_leads(connection=mirrored, records=stalling.control.leads())

    response = broker_client.post(CREATE, form_data(mirrored))

    assert b'id="lead-exists"' in response.content
    assert b'id="existing-lead-link"' in response.content


def test_rate_limit_longer_than_a_page_can_wait_sends_nothing(
    broker_client, mirrored, sandbox
):
    sandbox.control.config(limit=1, window=120)
    broker_client.post(CREATE, form_data(mirrored, email="first@example.com"))

    response = broker_client.post(
        CREATE, form_data(mirrored, email="second@example.com")
    )

    assert b"CINC is busy (rate limit), so nothing was sent" in response.content
    assert b'value="second@example.com"' in response.content  # input kept
    assert sandbox_leads_with(sandbox, "second@example.com") == []
    write = LeadWrite.objects.get(email="second@example.com")
    assert write.outcome == LeadWrite.Outcome.FAILED


# Unavailable ---------------------------------------------------------------------------


def test_without_create_scope_the_form_explains_why(
    broker_client, broker, sandbox, queued_syncs
):
    connect_site(broker_client, sandbox, scopes="api:read")
    site = broker.cinc_connections.get()
    assert site.scopes == ["api:read"]

    page = broker_client.get(CREATE)
    post = broker_client.post(CREATE, form_data(site))

    for response in (page, post):
        assert b'id="create-unavailable"' in response.content
        assert b"api:create" in response.content
        assert b'id="lead-form"' not in response.content
        assert (
            reverse("accounts:cinc-reconnect", args=[site.uuid]).encode()
            in response.content
        )
    assert not LeadWrite.objects.exists()


def test_without_any_connection_the_form_says_to_connect(broker_client):
    response = broker_client.get(CREATE)

    assert b'id="create-unavailable"' in response.content
    assert b"Connect your CINC site first" in response.content


def test_service_refuses_a_connection_needing_reconnect(broker):
    site = make_connection(broker, status="needs_reconnect")

    result = creation.lead_create(
        connection=site, broker=broker, data={"email": "a@b.co"}
    )

    assert result.outcome == creation.Outcome.UNAVAILABLE
    assert "Reconnect" in result.message
    assert not LeadWrite.objects.exists()


def test_form_picks_the_connection_that_may_create(broker_client, broker):
    make_connection(broker, scopes=["api:read"], cinc_agent_name="Read only")
    able = make_connection(broker, cinc_agent_name="Full access")

    response = broker_client.get(CREATE)

    assert response.context["connection"] == able
    assert b'id="connection-switch"' in response.content
