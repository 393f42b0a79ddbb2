"""The CINC client against the bundled sandbox: real HTTP on loopback.

Covers the OAuth flow, token refresh and rotation, paging walks compared
with the control API's full dump, the rate limiter against the sandbox's
fixed windows, injected faults, and lead creation.
"""

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from cinc.client import CincClient
from cinc.errors import (
    DuplicateEmail,
    InvalidFields,
    MalformedResponse,
    MissingScope,
    NotBroker,
    NotFound,
    OAuthError,
    Unauthorized,
    UpstreamError,
)
from cinc.oauth import (
    build_authorize_url,
    exchange_code,
    make_pkce_pair,
    refresh_tokens,
)
from cinc.ratelimit import FileStore, MemoryStore, RateLimiter
from cinc.records import lead_payload, parse_agent, parse_lead, parse_many

BROKER = "buum@cu.com"
NOT_BROKER = "agent@demo.test"
PASSWORD = "sandbox"
SEED = {"agents": 12, "leads": 60, "seed": 7}


@pytest.fixture
def site(sandbox_server):
    sandbox_server.control.reset(**SEED)
    return sandbox_server


class Counter:
    def __init__(self):
        self.events = []

    def __call__(self, kind, **info):
        self.events.append((kind, info))

    def count(self, kind):
        return sum(1 for k, _ in self.events if k == kind)


def issue(site, username=BROKER, scope="api:read api:create"):
    return site.control.issue_tokens(username, scope=scope)["access_token"]


def make_client(site, token, **kwargs):
    kwargs.setdefault("limiter", RateLimiter(MemoryStore()))
    kwargs.setdefault("timeout", (2, 10))
    return CincClient(site.api_url, token=lambda: token, **kwargs)


def ids(records):
    return [record["id"] for record in records]


# OAuth


def test_full_consent_flow_gives_tokens_for_the_broker(site):
    verifier, challenge = make_pkce_pair()
    url = build_authorize_url(
        site.authorize_url,
        client_id=site.client_id,
        redirect_uri=site.redirect_uri,
        scopes=["api:read", "api:create"],
        state="state-123",
        code_challenge=challenge,
    )

    callback = site.control.approve(url, BROKER, PASSWORD)
    query = parse_qs(urlsplit(callback).query)
    with requests.Session() as session:
        tokens = exchange_code(
            session,
            site.token_url,
            client_id=site.client_id,
            client_secret=site.client_secret,
            code=query["code"][0],
            redirect_uri=site.redirect_uri,
            code_verifier=verifier,
            timeout=5,
        )
    me = make_client(site, tokens.access_token).me()

    assert query["state"] == ["state-123"]
    assert tokens.scopes == ("api:read", "api:create")
    assert tokens.refresh_token
    assert me["username"] == BROKER
    assert "broker" in me["roles"]


def test_consent_with_fewer_scopes_records_what_was_granted(site):
    url = build_authorize_url(
        site.authorize_url,
        client_id=site.client_id,
        redirect_uri=site.redirect_uri,
        scopes=["api:read", "api:create"],
        state="s",
    )

    callback = site.control.approve(url, BROKER, PASSWORD, scopes=["api:read"])
    code = parse_qs(urlsplit(callback).query)["code"][0]
    tokens = exchange_code(
        None,
        site.token_url,
        client_id=site.client_id,
        client_secret=site.client_secret,
        code=code,
        redirect_uri=site.redirect_uri,
    )

    assert tokens.scopes == ("api:read",)


def test_a_code_can_be_used_once(site):
    url = build_authorize_url(
        site.authorize_url,
        client_id=site.client_id,
        redirect_uri=site.redirect_uri,
        scopes=["api:read"],
        state="s",
    )
    code = parse_qs(urlsplit(site.control.approve(url, BROKER, PASSWORD)).query)
    form = dict(
        client_id=site.client_id,
        client_secret=site.client_secret,
        code=code["code"][0],
        redirect_uri=site.redirect_uri,
    )
    exchange_code(None, site.token_url, **form)

    with pytest.raises(OAuthError) as caught:
        exchange_code(None, site.token_url, **form)

    assert caught.value.error == "invalid_grant"
    assert caught.value.permanent is True


def test_refresh_rotates_the_refresh_token(site):
    first = site.control.issue_tokens(BROKER)
    credentials = dict(client_id=site.client_id, client_secret=site.client_secret)

    second = refresh_tokens(
        None, site.token_url, refresh_token=first["refresh_token"], **credentials
    )
    third = refresh_tokens(
        None, site.token_url, refresh_token=second.refresh_token, **credentials
    )

    assert second.access_token != first["access_token"]
    assert second.refresh_token != first["refresh_token"]
    assert third.refresh_token != second.refresh_token
    assert make_client(site, third.access_token).me()["username"] == BROKER
    with pytest.raises(OAuthError) as caught:
        refresh_tokens(
            None, site.token_url, refresh_token=first["refresh_token"], **credentials
        )
    assert caught.value.permanent is True


