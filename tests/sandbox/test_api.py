import pytest

BROKER = "buum@cu.com"
AGENT = "agent@demo.test"
SECOND_BROKER = "broker@second.test"


def new_lead(email="new.lead@example.com", **info):
    body = {"info": {"contact": {"first_name": "New", "email": email}}}
    body["info"].update(info)
    return body


# -- authentication and authorisation ------------------------------------------


@pytest.mark.parametrize("documented_header", [False, True])
def test_both_token_headers_are_accepted(sb, api, broker_token, documented_header):
    answer = api("GET", "me", broker_token, documented_header=documented_header)

    assert answer.status_code == 200
    assert answer.json()["id"] == "AGENT_MDID0"
    assert answer.json()["username"] == BROKER
    assert answer.json()["roles"] == ["client", "broker"]


@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_missing_or_unknown_token_is_401(sb, api, token):
    answer = api("GET", "leads", token)

    assert answer.status_code == 401
    assert answer.json() == {"error": "invalid_token"}
    assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert "x-rate-limit-remaining" in answer.headers


def test_expired_token_is_401(sb, api, tokens):
    token = tokens()["access_token"]
    sb.control.expire_tokens(site="demo")

    assert api("GET", "me", token).status_code == 401


def test_short_token_ttl_makes_tokens_expire(sb, api, tokens):
    sb.control.config(token_ttl=0)

    token = tokens()["access_token"]

    assert api("GET", "me", token).status_code == 401


def test_missing_scope_is_403_insufficient_scope(sb, api, tokens):
    token = tokens(scopes=["api:read"])["access_token"]

    answer = api("POST", "leads", token, json=new_lead())

    assert answer.status_code == 403
    assert answer.json() == {
        "error": "insufficient_scope",
        "scope_required": "api:create",
    }


def test_create_only_token_cannot_read(sb, api, tokens):
    token = tokens(scopes=["api:create"])["access_token"]

    answer = api("GET", "leads", token)

    assert answer.status_code == 403
    assert answer.json()["scope_required"] == "api:read"


def test_non_broker_sees_me_but_nothing_else(sb, api):
    token = sb.control.issue_tokens(AGENT)["access_token"]

    me = api("GET", "me", token)
    leads = api("GET", "leads", token)

    assert me.json()["roles"] == ["client"]
    assert leads.status_code == 403
    assert leads.json()["error"] == "not_broker"


def test_tokens_only_see_their_own_site(sb, api, broker_token):
    second_token = sb.control.issue_tokens(SECOND_BROKER)["access_token"]
    second_lead = sb.control.leads("second")[0]["id"]
    demo_lead = sb.control.leads("demo")[0]["id"]

    assert api("GET", f"leads/{second_lead}", broker_token).status_code == 404
    assert api("GET", f"leads/{demo_lead}", second_token).status_code == 404
    second_ids = {
        lead["id"] for lead in api("GET", "leads", second_token).json()["leads"]
    }
    assert demo_lead not in second_ids


# -- reading -------------------------------------------------------------------


def test_leads_page_defaults_to_ten_in_insertion_order(sb, api, broker_token):
    expected = [lead["id"] for lead in sb.control.leads("demo")][:10]

    body = api("GET", "leads", broker_token).json()

    assert [lead["id"] for lead in body["leads"]] == expected
    assert body["paging"]["offset"] == 0
    assert body["paging"]["limit"] == 10
    assert body["paging"]["count"] == 10
    assert isinstance(body["paging"]["next"], str)
    assert body["paging"]["next"] != "10"


def test_limit_above_500_is_clamped(sb, api, broker_token):
    sb.control.add_leads("demo", count=470)

    body = api("GET", "leads", broker_token, params={"limit": 9999}).json()

    assert body["paging"]["limit"] == 500
    assert body["paging"]["count"] == 500


def test_last_page_is_short_and_pages_cover_every_lead(sb, api, broker_token):
    everyone = [lead["id"] for lead in sb.control.leads("demo")]

    seen, offset = [], 0
    for _ in range(20):
        page = api("GET", "leads", broker_token, params={"offset": offset, "limit": 15})
        body = page.json()
        seen += [lead["id"] for lead in body["leads"]]
        offset += 15
        if body["paging"]["count"] < 15:
            break

    assert seen == everyone
    assert body["paging"]["count"] == len(everyone) % 15


def test_offset_past_the_end_gives_an_empty_page(sb, api, broker_token):
    body = api("GET", "agents", broker_token, params={"offset": 1000}).json()

    assert body["agents"] == []
    assert body["paging"]["count"] == 0


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "-1"},
        {"offset": "-5"},
        {"limit": "ten"},
        {"offset": "1.5"},
        {"limit": 0},
    ],
)
def test_invalid_paging_params_are_400(sb, api, broker_token, params):
    answer = api("GET", "leads", broker_token, params=params)

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert answer.json()["message"]


def test_agents_list_and_one_agent(sb, api, broker_token):
    listing = api("GET", "agents", broker_token, params={"limit": 100}).json()

    one = api("GET", "agents/AGENT_MDID0", broker_token).json()

    assert len(listing["agents"]) == 12
    assert one["agent"]["info"]["contact"]["email"] == BROKER


def test_one_lead_and_missing_lead(sb, api, broker_token):
    found = api("GET", "leads/LEAD_MDID0", broker_token)
    missing = api("GET", "leads/LEAD_nope", broker_token)

    assert found.json()["lead"]["info"]["contact"]["first_name"] == "Devin"
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found"}


