"""Typed errors raised by the CINC client.

Every error is a ``CincError``. Messages carry the HTTP status, the endpoint
name and, when the upstream answer gave one, a short error code and message,
so the portal can store ``str(error)`` as a sync run's ``last_error``.

A message never contains an access token, a refresh token, an
``Authorization`` header or a whole upstream body: upstream text is cut to
``MAX_DETAIL`` characters by ``shorten`` and callers that know a secret pass
it to ``redact`` first.
"""

from __future__ import annotations

from datetime import datetime

MAX_DETAIL = 200


def shorten(text: object, limit: int = MAX_DETAIL) -> str:
    """Return ``text`` on one line, cut to ``limit`` characters."""
    flat = " ".join(str(text).split())
    if len(flat) <= limit:
        return flat
    return flat[: limit - 1] + "…"


def redact(text: str, *secrets: str | None) -> str:
    """Replace every non-empty secret found in ``text`` with a marker."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


class CincError(Exception):
    """Base class for everything the CINC client raises."""

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        endpoint: str | None = None,
        code: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.status = status
        self.endpoint = endpoint
        self.code = code
        self.detail = shorten(detail) if detail else None
        super().__init__(self._compose(message))

    def _compose(self, message: str) -> str:
        parts = []
        if self.endpoint:
            parts.append(f"CINC {self.endpoint}")
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        head = " ".join(parts)
        tail = message or type(self).__name__
        if self.code:
            tail = f"{tail} [{self.code}]"
        if self.detail:
            tail = f"{tail}: {self.detail}"
        return f"{head}: {tail}" if head else tail


class Unauthorized(CincError):
    """401: the access token was refused, also after one refresh."""


class Forbidden(CincError):
    """403 that is neither a missing scope nor a missing broker role."""


class MissingScope(Forbidden):
    """403 insufficient_scope: the token lacks the scope the call needs."""

    def __init__(self, message: str = "", *, scope_required=None, **kwargs) -> None:
        self.scope_required = scope_required
        if scope_required and not message:
            message = f"scope {scope_required} is required"
        super().__init__(message, **kwargs)


class NotBroker(Forbidden):
    """403 not_broker: the person who consented is not a broker."""


class NotFound(CincError):
    """404: the agent or lead does not exist (any more)."""


class DuplicateEmail(CincError):
    """409: a lead with this email already exists on the site."""

    def __init__(self, message: str = "", *, existing_id=None, **kwargs) -> None:
        self.existing_id = existing_id
        super().__init__(message, **kwargs)


class InvalidFields(CincError):
    """400/422: the upstream refused some fields.

    ``errors`` is a list of ``(field path, message)`` pairs as given upstream;
    the field path is ``""`` when the upstream did not name a field.
    """

    def __init__(self, message: str = "", *, errors=(), **kwargs) -> None:
        self.errors: list[tuple[str, str]] = list(errors)
        if not message and self.errors:
            message = "; ".join(
                f"{field}: {text}" if field else text for field, text in self.errors
            )
            message = shorten(message)
        super().__init__(message, **kwargs)


class RateLimited(CincError):
    """The call was not made (or was refused with 429) because of rate limits.

    ``retry_at`` (aware UTC datetime) and ``retry_after`` (seconds) tell when
    to try again; ``from_server`` is True for a 429 answer and False when our
    own limiter would have had to wait longer than allowed.
    """

    def __init__(
        self,
        message: str = "",
        *,
        retry_at: datetime | None = None,
        retry_after: float | None = None,
        from_server: bool = False,
        **kwargs,
    ) -> None:
        self.retry_at = retry_at
        self.retry_after = retry_after
        self.from_server = from_server
        if not message:
            who = "server answered 429" if from_server else "local limiter"
            message = f"rate limited ({who})"
            if retry_after is not None:
                message = f"{message}, retry in {retry_after:.1f}s"
        super().__init__(message, **kwargs)


UPSTREAM_KINDS = frozenset({"server_error", "timeout", "connection"})


class UpstreamError(CincError):
    """5xx answers, timeouts and connection failures (``kind`` says which)."""

    def __init__(self, message: str = "", *, kind: str = "server_error", **kwargs):
        if kind not in UPSTREAM_KINDS:
            raise ValueError(f"unknown upstream error kind {kind!r}")
        self.kind = kind
        super().__init__(message or kind.replace("_", " "), **kwargs)


class MalformedResponse(CincError):
    """The answer was not JSON or not of the documented shape."""


class OAuthError(CincError):
    """The token endpoint refused a grant.

    ``error`` is the OAuth error code (``invalid_grant`` ...). ``permanent`` is
    True when retrying cannot help and the broker must connect again.
    """

    PERMANENT = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})

    def __init__(self, message: str = "", *, error: str = "", **kwargs) -> None:
        self.error = error
        self.permanent = error in self.PERMANENT
        kwargs.setdefault("code", error or None)
        super().__init__(message or "token request refused", **kwargs)


class RecordError(CincError):
    """One agent or lead record could not be parsed."""

    def __init__(self, message: str = "", *, record_id=None, **kwargs) -> None:
        self.record_id = record_id
        if record_id:
            message = f"record {shorten(record_id, 80)}: {message}"
        super().__init__(message, **kwargs)
