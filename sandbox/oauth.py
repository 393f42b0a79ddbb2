"""The authorization server: ``/integrator/authorize`` and ``/integrator/token``.

The authorize page signs a sandbox agent in and asks them to approve the
requested scopes; approving redirects back with a single-use code bound to the
client, redirect URI, granted scopes, agent and PKCE challenge. The token
endpoint exchanges codes and rotating refresh tokens (RFC 6749 errors).
"""

import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
import time
import urllib.parse

from sandbox import pages
from sandbox.store import secret_hash
from sandbox.web import add_query, html_response, json_response, redirect

logger = logging.getLogger(__name__)

AUTHORIZE_PATH = "/integrator/authorize"
TOKEN_PATH = "/integrator/token"  # noqa: S105 - a URL path
KNOWN_SCOPES = ("api:read", "api:create", "api:update", "api:delete", "api:event")
DEFAULT_SCOPE = "api:read"
VERIFIER_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def handle(app, request):
    if request.path == AUTHORIZE_PATH:
        app.stats.bump("requests", "authorize")
        if request.method == "GET":
            return authorize_get(app, request)
        if request.method == "POST":
            return authorize_post(app, request)
        return html_response(405, pages.error_page("Not allowed", "Use GET or POST."))
    if request.path == TOKEN_PATH:
        app.stats.bump("requests", "token")
        if request.method != "POST":
            return _token_error(app, 405, "invalid_request", "use POST")
        return token(app, request)
    return json_response(404, {"error": "not_found"})


# -- authorize ---------------------------------------------------------------


class _Params:
    """Authorize parameters: the posted form first, then the query string."""

    def __init__(self, request):
        self.form = request.form() if request.method == "POST" else {}
        self.query = request.query

    def get(self, name):
        values = self.form.get(name) or self.query.get(name)
        return values[0] if values else None

    def requested_scope(self):
        values = self.form.get("requested_scope") or self.query.get("scope")
        return values[0] if values else None

    def chosen_scopes(self):
        chosen = set()
        for value in self.form.get("scope", []):
            chosen.update(value.split())
        return chosen


def _check_authorize(app, params):
    """(error response or None, requested scopes)."""
    client = app.client
    client_id = params.get("client_id")
    redirect_uri = params.get("redirect_uri")
    if not client_id or client_id != client.client_id:
        page = pages.error_page(
            "Unknown application", "The client_id is not registered."
        )
        return html_response(400, page), None
    if not redirect_uri or redirect_uri not in client.redirect_uris:
        page = pages.error_page(
            "Invalid redirect URI",
            "The redirect_uri is missing or not registered for this application.",
        )
        return html_response(400, page), None

    def fail(error, description):
        return redirect(
            add_query(
                redirect_uri,
                {
                    "error": error,
                    "error_description": description,
                    "state": params.get("state"),
                },
            )
        ), None

    if params.get("response_type") != "code":
        return fail("unsupported_response_type", "response_type must be code")
    requested = (params.requested_scope() or DEFAULT_SCOPE).split()
    unknown = [scope for scope in requested if scope not in KNOWN_SCOPES]
    if unknown:
        return fail("invalid_scope", "unknown scope requested")
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if challenge is not None or method is not None:
        if method != "S256":
            return fail("invalid_request", "code_challenge_method must be S256")
        if not challenge or not VERIFIER_RE.match(challenge):
            return fail("invalid_request", "code_challenge is malformed")
    return None, list(dict.fromkeys(requested))


def _consent(app, params, requested, *, granted, username=None, message=None):
    hidden = {
        name: params.get(name)
        for name in (
            "client_id",
            "response_type",
            "redirect_uri",
            "state",
            "code_challenge",
            "code_challenge_method",
        )
    }
    hidden["requested_scope"] = " ".join(requested)
    html = pages.consent_page(
        client_id=app.client.client_id,
        hidden=hidden,
        requested=requested,
        granted=granted,
        username=username,
        message=message,
    )
    return html_response(200, html, {"Cache-Control": "no-store"})


def authorize_get(app, request):
    params = _Params(request)
    error, requested = _check_authorize(app, params)
    if error is not None:
        return error
    return _consent(app, params, requested, granted=set(requested))


def authorize_post(app, request):
    params = _Params(request)
    error, requested = _check_authorize(app, params)
    if error is not None:
        return error
    redirect_uri = params.get("redirect_uri")
    state = params.get("state")
    if params.get("deny") is not None:
        return redirect(
            add_query(redirect_uri, {"error": "access_denied", "state": state})
        )

    username = (params.get("username") or "").strip()
    chosen = params.chosen_scopes()
    granted = [scope for scope in requested if scope in chosen]
    login = app.store.agent_login(username)
    password_hash = secret_hash(params.get("password") or "")
    if login is None or not hmac.compare_digest(login[2], password_hash):
        return _consent(
            app,
            params,
            requested,
            granted=chosen,
            username=username,
            message="Wrong email or password.",
        )
    if not granted:
        return _consent(
            app,
            params,
            requested,
            granted=chosen,
            username=username,
            message="Choose at least one permission to allow, or deny.",
        )

    site, agent_id = login[0], login[1]
    code = secrets.token_urlsafe(24)
    app.store.add_code(
        code,
        client_id=app.client.client_id,
        redirect_uri=redirect_uri,
        scope=" ".join(granted),
        site=site,
        agent_id=agent_id,
        challenge=params.get("code_challenge"),
        expires_at=time.time() + app.knobs.snapshot()["code_ttl"],
    )
    logger.info("consent approved: site=%s agent=%s", site, agent_id)
    return redirect(
        add_query(
            redirect_uri, {"code": code, "scope": " ".join(granted), "state": state}
        )
    )


