import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sandbox.control import SandboxError

BROKER = "buum@cu.com"
AGENT = "agent@demo.test"
PASSWORD = "sandbox"


def query_of(url):
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def challenge_of(verifier):
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


VERIFIER = "v" * 30 + "-._~" + "x" * 20


# -- authorize ----------------------------------------------------------------


def test_authorize_page_shows_a_sign_in_form_with_scope_boxes(sb, http, authorize_url):
    page = http.get(authorize_url(), timeout=10)

    assert page.status_code == 200
    for marker in (
        'name="username"',
        'name="password"',
        'id="approve"',
        'id="deny"',
        'name="scope" id="scope-api-read" value="api:read" checked',
        'value="api:create" checked',
    ):
        assert marker in page.text


def test_authorize_page_escapes_reflected_input(sb, http, authorize_url):
    page = http.get(authorize_url(state='"><script>x()</script>'), timeout=10)

    assert "<script>x()" not in page.text
    assert "&lt;script&gt;x()" in page.text


def test_approve_redirects_with_code_scope_and_state(sb, authorize_url):
    callback = sb.control.approve(authorize_url(), BROKER, PASSWORD)

    assert callback.startswith(sb.redirect_uri + "?")
    params = query_of(callback)
    assert params["state"] == "state-123"
    assert params["scope"] == "api:read api:create"
    assert len(params["code"]) >= 20


def test_user_can_grant_fewer_scopes_than_asked(sb, authorize_url, exchange):
    callback = sb.control.approve(authorize_url(), BROKER, PASSWORD, ["api:read"])

    assert query_of(callback)["scope"] == "api:read"
    answer = exchange(
        grant_type="authorization_code",
        code=query_of(callback)["code"],
        redirect_uri=sb.redirect_uri,
    )
    assert answer.json()["scope"] == "api:read"


def test_deny_redirects_with_access_denied(sb, authorize_url):
    callback = sb.control.deny(authorize_url())

    assert query_of(callback) == {"error": "access_denied", "state": "state-123"}


def test_wrong_password_shows_the_form_again(sb, http, authorize_url):
    url = authorize_url()
    form = {
        "client_id": sb.client_id,
        "response_type": "code",
        "redirect_uri": sb.redirect_uri,
        "requested_scope": "api:read",
        "state": "s",
        "username": BROKER,
        "password": "wrong",
        "scope": "api:read",
        "approve": "1",
    }

    page = http.post(sb.authorize_url, data=form, allow_redirects=False, timeout=10)

    assert page.status_code == 200
    assert "Wrong email or password" in page.text
    assert f'value="{BROKER}"' in page.text
    with pytest.raises(SandboxError):
        sb.control.approve(url, BROKER, "wrong")


def test_no_scope_ticked_shows_the_form_again(sb, authorize_url):
    with pytest.raises(SandboxError):
        sb.control.approve(authorize_url(), BROKER, PASSWORD, scopes=[])


def test_unknown_client_gets_an_error_page_not_a_redirect(sb, http, authorize_url):
    page = http.get(authorize_url(client_id="intruder"), allow_redirects=False)

    assert page.status_code == 400
    assert "Location" not in page.headers
    assert "Unknown application" in page.text


def test_unregistered_redirect_uri_gets_an_error_page(sb, http, authorize_url):
    url = authorize_url(redirect_uri="https://evil.example/cb")

    page = http.get(url, allow_redirects=False, timeout=10)

    assert page.status_code == 400
    assert "Location" not in page.headers


def test_bad_response_type_redirects_with_an_error(sb, http, authorize_url):
    page = http.get(authorize_url(response_type="token"), allow_redirects=False)

    assert page.status_code == 302
    params = query_of(page.headers["Location"])
    assert params["error"] == "unsupported_response_type"
    assert params["state"] == "state-123"


def test_unknown_scope_redirects_with_invalid_scope(sb, http, authorize_url):
    page = http.get(
        authorize_url(scope="api:read api:everything"), allow_redirects=False
    )

    assert query_of(page.headers["Location"])["error"] == "invalid_scope"


def test_pkce_method_other_than_s256_is_refused(sb, http, authorize_url):
    url = authorize_url(code_challenge=VERIFIER, code_challenge_method="plain")

    page = http.get(url, allow_redirects=False, timeout=10)

    assert query_of(page.headers["Location"])["error"] == "invalid_request"


# -- token: authorization_code ---------------------------------------------------


def test_code_exchange_answers_the_documented_token_shape(sb, code_for, exchange):
    answer = exchange(
        grant_type="authorization_code", code=code_for(), redirect_uri=sb.redirect_uri
    )

    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "scope",
    }
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert answer.headers["Cache-Control"] == "no-store"


def test_code_works_only_once_and_reuse_revokes_its_tokens(sb, code_for, exchange, api):
    code = code_for()
    first = exchange(
        grant_type="authorization_code", code=code, redirect_uri=sb.redirect_uri
    )

    again = exchange(
        grant_type="authorization_code", code=code, redirect_uri=sb.redirect_uri
    )

    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert api("GET", "me", first.json()["access_token"]).status_code == 401


