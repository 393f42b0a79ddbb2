"""Query parameters and the new-lead form fuzzed: never a 500."""

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.leads.factories import (  # noqa: F401 (fast_passwords is a fixture)
    fast_passwords,
    make_agent,
    make_connection,
    make_lead,
)

pytestmark = pytest.mark.django_db

LEAD_PARAMS = [
    "q",
    "status",
    "source",
    "buyer",
    "seller",
    "agent",
    "city",
    "state",
    "registered_from",
    "registered_to",
    "connection",
    "removed",
    "sort",
    "page",
]
FORM_FIELDS = [
    "connection",
    "email",
    "first_name",
    "cell_phone",
    "median_price",
    "average_price",
    "is_buyer",
    "is_seller",
    "seller_timeline",
    "primary_agent",
    "status",
    "zip",
    "existing_lead",
]
text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "-1", "0", "1e9", "9" * 40, "2024-02-30", "-name", "on"]),
    st.text(alphabet="0123456789-", min_size=1, max_size=12),
)
FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def site(broker):
    site = make_connection(broker)
    make_lead(site, primary_agent=make_agent(site))
    return site


@FUZZ
@given(params=st.dictionaries(st.sampled_from(LEAD_PARAMS), text, max_size=6))
def test_lead_list_and_export_never_fail(broker_client, site, params):
    listing = broker_client.get(reverse("leads:list"), params)
    export = broker_client.get(reverse("leads:export"), params)

    assert listing.status_code in (200, 404)
    assert export.status_code in (200, 302, 404)  # 302: back to the list
    if export.status_code == 200:
        b"".join(export.streaming_content)


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["q", "status", "sort", "page", "removed"]), text, max_size=4
    )
)
def test_agent_list_never_fails(broker_client, site, params):
    assert broker_client.get(reverse("leads:agent-list"), params).status_code == 200


@FUZZ
@given(data=st.dictionaries(st.sampled_from(FORM_FIELDS), text, max_size=8))
def test_new_lead_form_never_fails_before_sending(
    broker_client, site, data, monkeypatch
):
    # Without an email the form cannot be valid, so nothing may be sent.
    from leads import creation

    def refuse(**kwargs):
        raise AssertionError("nothing may be sent without a valid, complete form")

    monkeypatch.setattr(creation, "lead_create", refuse)
    data = {key: value for key, value in data.items() if key != "email"}

    response = broker_client.post(reverse("leads:create"), data)

    assert response.status_code in (200, 404)
