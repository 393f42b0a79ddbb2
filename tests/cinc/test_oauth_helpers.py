"""OAuth2 helpers: the consent URL, PKCE, and the token endpoint's answers.

Odd answers come from the local stub; the whole flow against the sandbox is
in test_sandbox_flows.py.
"""

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from cinc.errors import MalformedResponse, OAuthError, UpstreamError
from cinc.oauth import (
    TokenSet,
    build_authorize_url,
    exchange_code,
    make_pkce_pair,
    refresh_tokens,
)

ACCESS = "acc-Zq8-SECRET-access"
REFRESH = "ref-Yp7-SECRET-refresh"


def token_answer(**changes):
    answer = {
        "access_token": ACCESS,
        "token_type": "bearer",
        "expires_in": 3600,
        "refresh_token": REFRESH,
        "scope": "api:read api:create",
    }
    answer.update(changes)
    return {k: v for k, v in answer.items() if v is not None}


def exchange(stub, **kwargs):
    with requests.Session() as session:
        return exchange_code(
            session,
            stub.url + "/integrator/token",
            client_id="cinc-portal-dev",
            client_secret="cinc-portal-dev-secret",
            code="the-code",
            redirect_uri="http://127.0.0.1:8000/cinc/callback/",
            timeout=kwargs.pop("timeout", 2),
            **kwargs,
        )


def test_build_authorize_url_carries_the_documented_parameters():
    url = build_authorize_url(
        "https://authv2.cincapi.com/integrator/authorize",
        client_id="cinc-portal-dev",
        redirect_uri="http://127.0.0.1:8000/cinc/callback/",
        scopes=["api:read", "api:create"],
        state="s t&ate",
    )

    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert parts.netloc == "authv2.cincapi.com"
    assert parts.path == "/integrator/authorize"
    assert query == {
        "client_id": ["cinc-portal-dev"],
        "response_type": ["code"],
        "redirect_uri": ["http://127.0.0.1:8000/cinc/callback/"],
        "scope": ["api:read api:create"],
        "state": ["s t&ate"],
    }
    assert "+" not in parts.query


def test_build_authorize_url_adds_an_s256_challenge_and_keeps_existing_query():
    verifier, challenge = make_pkce_pair()

    url = build_authorize_url(
        "http://127.0.0.1:8001/integrator/authorize?site=demo",
        client_id="c",
        redirect_uri="http://127.0.0.1/cb",
        scopes=["api:read"],
        state="x",
        code_challenge=challenge,
    )

    query = parse_qs(urlsplit(url).query)
    assert query["site"] == ["demo"]
    assert query["code_challenge"] == [challenge]
    assert query["code_challenge_method"] == ["S256"]


def test_make_pkce_pair_gives_a_valid_s256_pair():
    verifier, challenge = make_pkce_pair()

    digest = hashlib.sha256(verifier.encode()).digest()
    assert 43 <= len(verifier) <= 128
    assert challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert make_pkce_pair()[0] != verifier


def test_exchange_code_posts_the_form_and_reads_the_answer(stub):
    stub.reply(200, token_answer())
    before = datetime.now(UTC)

    tokens = exchange(stub, code_verifier="v" * 50)

    sent = stub.requests[0]
    assert sent["method"] == "POST"
    assert sent["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(sent["body"].decode()) == {
        "grant_type": ["authorization_code"],
        "code": ["the-code"],
        "redirect_uri": ["http://127.0.0.1:8000/cinc/callback/"],
        "client_id": ["cinc-portal-dev"],
        "client_secret": ["cinc-portal-dev-secret"],
        "code_verifier": ["v" * 50],
    }
    assert tokens.access_token == ACCESS
    assert tokens.refresh_token == REFRESH
    assert tokens.scopes == ("api:read", "api:create")
    assert tokens.token_type == "bearer"
    assert tokens.expires_at.tzinfo is not None
    assert before + timedelta(seconds=3590) < tokens.expires_at
    assert tokens.expires_at < before + timedelta(seconds=3610)


def test_exchange_code_accepts_the_documented_envelope(stub):
    stub.reply(200, {"body": token_answer(scope="api:read"), "header": {}})

    tokens = exchange(stub)

    assert tokens.access_token == ACCESS
    assert tokens.scopes == ("api:read",)