def test_expired_code_is_refused(sb, code_for, exchange):
    sb.control.config(code_ttl=0)
    code = code_for()

    answer = exchange(
        grant_type="authorization_code", code=code, redirect_uri=sb.redirect_uri
    )

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_code_is_bound_to_its_redirect_uri(sb, code_for, exchange):
    code = code_for()

    answer = exchange(
        grant_type="authorization_code", code=code, redirect_uri=sb.redirect_uris[1]
    )

    assert answer.json()["error"] == "invalid_grant"


def test_unknown_code_is_invalid_grant(sb, exchange):
    answer = exchange(
        grant_type="authorization_code", code="made-up", redirect_uri=sb.redirect_uri
    )

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_pkce_verifier_must_match_the_challenge(sb, code_for, exchange):
    challenge = {
        "code_challenge": challenge_of(VERIFIER),
        "code_challenge_method": "S256",
    }
    wrong_code = code_for(**challenge)
    missing_code = code_for(**challenge)
    right_code = code_for(**challenge)

    wrong = exchange(
        grant_type="authorization_code",
        code=wrong_code,
        redirect_uri=sb.redirect_uri,
        code_verifier="w" * 50,
    )
    missing = exchange(
        grant_type="authorization_code", code=missing_code, redirect_uri=sb.redirect_uri
    )
    right = exchange(
        grant_type="authorization_code",
        code=right_code,
        redirect_uri=sb.redirect_uri,
        code_verifier=VERIFIER,
    )

    assert wrong.json()["error"] == "invalid_grant"
    assert missing.json()["error"] == "invalid_grant"
    assert right.status_code == 200


def test_client_credentials_may_come_as_http_basic(sb, code_for, http):
    answer = http.post(
        sb.token_url,
        data={
            "grant_type": "authorization_code",
            "code": code_for(),
            "redirect_uri": sb.redirect_uri,
        },
        auth=(sb.client_id, sb.client_secret),
        timeout=10,
    )

    assert answer.status_code == 200


def test_wrong_client_secret_is_invalid_client(sb, code_for, exchange):
    answer = exchange(
        grant_type="authorization_code",
        code=code_for(),
        redirect_uri=sb.redirect_uri,
        client_secret="guess",
    )

    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"


def test_missing_and_unknown_grant_types_are_refused(sb, exchange):
    assert exchange().json()["error"] == "invalid_request"
    assert exchange(grant_type="password").json()["error"] == "unsupported_grant_type"


def test_token_endpoint_counts_grants_and_errors(sb, tokens, exchange):
    tokens()
    exchange(grant_type="password")

    stats = sb.control.stats()

    assert stats["token_grants"]["authorization_code"] == 1
    assert stats["token_errors"] == 1
    assert stats["requests"]["token"] == 2
    assert stats["requests"]["authorize"] == 1


# -- token: refresh_token --------------------------------------------------------


def test_refresh_rotates_the_refresh_token(sb, tokens, exchange, api):
    first = tokens()

    refreshed = exchange(
        grant_type="refresh_token", refresh_token=first["refresh_token"]
    )

    assert refreshed.status_code == 200
    body = refreshed.json()
    assert body["refresh_token"] != first["refresh_token"]
    assert body["access_token"] != first["access_token"]
    assert body["scope"] == first["scope"]
    assert api("GET", "me", body["access_token"]).status_code == 200


def test_old_refresh_token_is_refused_after_rotation(sb, tokens, exchange):
    first = tokens()
    exchange(grant_type="refresh_token", refresh_token=first["refresh_token"])

    reused = exchange(grant_type="refresh_token", refresh_token=first["refresh_token"])

    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"


def test_refresh_can_narrow_but_not_widen_the_scope(sb, tokens, exchange):
    narrow = tokens(scopes=["api:read"])

    widened = exchange(
        grant_type="refresh_token",
        refresh_token=narrow["refresh_token"],
        scope="api:read api:create",
    )

    assert widened.json()["error"] == "invalid_scope"


def test_revoked_refresh_token_is_invalid_grant(sb, tokens, exchange):
    first = tokens()
    sb.control.revoke_tokens(site="demo", agent="AGENT_MDID0")

    answer = exchange(grant_type="refresh_token", refresh_token=first["refresh_token"])

    assert answer.json()["error"] == "invalid_grant"


def test_non_broker_can_consent_too(sb, tokens, api):
    token = tokens(username=AGENT)["access_token"]

    me = api("GET", "me", token)

    assert me.status_code == 200
    assert me.json()["roles"] == ["client"]


def test_token_answers_are_not_logged(sb, tokens):
    body = tokens()

    log = open(sb.log_path, encoding="utf-8").read()

    assert body["access_token"] not in log
    assert body["refresh_token"] not in log


def test_token_endpoint_refuses_get(sb, http):
    answer = http.get(sb.token_url, timeout=10)

    assert answer.status_code == 405
    assert isinstance(answer.json(), dict)


def test_consent_page_ignores_unknown_method(sb):
    answer = requests.delete(sb.authorize_url, timeout=10)

    assert answer.status_code == 405
