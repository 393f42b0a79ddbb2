"""CincClient against the local stub: answer shapes, headers and failures the
sandbox does not produce, and the retry and wait rules (with a recorded
sleep instead of real waiting)."""

import logging
import time

import pytest

from cinc.client import CincClient, Page
from cinc.errors import (
    CincError,
    DuplicateEmail,
    Forbidden,
    InvalidFields,
    MalformedResponse,
    MissingScope,
    NotBroker,
    NotFound,
    RateLimited,
    Unauthorized,
    UpstreamError,
)
from cinc.ratelimit import MemoryStore, RateLimiter

TOKEN = "tok-4Fz9-SECRET-access"
FRESH = "tok-7Qw2-SECRET-fresh"
ME = {"id": "AGENT_MDID0", "username": "buum@cu.com", "roles": ["client", "broker"]}


class Recorder:
    """Stands in for time.sleep and on_event; records what was asked."""

    def __init__(self):
        self.sleeps = []
        self.events = []

    def sleep(self, seconds):
        self.sleeps.append(seconds)

    def event(self, kind, **info):
        self.events.append((kind, info))

    def kinds(self):
        return [kind for kind, _ in self.events]


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def make_client(stub, recorder):
    clients = []

    def make(**kwargs):
        kwargs.setdefault("token", lambda: TOKEN)
        kwargs.setdefault("sleep", recorder.sleep)
        kwargs.setdefault("on_event", recorder.event)
        kwargs.setdefault("timeout", (1, 2))
        client = CincClient(stub.url + "/v2/site", **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def agents(*ids):
    return [{"id": i, "info": {"contact": {"email": f"{i}@x.test"}}} for i in ids]


def page_body(kind, ids, offset=0, limit=None):
    return {
        "paging": {
            "offset": offset,
            "limit": limit or len(ids),
            "count": len(ids),
            "next": "9",
        },
        kind: agents(*ids),
    }


# Headers and shapes


def test_me_sends_the_standard_authorization_header(stub, make_client):
    stub.reply(200, ME)

    me = make_client().me()

    sent = stub.requests[0]
    assert sent["path"] == "/v2/site/me"
    assert sent["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert "Bearer" not in sent["headers"]
    assert me["roles"] == ["client", "broker"]
    assert me["id"] == "AGENT_MDID0"


def test_token_header_setting_sends_the_documented_bearer_header(stub, make_client):
    stub.reply(200, ME)

    make_client(token_header="bearer").me()

    sent = stub.requests[0]["headers"]
    assert sent["Bearer"] == TOKEN
    assert "Authorization" not in sent


def test_envelope_answers_are_unwrapped_and_their_rate_header_is_used(
    stub, make_client
):
    reset = time.time() + 20
    stub.reply(
        200,
        {
            "body": page_body("agents", ["A1", "A2"], limit=2),
            "header": {
                "x-rate-limit-limit": 4,
                "x-rate-limit-remaining": 3,
                "x-rate-limit-reset": int(reset),
            },
        },
    )
    limiter = RateLimiter(MemoryStore())

    page = make_client(limiter=limiter, limiter_prefix="conn1").agents_page(0, 2)

    assert page == Page(items=agents("A1", "A2"), offset=0, limit=2, count=2, next="9")
    assert limiter.state("conn1:agents")["limit"] == 4


def test_http_rate_headers_win_over_the_envelope(stub, make_client):
    stub.reply(
        200,
        {"body": ME, "header": {"x-rate-limit-limit": 50}},
        headers={"X-Rate-Limit-Limit": "6", "X-Rate-Limit-Remaining": "5"},
    )
    limiter = RateLimiter(MemoryStore())

    make_client(limiter=limiter).me()

    assert limiter.state("me")["limit"] == 6


def test_page_without_paging_uses_the_request(stub, make_client):
    stub.reply(200, {"leads": agents("L1")})

    page = make_client().leads_page(offset=40, limit=10)

    assert (page.offset, page.limit, page.count, page.next) == (40, 10, 1, None)
    assert stub.requests[0]["query"] == {"offset": ["40"], "limit": ["10"]}


@pytest.mark.parametrize(
    "body",
    [
        {"paging": {}, "agents": {"A1": {}}},
        {"paging": {}},
        {"paging": [], "agents": []},
        {"agents": [{"id": "A1"}, "A2"]},
        "plain text",
    ],
)
def test_page_of_the_wrong_shape_is_malformed(stub, make_client, body):
    stub.reply(200, body)

    with pytest.raises(MalformedResponse) as caught:
        make_client().agents_page()

    assert caught.value.endpoint == "agents"


def test_body_that_is_not_json_is_malformed_and_not_repeated(stub, make_client):
    body = '{"paging": {"offset": 0}, "agents": [' + "x" * 5000
    stub.reply(200, body)

    with pytest.raises(MalformedResponse) as caught:
        make_client().agents_page()

    assert len(str(caught.value)) < 320
    assert "x" * 300 not in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        {"username": "a", "roles": []},
        {"id": "A", "username": "a", "roles": "broker"},
        {"id": "A", "username": "a"},
        {"id": "A", "username": 5, "roles": []},
        [ME],
    ],
)
def test_me_of_the_wrong_shape_is_malformed(stub, make_client, body):
    stub.reply(200, body)

    with pytest.raises(MalformedResponse):
        make_client().me()