def test_deleted_lead_vanishes_from_list_and_get(sb, api, broker_token):
    sb.control.delete_lead("demo", "LEAD_MDID0")

    listing = api("GET", "leads", broker_token, params={"limit": 500}).json()

    assert "LEAD_MDID0" not in {lead["id"] for lead in listing["leads"]}
    assert api("GET", "leads/LEAD_MDID0", broker_token).status_code == 404


def test_unknown_path_and_method_answer_json(sb, api, broker_token):
    assert api("GET", "houses", broker_token).status_code == 404
    assert api("DELETE", "leads/LEAD_MDID0", broker_token).status_code == 405


def test_older_base_path_without_v2_works(sb, http, broker_token):
    answer = http.get(
        f"{sb.base_url}/site/me", headers={"Bearer": broker_token}, timeout=10
    )

    assert answer.status_code == 200


# -- creating ------------------------------------------------------------------


def test_post_creates_a_lead_normalised_like_the_list(sb, api, broker_token):
    body = new_lead(
        is_buyer=False,
        buyer={"median_price": 1},
        seller={"timeline": "ASAP"},
        assigned_agents={"primary_agent": {"id": "AGENT_MDID3"}},
    )
    body["id"] = "ignored"

    answer = api("POST", "leads", broker_token, json=body)

    assert answer.status_code == 201
    lead_id = answer.json()["lead"]["id"]
    assert lead_id != "ignored"
    stored = api("GET", f"leads/{lead_id}", broker_token).json()["lead"]
    assert stored["registered_date"].endswith("Z")
    assert stored["info"]["is_buyer"] is False
    assert "buyer" not in stored["info"]
    assert stored["info"]["is_seller"] is True
    assert sb.control.leads("demo")[-1]["id"] == lead_id


def test_post_keeps_a_given_registered_date(sb, api, broker_token):
    body = new_lead()
    body["registered_date"] = "2022-04-14T09:21:43.371Z"

    lead_id = api("POST", "leads", broker_token, json=body).json()["lead"]["id"]

    assert sb.control.lead("demo", lead_id)["registered_date"] == "2022-04-14T09:21:43Z"


def test_post_parses_any_content_type_as_json(sb, api, broker_token):
    answer = api(
        "POST",
        "leads",
        broker_token,
        data='{"info": {"contact": {"email": "form@example.com"}}}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert answer.status_code == 201


def test_duplicate_email_is_409_with_the_existing_id(sb, api, broker_token):
    first = api("POST", "leads", broker_token, json=new_lead("Dup@Example.com"))

    again = api("POST", "leads", broker_token, json=new_lead("dup@example.com"))

    assert again.status_code == 409
    assert again.json()["error"] == "duplicate_email"
    assert again.json()["lead"]["id"] == first.json()["lead"]["id"]


def test_upsert_updates_an_existing_lead_or_creates_one(sb, api, broker_token):
    sb.control.config(upsert=True)

    updated = api(
        "POST", "leads", broker_token, json=new_lead("mo@rijegmo.fk", status="hot")
    )
    created = api("POST", "leads", broker_token, json=new_lead("fresh@example.com"))

    assert updated.status_code == 200
    assert updated.json() == {"lead": {"id": "LEAD_MDID0"}}
    lead = sb.control.lead("demo", "LEAD_MDID0")
    assert lead["info"]["status"] == "hot"
    assert lead["registered_date"] == "2022-11-06T21:41:00Z"
    assert "buyer" not in lead["info"]  # fields left out are reset
    assert created.status_code == 201


def test_email_is_required_and_must_look_like_one(sb, api, broker_token):
    missing = api("POST", "leads", broker_token, json={"info": {"contact": {}}})
    garbled = api("POST", "leads", broker_token, json=new_lead("not-an-email"))

    for answer in (missing, garbled):
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_fields"
        assert answer.json()["errors"][0]["field"] == "info.contact.email"


def test_invalid_fields_name_their_paths(sb, api, broker_token):
    body = new_lead(
        buyer={"median_price": -5, "average_price": "lots"},
        assigned_agents={"primary_agent": {"id": "AGENT_GHOST"}},
    )
    body["info"]["contact"]["phone_numbers"] = {"cell_phone": "555-1234"}

    answer = api("POST", "leads", broker_token, json=body)

    fields = {error["field"] for error in answer.json()["errors"]}
    assert fields == {
        "info.buyer.median_price",
        "info.buyer.average_price",
        "info.assigned_agents.primary_agent.id",
        "info.contact.phone_numbers.cell_phone",
    }


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", ""])
def test_body_that_is_not_a_json_object_is_400(sb, api, broker_token, raw):
    answer = api("POST", "leads", broker_token, data=raw)

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"


# -- envelope --------------------------------------------------------------------


def test_envelope_mode_wraps_body_and_headers(sb, api, broker_token):
    sb.control.config(envelope=True)

    answer = api("GET", "leads", broker_token, params={"limit": 2})

    body = answer.json()
    assert set(body) == {"body", "header"}
    assert body["body"]["paging"]["count"] == 2
    assert body["header"]["x-rate-limit-remaining"] == 14
    assert answer.headers["x-rate-limit-remaining"] == "14"


def test_envelope_mode_wraps_errors_too(sb, api):
    sb.control.config(envelope=True)

    answer = api("GET", "me", "nope")

    assert answer.json()["body"] == {"error": "invalid_token"}
