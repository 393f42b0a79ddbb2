import pytest

from sandbox.control import SandboxError
from sandbox.control_api import is_loopback, merge


@pytest.fixture
def control_url(sb):
    return f"{sb.base_url}/_sandbox"


def test_health(sb, http, control_url):
    assert http.get(f"{control_url}/health", timeout=10).json() == {"ok": True}


def test_config_reads_and_changes_knobs(sb):
    changed = sb.control.config(limit=4, fail_rate=0.25, upsert=True)

    assert changed["limit"] == 4
    assert changed["fail_rate"] == 0.25
    assert sb.control.config()["upsert"] is True


@pytest.mark.parametrize(
    "payload",
    [
        {"no_such_knob": 1},
        {"fail_rate": 2},
        {"limit": "many"},
        {"token_fail": "teapot"},
        {"reset_format": "rfc822"},
        {"upsert": "yes"},
    ],
)
def test_config_refuses_unknown_or_bad_knobs(sb, http, control_url, payload):
    answer = http.post(f"{control_url}/config", json=payload, timeout=10)

    assert answer.status_code == 400
    assert answer.json()["message"]
    assert sb.control.config()["limit"] == 15


@pytest.mark.parametrize("garbage", [b"{oops", b"[1]", b"\xff\xfe", b'"text"'])
def test_control_api_refuses_garbage_with_400(sb, http, control_url, garbage):
    for path in ("config", "reset", "sites/demo/leads", "tokens/expire"):
        answer = http.post(f"{control_url}/{path}", data=garbage, timeout=10)

        assert answer.status_code == 400, path
    assert sb.control.health()


def test_unknown_control_path_is_404(sb, http, control_url):
    assert http.get(f"{control_url}/nothing", timeout=10).status_code == 404
    assert http.get(f"{control_url}/sites/nowhere/leads", timeout=10).status_code == 404


def test_reset_restores_startup_knobs_and_zeroes_stats(sb, api, broker_token):
    sb.control.config(limit=2, envelope=True)
    api("GET", "me", broker_token)

    sb.control.reset(leads=10)

    assert sb.control.config()["limit"] == 15
    assert sb.control.config()["envelope"] is False
    assert sb.control.stats()["requests"]["me"] == 0
    assert len(sb.control.leads("demo")) == 10


def test_reset_refuses_bad_counts(sb, http, control_url):
    answer = http.post(f"{control_url}/reset", json={"leads": -1}, timeout=10)

    assert answer.status_code == 400


def test_stats_reset(sb, api, broker_token):
    api("GET", "me", broker_token)

    sb.control.reset_stats()

    assert sb.control.stats()["requests"]["me"] == 0


def test_sites_lists_brokers_and_counts(sb):
    sites = {site["name"]: site for site in sb.control.sites()}

    assert sites["demo"]["leads"] == 40
    assert sites["demo"]["agents"] == 12
    assert "buum@cu.com" in sites["demo"]["brokers"]
    assert sites["second"]["brokers"] == ["broker@second.test"]


def test_add_generated_leads_appends_them(sb):
    ids = sb.control.add_leads("demo", count=5)

    leads = sb.control.leads("demo")
    assert [lead["id"] for lead in leads[-5:]] == ids
    assert len({lead["info"]["contact"]["email"] for lead in leads}) == 45


def test_add_one_record_as_given(sb):
    lead_id = sb.control.add_lead(
        "second", {"info": {"contact": {"email": "odd@example.com"}, "weird": [1]}}
    )

    lead = sb.control.lead("second", lead_id)
    assert lead["info"]["weird"] == [1]
    assert lead["registered_date"].endswith("Z")


def test_add_record_with_a_taken_email_is_409(sb):
    with pytest.raises(SandboxError) as caught:
        sb.control.add_lead("demo", {"info": {"contact": {"email": "mo@rijegmo.fk"}}})

    assert caught.value.status == 409


def test_update_lead_merges_info(sb):
    lead = sb.control.update_lead(
        "demo",
        "LEAD_MDID0",
        info={"status": "closed", "assigned_agents": {"partner": None}},
    )

    assert lead["info"]["status"] == "closed"
    assert "partner" not in lead["info"]["assigned_agents"]
    assert lead["info"]["assigned_agents"]["primary_agent"] == {"id": "AGENT_MDID3"}
    assert sb.control.lead("demo", "LEAD_MDID0") == lead


def test_update_missing_lead_is_404(sb):
    with pytest.raises(SandboxError) as caught:
        sb.control.update_lead("demo", "LEAD_nope", info={"status": "hot"})

    assert caught.value.status == 404


def test_delete_lead(sb):
    sb.control.delete_lead("demo", "mymdidwoah")

    assert "mymdidwoah" not in {lead["id"] for lead in sb.control.leads("demo")}
    with pytest.raises(SandboxError):
        sb.control.delete_lead("demo", "mymdidwoah")


def test_expire_tokens_of_one_site(sb, api, broker_token):
    second = sb.control.issue_tokens("broker@second.test")["access_token"]

    assert sb.control.expire_tokens(site="demo") == 1

    assert api("GET", "me", broker_token).status_code == 401
    assert api("GET", "me", second).status_code == 200


def test_revoke_all_tokens(sb, api, broker_token):
    assert sb.control.revoke_tokens() == 2  # one access and one refresh token

    assert api("GET", "me", broker_token).status_code == 401


def test_issue_tokens_refuses_unknown_agents(sb):
    with pytest.raises(SandboxError) as caught:
        sb.control.issue_tokens("nobody@example.com")

    assert caught.value.status == 404


def test_only_loopback_addresses_count_as_loopback():
    assert is_loopback("127.0.0.1")
    assert is_loopback("127.8.9.10")
    assert is_loopback("::1")
    assert is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("10.0.0.7")
    assert not is_loopback("192.168.1.2")
    assert not is_loopback("not an address")


def test_merge_is_deep_and_null_removes():
    target = {"a": {"b": 1, "c": 2}, "d": 3}

    merge(target, {"a": {"b": 9, "c": None}, "e": [1]})

    assert target == {"a": {"b": 9}, "d": 3, "e": [1]}


def test_index_page_lists_sites(sb, http):
    page = http.get(sb.base_url + "/", timeout=10)

    assert page.status_code == 200
    assert "broker@second.test" in page.text