def test_single_records_accept_both_shapes(stub, make_client):
    stub.reply(200, {"agent": {"id": "agent/1"}})
    stub.reply(200, {"id": "LEAD_1", "info": {}})
    client = make_client()

    agent = client.agent("agent/1")
    lead = client.lead("LEAD_1")

    assert agent == {"id": "agent/1"}
    assert lead["id"] == "LEAD_1"
    assert stub.requests[0]["path"] == "/v2/site/agents/agent%2F1"


# Paging walks


def test_walk_follows_offsets_and_stops_on_a_short_page(stub, make_client):
    stub.reply(200, page_body("agents", ["A1", "A2"], 0, 2))
    stub.reply(200, page_body("agents", ["A3", "A4"], 2, 2))
    stub.reply(200, page_body("agents", ["A5"], 4, 2))

    ids = [a["id"] for a in make_client().iter_agents(page_size=2)]

    assert ids == ["A1", "A2", "A3", "A4", "A5"]
    offsets = [r["query"]["offset"] for r in stub.requests]
    assert offsets == [["0"], ["2"], ["4"]]


def test_walk_stops_on_an_empty_page(stub, make_client):
    stub.reply(200, page_body("leads", ["L1", "L2"], 0, 2))
    stub.reply(200, page_body("leads", [], 2, 2))

    ids = [lead["id"] for lead in make_client().iter_leads(page_size=2)]

    assert ids == ["L1", "L2"]


def test_walk_skips_ids_seen_on_an_earlier_page(stub, make_client):
    stub.reply(200, page_body("leads", ["L1", "L2"], 0, 2))
    stub.reply(200, page_body("leads", ["L2", "L3"], 2, 2))
    stub.reply(200, page_body("leads", ["L4"], 4, 2))

    ids = [lead["id"] for lead in make_client().iter_leads(page_size=2)]

    assert ids == ["L1", "L2", "L3", "L4"]


def test_walk_stops_with_an_error_when_the_server_repeats_itself(stub, make_client):
    stub.reply(200, page_body("leads", ["L1", "L2"], 0, 2))
    for _ in range(3):
        stub.reply(200, page_body("leads", ["L1", "L2"], 0, 2))

    seen = []
    with pytest.raises(MalformedResponse, match="repeated"):
        for lead in make_client().iter_leads(page_size=2):
            seen.append(lead["id"])

    assert seen == ["L1", "L2"]
    assert len(stub.requests) == 2


def test_walk_stops_at_the_page_cap(stub, make_client):
    for n in range(3):
        stub.reply(200, page_body("agents", [f"A{2 * n}", f"A{2 * n + 1}"], 2 * n, 2))

    with pytest.raises(MalformedResponse, match="2 pages"):
        list(make_client().iter_agents(page_size=2, max_pages=2))


def test_walk_follows_a_server_that_caps_the_page_size(stub, make_client):
    stub.reply(200, page_body("agents", ["A1", "A2"], 0, 2))
    stub.reply(200, page_body("agents", ["A3"], 2, 2))

    ids = [a["id"] for a in make_client().iter_agents(page_size=500)]

    assert ids == ["A1", "A2", "A3"]
    assert stub.requests[1]["query"]["offset"] == ["2"]


# Statuses to errors