# -- token -------------------------------------------------------------------


def _token_error(app, status, error, description, headers=None):
    app.stats.bump("token_errors")
    app.stats.bump("token_errors_by_code", error)
    logger.info("token error: %s (%s)", error, description)
    return json_response(
        status,
        {"error": error, "error_description": description},
        {**NO_STORE, **(headers or {})},
    )


def _first(form, name):
    values = form.get(name)
    return values[0] if values else None


def _client_credentials(request, form):
    """(client_id, secret) from HTTP Basic or the form; ValueError if garbled."""
    header = request.headers.get("Authorization") or ""
    if header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ValueError("malformed Basic credentials") from None
        client_id, _, secret = decoded.partition(":")
        client_id = urllib.parse.unquote_plus(client_id)
        secret = urllib.parse.unquote_plus(secret)
        form_id = _first(form, "client_id")
        if form_id is not None and form_id != client_id:
            raise ValueError("client_id differs from the Basic credentials")
        return client_id, secret
    return _first(form, "client_id"), _first(form, "client_secret")


def issue_tokens(app, *, scope, site, agent_id, grant_id, grant_type):
    ttl = app.knobs.snapshot()["token_ttl"]
    access = secrets.token_urlsafe(32)
    refresh = secrets.token_urlsafe(32)
    app.store.add_tokens(
        access=access,
        refresh=refresh,
        client_id=app.client.client_id,
        scope=scope,
        site=site,
        agent_id=agent_id,
        grant_id=grant_id,
        access_expires_at=time.time() + ttl,
    )
    if grant_type is not None:
        app.stats.bump("token_grants", grant_type)
    logger.info("tokens issued: grant=%s site=%s agent=%s", grant_type, site, agent_id)
    body = {
        "access_token": access,
        "token_type": "bearer",
        "expires_in": int(ttl),
        "refresh_token": refresh,
        "scope": scope,
    }
    return json_response(200, body, NO_STORE)


def pkce_challenge(verifier):
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _code_grant(app, form):
    code = _first(form, "code")
    redirect_uri = _first(form, "redirect_uri")
    if not code or not redirect_uri:
        return _token_error(app, 400, "invalid_request", "code and redirect_uri needed")
    row, fresh = app.store.redeem_code(code)
    if row is None:
        return _token_error(app, 400, "invalid_grant", "unknown code")
    if not fresh:
        app.store.revoke_grant(row["grant_id"])
        return _token_error(app, 400, "invalid_grant", "code was already used")
    if row["expires_at"] <= time.time():
        return _token_error(app, 400, "invalid_grant", "code has expired")
    if row["client_id"] != app.client.client_id:
        return _token_error(
            app, 400, "invalid_grant", "code was issued to another client"
        )
    if row["redirect_uri"] != redirect_uri:
        return _token_error(app, 400, "invalid_grant", "redirect_uri does not match")
    if row["challenge"]:
        verifier = _first(form, "code_verifier") or ""
        if not VERIFIER_RE.match(verifier) or not hmac.compare_digest(
            pkce_challenge(verifier), row["challenge"]
        ):
            return _token_error(app, 400, "invalid_grant", "PKCE verification failed")
    return issue_tokens(
        app,
        scope=row["scope"],
        site=row["site"],
        agent_id=row["agent_id"],
        grant_id=row["grant_id"],
        grant_type="authorization_code",
    )


def _refresh_grant(app, form):
    token_value = _first(form, "refresh_token")
    if not token_value:
        return _token_error(app, 400, "invalid_request", "refresh_token needed")
    info = app.store.refresh_token_info(token_value)
    if info is None or info["revoked"] or info["client_id"] != app.client.client_id:
        return _token_error(app, 400, "invalid_grant", "refresh token is not valid")
    scope = info["scope"]
    asked = _first(form, "scope")
    if asked:
        if not set(asked.split()) <= set(scope.split()):
            return _token_error(app, 400, "invalid_scope", "scope exceeds the grant")
        scope = " ".join(s for s in scope.split() if s in asked.split())
    row = app.store.use_refresh_token(token_value)
    if row is None:  # another request rotated it first
        return _token_error(app, 400, "invalid_grant", "refresh token is not valid")
    return issue_tokens(
        app,
        scope=scope,
        site=row["site"],
        agent_id=row["agent_id"],
        grant_id=row["grant_id"],
        grant_type="refresh_token",
    )


def token(app, request):
    knobs = app.knobs.snapshot()
    fault = knobs["token_fail"]
    if fault == "slow" and knobs["token_delay"] > 0:
        time.sleep(knobs["token_delay"])
    elif fault == "500":
        app.stats.bump("token_errors")
        app.stats.bump("token_errors_by_code", "server_error")
        return json_response(500, {"error": "server_error"}, NO_STORE)
    elif fault == "400":
        return _token_error(app, 400, "invalid_grant", "injected failure")

    form = request.form()
    try:
        client_id, client_secret = _client_credentials(request, form)
    except ValueError as exc:
        return _token_error(app, 400, "invalid_request", str(exc))
    client = app.client
    if (
        client_id != client.client_id
        or client_secret is None
        or not hmac.compare_digest(client_secret, client.client_secret)
    ):
        return _token_error(
            app,
            401,
            "invalid_client",
            "client authentication failed",
            {"WWW-Authenticate": 'Basic realm="cinc-sandbox"'},
        )
    grant_type = _first(form, "grant_type")
    if not grant_type:
        return _token_error(app, 400, "invalid_request", "grant_type is required")
    if grant_type == "authorization_code":
        return _code_grant(app, form)
    if grant_type == "refresh_token":
        return _refresh_grant(app, form)
    return _token_error(app, 400, "unsupported_grant_type", "grant_type not supported")