def test_wrong_client_secret_is_a_permanent_refusal(site):
    first = site.control.issue_tokens(BROKER)

    with pytest.raises(OAuthError) as caught:
        refresh_tokens(
            None,
            site.token_url,
            client_id=site.client_id,
            client_secret="wrong",
            refresh_token=first["refresh_token"],
        )

    assert caught.value.permanent is True
    assert "wrong" not in str(caught.value)


def test_expired_token_is_refreshed_once_and_the_call_succeeds(site):
    tokens = site.control.issue_tokens(BROKER)
    current = {"access": tokens["access_token"], "refresh": tokens["refresh_token"]}
    refreshes = []

    def refresh():
        refreshes.append(1)
        fresh = refresh_tokens(
            None,
            site.token_url,
            client_id=site.client_id,
            client_secret=site.client_secret,
            refresh_token=current["refresh"],
        )
        current.update(access=fresh.access_token, refresh=fresh.refresh_token)
        return fresh.access_token

    client = CincClient(
        site.api_url,
        token=lambda: current["access"],
        refresh=refresh,
        limiter=RateLimiter(MemoryStore()),
    )
    site.control.expire_tokens()

    page = client.agents_page(0, 5)
    again = client.agents_page(5, 5)

    assert len(page.items) == 5
    assert len(again.items) == 5
    assert refreshes == [1]


def test_revoked_token_raises_unauthorized_after_one_refresh(site):
    token = issue(site)
    site.control.revoke_tokens()
    refreshes = []

    with pytest.raises(Unauthorized):
        make_client(site, token, refresh=lambda: refreshes.append(1) or token).me()

    assert refreshes == [1]


@pytest.mark.parametrize(
    "knobs, error, kind",
    [
        ({"token_fail": "500"}, UpstreamError, "server_error"),
        ({"token_fail": "slow", "token_delay": 1.0}, UpstreamError, "timeout"),
        ({"token_fail": "400"}, OAuthError, None),
    ],
)
def test_token_endpoint_faults_are_typed(site, knobs, error, kind):
    refresh_token = site.control.issue_tokens(BROKER)["refresh_token"]
    site.control.config(**knobs)

    with pytest.raises(error) as caught:
        refresh_tokens(
            None,
            site.token_url,
            client_id=site.client_id,
            client_secret=site.client_secret,
            refresh_token=refresh_token,
            timeout=(2, 0.3),
        )

    if kind:
        assert caught.value.kind == kind
    else:
        assert caught.value.permanent is True


# Reads


def test_walks_return_exactly_the_control_apis_records(site):
    client = make_client(site, issue(site))

    agents = list(client.iter_agents(page_size=5))
    leads = list(client.iter_leads(page_size=25))

    assert agents == site.control.agents()
    assert leads == site.control.leads()
    assert len(leads) == SEED["leads"]


def test_walk_with_the_envelope_and_epoch_resets(site):
    site.control.config(envelope=True, reset_format="epoch")
    client = make_client(site, issue(site))

    leads = list(client.iter_leads(page_size=20))

    assert ids(leads) == ids(site.control.leads())


def test_every_sandbox_record_parses(site):
    client = make_client(site, issue(site))

    agents, agent_errors = parse_many(client.iter_agents(), parse_agent)
    leads, lead_errors = parse_many(client.iter_leads(), parse_lead)

    assert agent_errors == []
    assert lead_errors == []
    assert len(agents) == SEED["agents"]
    assert len(leads) == SEED["leads"]


def test_single_records_and_missing_ones(site):
    client = make_client(site, issue(site))
    first_lead = site.control.leads()[0]
    first_agent = site.control.agents()[0]

    assert client.lead(first_lead["id"]) == first_lead
    assert client.agent(first_agent["id"]) == first_agent
    with pytest.raises(NotFound):
        client.lead("LEAD_DOES_NOT_EXIST")


def test_agent_without_broker_role_is_refused(site):
    client = make_client(site, issue(site, NOT_BROKER))

    me = client.me()
    with pytest.raises(NotBroker):
        client.agents_page()

    assert "broker" not in me["roles"]


def test_token_without_create_scope_cannot_create(site):
    client = make_client(site, issue(site, scope="api:read"))

    with pytest.raises(MissingScope) as caught:
        client.create_lead(lead_payload({"email": "scope@example.test"}))

    assert caught.value.scope_required == "api:create"


def test_malformed_page_raises_malformed_response(site):
    site.control.config(malformed_rate=1.0)
    client = make_client(site, issue(site))

    with pytest.raises(MalformedResponse) as caught:
        client.leads_page(0, 10)

    assert caught.value.status == 200