def test_401_refreshes_once_and_retries_with_the_new_token(stub, make_client):
    refreshed = []
    stub.reply(401, {"error": "invalid_token"})
    stub.reply(200, ME)

    def refresh():
        refreshed.append(1)
        return FRESH

    me = make_client(refresh=refresh).me()

    assert me["username"] == "buum@cu.com"
    assert refreshed == [1]
    assert stub.requests[1]["headers"]["Authorization"] == f"Bearer {FRESH}"


def test_second_401_raises_unauthorized_without_a_second_refresh(stub, make_client):
    refreshed = []
    stub.reply(401, {"error": "invalid_token"})
    stub.reply(401, {"error": "invalid_token"})
    stub.reply(200, ME)

    with pytest.raises(Unauthorized) as caught:
        make_client(refresh=lambda: refreshed.append(1) or FRESH).me()

    assert refreshed == [1]
    assert caught.value.status == 401
    assert len(stub.requests) == 2


def test_401_without_a_refresh_callback_raises_unauthorized(stub, make_client):
    stub.reply(401, {"error": "invalid_token"})

    with pytest.raises(Unauthorized):
        make_client().me()


def test_403_insufficient_scope_names_the_scope(stub, make_client):
    stub.reply(403, {"error": "insufficient_scope", "scope_required": "api:create"})

    with pytest.raises(MissingScope) as caught:
        make_client().create_lead({"info": {"contact": {"email": "a@b.test"}}})

    assert caught.value.scope_required == "api:create"
    assert "api:create" in str(caught.value)


def test_403_scope_can_come_from_the_challenge_header(stub, make_client):
    challenge = 'Bearer error="insufficient_scope", scope="api:read"'
    stub.reply(403, "", headers={"WWW-Authenticate": challenge})

    with pytest.raises(MissingScope) as caught:
        make_client().me()

    assert caught.value.scope_required == "api:read"


def test_403_not_broker(stub, make_client):
    stub.reply(403, {"error": "not_broker", "message": "only brokers may use the API"})

    with pytest.raises(NotBroker) as caught:
        make_client().agents_page()

    assert "only brokers" in str(caught.value)


def test_other_403_is_forbidden(stub, make_client):
    stub.reply(403, {"error": "site_suspended"})

    with pytest.raises(Forbidden) as caught:
        make_client().agents_page()

    assert not isinstance(caught.value, MissingScope | NotBroker)
    assert caught.value.code == "site_suspended"


def test_404_is_not_found(stub, make_client):
    stub.reply(404, {"error": "not_found"})

    with pytest.raises(NotFound) as caught:
        make_client().lead("LEAD_GONE")

    assert caught.value.status == 404
    assert caught.value.endpoint == "lead"


def test_409_is_a_duplicate_email_with_the_existing_id(stub, make_client):
    stub.reply(
        409,
        {"error": "duplicate_email", "message": "exists", "lead": {"id": "LEAD_7"}},
    )

    with pytest.raises(DuplicateEmail) as caught:
        make_client().create_lead({"info": {"contact": {"email": "a@b.test"}}})

    assert caught.value.existing_id == "LEAD_7"
    assert caught.value.status == 409


@pytest.mark.parametrize("status", [400, 422])
def test_field_errors_are_listed(stub, make_client, status):
    errors = [
        {"field": "info.contact.email", "message": "is required"},
        {"field": "info.buyer.median_price", "message": "must be a number"},
    ]
    stub.reply(status, {"error": "invalid_fields", "errors": errors})

    with pytest.raises(InvalidFields) as caught:
        make_client().create_lead({"info": {}})

    assert caught.value.errors == [
        ("info.contact.email", "is required"),
        ("info.buyer.median_price", "must be a number"),
    ]


def test_field_errors_given_as_a_mapping_are_listed(stub, make_client):
    stub.reply(422, {"errors": {"email": ["taken", "too long"]}})

    with pytest.raises(InvalidFields) as caught:
        make_client().create_lead({"info": {}})

    assert caught.value.errors == [("email", "taken"), ("email", "too long")]


def test_unexpected_status_is_a_cinc_error(stub, make_client):
    stub.reply(418, "teapot")

    with pytest.raises(CincError) as caught:
        make_client(get_retries=0).me()

    assert caught.value.status == 418