def test_answer_without_scope_or_expiry_uses_defaults(stub):
    stub.reply(200, token_answer(scope=None, expires_in=None, token_type=None))

    tokens = exchange(stub)

    remaining = tokens.expires_at - datetime.now(UTC)
    assert tokens.scopes is None
    assert tokens.token_type == "bearer"
    assert timedelta(seconds=3590) < remaining <= timedelta(seconds=3600)


def test_refresh_tokens_posts_the_refresh_grant(stub):
    stub.reply(200, token_answer(access_token="acc-2", refresh_token="ref-2"))

    with requests.Session() as session:
        tokens = refresh_tokens(
            session,
            stub.url + "/integrator/token",
            client_id="cinc-portal-dev",
            client_secret="cinc-portal-dev-secret",
            refresh_token=REFRESH,
            timeout=2,
        )

    assert parse_qs(stub.requests[0]["body"].decode()) == {
        "grant_type": ["refresh_token"],
        "refresh_token": [REFRESH],
        "client_id": ["cinc-portal-dev"],
        "client_secret": ["cinc-portal-dev-secret"],
    }
    assert (tokens.access_token, tokens.refresh_token) == ("acc-2", "ref-2")


def test_refresh_without_a_new_refresh_token_keeps_the_old_one(stub):
    stub.reply(200, token_answer(access_token="acc-2", refresh_token=None))

    tokens = refresh_tokens(
        None,
        stub.url,
        client_id="c",
        client_secret="s",
        refresh_token=REFRESH,
        timeout=2,
    )

    assert tokens.refresh_token == REFRESH


@pytest.mark.parametrize(
    "body",
    [
        token_answer(access_token=None),
        token_answer(access_token=""),
        ["not", "an", "object"],
        "<html>maintenance</html>" * 50,
    ],
)
def test_answer_without_an_access_token_is_malformed(stub, body):
    stub.reply(200, body)

    with pytest.raises(MalformedResponse) as caught:
        exchange(stub)

    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(
    "error, permanent",
    [
        ("invalid_grant", True),
        ("invalid_client", True),
        ("unauthorized_client", True),
        ("invalid_request", False),
        ("invalid_scope", False),
    ],
)
def test_refused_grant_raises_oauth_error(stub, error, permanent):
    stub.reply(400, {"error": error, "error_description": "refused here"})

    with pytest.raises(OAuthError) as caught:
        exchange(stub)

    assert caught.value.error == error
    assert caught.value.permanent is permanent
    assert caught.value.status == 400
    assert "refused here" in str(caught.value)


def test_refusal_that_echoes_a_secret_does_not_repeat_it(stub):
    stub.reply(400, {"error": "invalid_grant", "error_description": f"bad {REFRESH}"})

    with pytest.raises(OAuthError) as caught:
        refresh_tokens(
            None, stub.url, client_id="c", client_secret="s", refresh_token=REFRESH
        )

    assert REFRESH not in str(caught.value)
    assert caught.value.permanent is True


def test_refusal_without_json_is_a_temporary_oauth_error(stub):
    stub.reply(401, "Unauthorized")

    with pytest.raises(OAuthError) as caught:
        exchange(stub)

    assert caught.value.error == "http_401"
    assert caught.value.permanent is False


def test_server_error_at_the_token_endpoint_is_an_upstream_error(stub):
    stub.reply(503, "Service Unavailable")

    with pytest.raises(UpstreamError) as caught:
        exchange(stub)

    assert caught.value.kind == "server_error"
    assert caught.value.status == 503


def test_token_endpoint_timeout_is_an_upstream_error(stub):
    stub.reply(200, token_answer(), delay=1.0)

    with pytest.raises(UpstreamError) as caught:
        exchange(stub, timeout=(1, 0.2))

    assert caught.value.kind == "timeout"


def test_unreachable_token_endpoint_is_a_connection_error(closed_port):
    with pytest.raises(UpstreamError) as caught:
        exchange_code(
            None,
            f"http://127.0.0.1:{closed_port}/integrator/token",
            client_id="c",
            client_secret="s",
            code="x",
            redirect_uri="http://127.0.0.1/cb",
            timeout=1,
        )

    assert caught.value.kind == "connection"


def test_token_set_repr_and_str_hide_both_tokens():
    tokens = TokenSet(
        access_token=ACCESS,
        refresh_token=REFRESH,
        expires_at=datetime(2030, 1, 1, tzinfo=UTC),
        scopes=("api:read",),
    )

    for text in (repr(tokens), str(tokens), f"{tokens}", f"{[tokens]}"):
        assert ACCESS not in text
        assert REFRESH not in text
        assert "api:read" in text