# Rate limits and faults


def test_limiter_keeps_the_sandbox_from_answering_429(site):
    site.control.config(limit=3, window=2)
    site.control.reset_stats()
    counter = Counter()
    limiter = RateLimiter(MemoryStore(), window=2)
    client = make_client(site, issue(site), limiter=limiter, on_event=counter)

    for _ in range(10):
        client.me()

    stats = site.control.stats()
    assert stats["rate_limited"] == {"window": 0, "early": 0}
    assert stats["requests"]["me"] == 10
    assert counter.count("request") == 10
    assert counter.count("wait") >= 3


def test_two_clients_sharing_a_file_store_stay_under_the_limit(site, tmp_path):
    site.control.config(limit=4, window=1)
    site.control.reset_stats()
    store = FileStore(tmp_path / "limits")
    token = issue(site)
    clients = [
        make_client(site, token, limiter=RateLimiter(store, window=1), limiter_prefix=c)
        for c in ("conn", "conn")
    ]

    for n in range(12):
        clients[n % 2].agents_page(0, 1)

    stats = site.control.stats()
    assert stats["rate_limited"]["window"] == 0
    assert stats["requests"]["agents"] == 12


def test_walk_survives_early_429s_and_server_errors(site):
    site.control.config(
        limit=15, window=1, early_429_rate=0.3, fail_rate=0.3, random_seed=11
    )
    site.control.reset_stats()
    counter = Counter()
    client = make_client(
        site,
        issue(site),
        limiter=RateLimiter(MemoryStore(), window=1),
        on_event=counter,
    )

    leads = list(client.iter_leads(page_size=15))

    stats = site.control.stats()
    assert ids(leads) == ids(site.control.leads())
    assert stats["rate_limited"]["early"] > 0
    assert stats["injected_5xx"] > 0
    assert counter.count("rate_limited") == stats["rate_limited"]["early"]
    assert counter.count("retry") == stats["injected_5xx"]


def test_walk_survives_answers_slower_than_the_timeout(site):
    site.control.config(slow_rate=0.4, slow_seconds=0.5, random_seed=3)
    client = make_client(site, issue(site), timeout=(2, 0.25))

    leads = list(client.iter_leads(page_size=20))

    assert ids(leads) == ids(site.control.leads())
    assert site.control.stats()["slow"] > 0


# Lead creation


def new_lead(**fields):
    base = {
        "first_name": "Zoë",
        "last_name": "Créateur",
        "email": "zoe.createur@example.test",
        "cell_phone": "4045550101",
        "zip": "30067",
        "is_buyer": True,
        "average_price": 310000,
        "favorite_city": "Marietta",
    }
    base.update(fields)
    return lead_payload(base)


def test_create_lead_creates_then_refuses_the_same_email(site):
    client = make_client(site, issue(site))

    result = client.create_lead(new_lead())
    with pytest.raises(DuplicateEmail) as caught:
        client.create_lead(new_lead(first_name="Other"))

    stored = client.lead(result.id)
    assert result.created is True
    assert caught.value.existing_id == result.id
    assert stored["info"]["contact"]["email"] == "zoe.createur@example.test"
    assert parse_lead(stored).buyer_average_price == 310000


def test_create_lead_in_upsert_mode_reports_an_update(site):
    site.control.config(upsert=True)
    client = make_client(site, issue(site))

    first = client.create_lead(new_lead())
    second = client.create_lead(new_lead(first_name="Changed"))

    assert first.created is True
    assert second.created is False
    assert second.id == first.id


def test_create_lead_with_postal_code_key(site):
    client = make_client(site, issue(site))
    payload = lead_payload(
        {"email": "pc@example.test", "zip": "31324"}, zip_key="postal_code"
    )

    result = client.create_lead(payload)

    assert parse_lead(client.lead(result.id)).zip == "31324"


def test_post_that_times_out_is_not_sent_twice(site):
    site.control.config(post_stall_seconds=0.6)
    client = make_client(site, issue(site), timeout=(2, 0.25))

    with pytest.raises(UpstreamError) as caught:
        client.create_lead(new_lead())

    assert caught.value.kind == "timeout"
    assert site.control.stats()["requests"]["lead_create"] == 1
    emails = [lead["info"]["contact"]["email"] for lead in site.control.leads()]
    assert emails.count("zoe.createur@example.test") == 1


def test_create_lead_with_invalid_fields_lists_them(site):
    client = make_client(site, issue(site))
    payload = new_lead(cell_phone="call me", primary_agent_id="AGENT_NOBODY")

    with pytest.raises(InvalidFields) as caught:
        client.create_lead(payload)

    fields = [field for field, _ in caught.value.errors]
    assert "info.contact.phone_numbers.cell_phone" in fields
    assert "info.assigned_agents.primary_agent.id" in fields