def test_create_lead_reports_created_and_updated(stub, make_client):
    stub.reply(201, {"lead": {"id": "LEAD_NEW"}})
    stub.reply(200, {"body": {"lead": {"id": "LEAD_OLD"}}, "header": {}})
    client = make_client()

    created = client.create_lead({"info": {"contact": {"email": "a@b.test"}}})
    updated = client.create_lead({"info": {"contact": {"email": "b@b.test"}}})

    assert (created.id, created.created) == ("LEAD_NEW", True)
    assert (updated.id, updated.created) == ("LEAD_OLD", False)
    assert stub.requests[0]["headers"]["Content-Type"] == "application/json"


def test_create_lead_answer_without_an_id_is_malformed(stub, make_client):
    stub.reply(201, {"lead": {}})

    with pytest.raises(MalformedResponse) as caught:
        make_client().create_lead({"info": {"contact": {"email": "a@b.test"}}})

    assert caught.value.status == 201


# Retries


def test_get_is_retried_on_5xx_with_capped_backoff(stub, make_client, recorder):
    stub.reply(500, {"error": "internal_error"})
    stub.reply(502, "<html>Bad Gateway</html>")
    stub.reply(503, "Service Unavailable", headers={"Retry-After": "1"})
    stub.reply(200, ME)

    me = make_client().me()

    assert me["id"] == "AGENT_MDID0"
    assert len(stub.requests) == 4
    assert recorder.kinds().count("retry") == 3
    assert len(recorder.sleeps) == 3
    assert all(0 <= s <= 8 for s in recorder.sleeps)


def test_get_gives_up_after_the_retries(stub, make_client, recorder):
    for _ in range(3):
        stub.reply(500, {"error": "internal_error"})

    with pytest.raises(UpstreamError) as caught:
        make_client(get_retries=2).agents_page()

    assert caught.value.kind == "server_error"
    assert caught.value.status == 500
    assert len(stub.requests) == 3


def test_get_is_retried_after_a_timeout(stub, make_client):
    stub.reply(200, ME, delay=0.6)
    stub.reply(200, ME)

    me = make_client(timeout=(1, 0.2)).me()

    assert me["id"] == "AGENT_MDID0"
    assert len(stub.requests) == 2


def test_dropped_connection_is_a_connection_error(stub, make_client):
    stub.reply(200, ME, drop=True)

    with pytest.raises(UpstreamError) as caught:
        make_client(get_retries=0).me()

    assert caught.value.kind == "connection"


def test_unreachable_server_is_a_connection_error(closed_port, recorder):
    client = CincClient(
        f"http://127.0.0.1:{closed_port}/v2/site",
        token=lambda: TOKEN,
        sleep=recorder.sleep,
        get_retries=1,
    )

    with pytest.raises(UpstreamError) as caught:
        client.me()

    assert caught.value.kind == "connection"
    assert len(recorder.sleeps) == 1


def test_post_is_not_retried_on_5xx(stub, make_client):
    stub.reply(500, {"error": "internal_error"})
    stub.reply(201, {"lead": {"id": "LEAD_DOUBLE"}})

    with pytest.raises(UpstreamError):
        make_client().create_lead({"info": {"contact": {"email": "a@b.test"}}})

    assert len(stub.requests) == 1


def test_post_timeout_says_the_lead_may_exist(stub, make_client):
    stub.reply(201, {"lead": {"id": "LEAD_SLOW"}}, delay=0.6)
    stub.reply(201, {"lead": {"id": "LEAD_DOUBLE"}})

    with pytest.raises(UpstreamError) as caught:
        make_client(timeout=(1, 0.2)).create_lead(
            {"info": {"contact": {"email": "a@b.test"}}}
        )

    assert caught.value.kind == "timeout"
    assert "may have been created" in str(caught.value)
    assert len(stub.requests) == 1


# 429 and the limiter


def test_429_waits_for_retry_after_and_retries(stub, make_client, recorder):
    stub.reply(429, {"error": "rate_limited"}, headers={"Retry-After": "2"})
    stub.reply(200, ME)

    make_client().me()

    assert len(stub.requests) == 2
    assert recorder.sleeps == [pytest.approx(2.05, abs=0.05)]
    assert recorder.kinds() == ["request", "rate_limited", "wait", "request"]


def test_429_is_retried_for_post_too(stub, make_client):
    stub.reply(429, {"error": "rate_limited"}, headers={"Retry-After": "1"})
    stub.reply(201, {"lead": {"id": "LEAD_1"}})

    result = make_client().create_lead({"info": {"contact": {"email": "a@b.test"}}})

    assert result.created is True
    assert len(stub.requests) == 2


