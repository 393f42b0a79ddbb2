"""OAuth2 authorization-code helpers for CINC's integrator endpoints.

``build_authorize_url`` makes the consent URL (with an optional PKCE S256
challenge from ``make_pkce_pair``); ``exchange_code`` and ``refresh_tokens``
post the documented form fields to the token endpoint and return a
``TokenSet``. Answers are accepted with or without the documentation's
``{"body": ..., "header": ...}`` envelope.

Errors: a refusal from the token endpoint raises ``OAuthError`` (``permanent``
for invalid_grant, invalid_client and unauthorized_client); timeouts,
connection failures and 5xx raise ``UpstreamError``; a 200 without an access
token raises ``MalformedResponse``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import requests

from .errors import (
    MalformedResponse,
    OAuthError,
    RateLimited,
    UpstreamError,
    redact,
    shorten,
)
from .ratelimit import parse_reset

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = (3.05, 20)
DEFAULT_EXPIRES_IN = 3600
ENDPOINT = "token"


@dataclass(frozen=True)
class TokenSet:
    """What the token endpoint granted. ``repr`` and ``str`` hide the tokens.

    ``scopes`` is None when the answer did not say which scopes were granted
    (the caller may then assume the requested ones).
    """

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime
    scopes: tuple[str, ...] | None
    token_type: str = "bearer"  # noqa: S105 - a token type, not a secret

    def __repr__(self) -> str:
        refresh = "None" if self.refresh_token is None else "'***'"
        return (
            f"TokenSet(access_token='***', refresh_token={refresh}, "
            f"expires_at={self.expires_at.isoformat()}, scopes={self.scopes!r}, "
            f"token_type={self.token_type!r})"
        )

    __str__ = __repr__


def make_pkce_pair() -> tuple[str, str]:
    """Return a PKCE (verifier, S256 challenge) pair."""
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier, challenge


def build_authorize_url(
    authorize_url: str,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: list[str],
    state: str,
    code_challenge: str | None = None,
) -> str:
    """Return the consent URL to redirect the broker's browser to."""
    params = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": " ".join(scopes),
        "state": state,
    }
    if code_challenge:
        params["code_challenge"] = code_challenge
        params["code_challenge_method"] = "S256"
    parts = urlsplit(authorize_url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def exchange_code(
    session: requests.Session | None,
    token_url: str,
    *,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    code_verifier: str | None = None,
    timeout=DEFAULT_TIMEOUT,
) -> TokenSet:
    """Trade an authorization code for tokens."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "client_secret": client_secret,
    }
    if code_verifier:
        form["code_verifier"] = code_verifier
    secrets_ = (code, client_secret, code_verifier)
    return _token_request(session, token_url, form, timeout, secrets_, None)


def refresh_tokens(
    session: requests.Session | None,
    token_url: str,
    *,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    timeout=DEFAULT_TIMEOUT,
) -> TokenSet:
    """Trade a refresh token for new tokens.

    When the answer holds no new refresh token, the one sent stays valid and
    is returned in the ``TokenSet``.
    """
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": client_id,
        "client_secret": client_secret,
    }
    secrets_ = (refresh_token, client_secret)
    return _token_request(session, token_url, form, timeout, secrets_, refresh_token)


def _token_request(session, token_url, form, timeout, secrets_, old_refresh):
    grant = form["grant_type"]
    post = session.post if session is not None else requests.post
    try:
        response = post(
            token_url,
            data=form,
            headers={"Accept": "application/json"},
            timeout=timeout,
        )
    except requests.Timeout:
        logger.warning("CINC token endpoint timed out (%s)", grant)
        raise UpstreamError(kind="timeout", endpoint=ENDPOINT) from None
    except requests.RequestException as exc:
        logger.warning(
            "CINC token endpoint unreachable (%s): %s", grant, type(exc).__name__
        )
        raise UpstreamError(
            kind="connection", endpoint=ENDPOINT, detail=type(exc).__name__
        ) from None

    status = response.status_code
    data = _json_or_none(response)
    logger.debug("CINC token endpoint answered %s (%s)", status, grant)
    if status >= 500:
        raise UpstreamError(kind="server_error", status=status, endpoint=ENDPOINT)
    if status == 429:
        retry_at = parse_reset(response.headers.get("x-rate-limit-reset"))
        retry_at = retry_at or parse_reset(response.headers.get("retry-after"))
        raise RateLimited(
            from_server=True,
            status=status,
            endpoint=ENDPOINT,
            retry_at=_as_datetime(retry_at),
            retry_after=_seconds_until(retry_at),
        )
    if status >= 400:
        error, description = _oauth_error(data, status)
        raise OAuthError(
            error=error,
            status=status,
            endpoint=ENDPOINT,
            detail=redact(description, *secrets_) if description else None,
        )
    if data is None:
        snippet = redact(response.text[:200], *secrets_)
        raise MalformedResponse(
            "token answer is not JSON", status=status, endpoint=ENDPOINT, detail=snippet
        )
    return _token_set(data, status, old_refresh)


def _json_or_none(response: requests.Response) -> Any:
    try:
        data = json.loads(response.content)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("body"), dict):
        if "access_token" not in data and "error" not in data:
            data = data["body"]
    return data


def _oauth_error(data: Any, status: int) -> tuple[str, str | None]:
    if not isinstance(data, dict):
        return f"http_{status}", None
    error = data.get("error")
    description = data.get("error_description") or data.get("message")
    if isinstance(error, dict):
        description = description or error.get("message")
        error = error.get("code")
    error = shorten(error, 60) if isinstance(error, str) and error else f"http_{status}"
    return error, shorten(description) if isinstance(description, str) else None


def _token_set(data: Any, status: int, old_refresh: str | None) -> TokenSet:
    if not isinstance(data, dict):
        raise MalformedResponse(
            "token answer is not an object", status=status, endpoint=ENDPOINT
        )
    access = data.get("access_token")
    if not isinstance(access, str) or not access:
        raise MalformedResponse(
            "token answer has no access_token", status=status, endpoint=ENDPOINT
        )
    refresh = data.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        refresh = old_refresh
    expires_in = _expires_in(data.get("expires_in"))
    scope = data.get("scope")
    if isinstance(scope, str):
        scopes = tuple(scope.replace(",", " ").split())
    elif isinstance(scope, list):
        scopes = tuple(s for s in scope if isinstance(s, str) and s)
    else:
        scopes = None
    token_type = data.get("token_type")
    return TokenSet(
        access_token=access,
        refresh_token=refresh,
        expires_at=datetime.now(UTC) + timedelta(seconds=expires_in),
        scopes=scopes,
        token_type=token_type.lower() if isinstance(token_type, str) else "bearer",
    )


def _expires_in(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return DEFAULT_EXPIRES_IN
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        logger.warning("CINC token answer has an unreadable expires_in; using 3600")
        return DEFAULT_EXPIRES_IN
    if not math.isfinite(seconds) or seconds < 0:
        return DEFAULT_EXPIRES_IN
    return seconds


def _as_datetime(epoch: float | None) -> datetime | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC)


def _seconds_until(epoch: float | None) -> float | None:
    if epoch is None:
        return None
    return max(0.0, epoch - datetime.now(UTC).timestamp())