def test_429_with_a_long_reset_raises_rate_limited(stub, make_client):
    reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
    stub.reply(429, {"error": "rate_limited"}, headers={"x-rate-limit-reset": reset})
    stub.reply(200, ME)

    with pytest.raises(RateLimited) as caught:
        make_client(max_wait=10).me()

    error = caught.value
    assert error.from_server is True
    assert 50 < error.retry_after <= 61
    assert error.retry_at.tzinfo is not None
    assert len(stub.requests) == 1


def test_429_without_reset_waits_one_window(stub, make_client, recorder):
    stub.reply(429, {"error": "rate_limited"})

    with pytest.raises(RateLimited) as caught:
        make_client(max_wait=10).me()

    assert caught.value.retry_after == pytest.approx(20.05, abs=0.1)


def test_429_is_not_retried_when_retry_429_is_off(stub, make_client):
    stub.reply(429, {"error": "rate_limited"}, headers={"Retry-After": "1"})

    with pytest.raises(RateLimited):
        make_client(retry_429=False).me()

    assert len(stub.requests) == 1


def test_endless_429_gives_up(stub, make_client):
    for _ in range(10):
        stub.reply(429, {"error": "rate_limited"}, headers={"Retry-After": "0.1"})

    with pytest.raises(RateLimited):
        make_client().me()

    assert len(stub.requests) == 6


def test_limiter_wait_beyond_max_wait_raises_before_sending(stub, make_client):
    limiter = RateLimiter(MemoryStore(), limit=1, window=60)
    stub.reply(200, ME)
    stub.reply(200, ME)
    client = make_client(limiter=limiter, limiter_prefix="conn1", max_wait=5)
    client.me()

    with pytest.raises(RateLimited) as caught:
        client.me()

    assert caught.value.from_server is False
    assert caught.value.retry_after > 59
    assert len(stub.requests) == 1


def test_limiter_wait_within_max_wait_sleeps_then_sends(stub, make_client):
    limiter = RateLimiter(MemoryStore(), limit=1, window=0.3, margin=0.01)
    stub.reply(200, ME)
    stub.reply(200, ME)
    client = make_client(limiter=limiter, sleep=time.sleep)

    client.me()
    client.me()

    assert len(stub.requests) == 2


def test_server_429_blocks_the_shared_limiter(stub, make_client):
    limiter = RateLimiter(MemoryStore())
    stub.reply(429, {"error": "rate_limited"}, headers={"Retry-After": "30"})

    with pytest.raises(RateLimited):
        make_client(limiter=limiter, limiter_prefix="conn1").me()

    assert limiter.reserve("conn1:me") > 25


# Secrets


def test_errors_and_logs_never_contain_the_token(stub, make_client, caplog):
    caplog.set_level(logging.DEBUG)
    stub.reply(401, {"error": "invalid_token", "message": f"token {TOKEN} expired"})
    stub.reply(401, {"error": "invalid_token", "message": f"{TOKEN} or {FRESH}"})
    stub.reply(400, {"error": "bad", "errors": [{"field": "x", "message": TOKEN}]})
    stub.reply(200, f"not json {TOKEN}")
    client = make_client(refresh=lambda: FRESH)

    errors = []
    for call in (client.me, lambda: client.create_lead({}), client.me):
        with pytest.raises(CincError) as caught:
            call()
        errors.append(caught.value)

    texts = [str(e) for e in errors] + [repr(e) for e in errors]
    texts += [str(field) for e in errors for field in getattr(e, "errors", [])]
    texts.append(caplog.text)
    for text in texts:
        assert TOKEN not in text
        assert FRESH not in text
    assert isinstance(errors[0], Unauthorized)
    assert isinstance(errors[1], InvalidFields)
    assert isinstance(errors[2], MalformedResponse)


def test_failing_event_callback_does_not_break_calls(stub, make_client, caplog):
    stub.reply(200, ME)

    def explode(kind, **info):
        raise RuntimeError("counter broke")

    me = make_client(on_event=explode).me()

    assert me["id"] == "AGENT_MDID0"
    assert "on_event callback failed" in caplog.text


def test_every_request_has_a_timeout():
    with pytest.raises(ValueError):
        CincClient("http://127.0.0.1:1", token=lambda: TOKEN, timeout=None)
