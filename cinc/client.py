"""The CINC API client: one method per documented endpoint.

``CincClient`` wraps one reused ``requests`` session. It knows nothing of
Django: the portal hands it a ``token()`` provider, a ``refresh()`` callback
that refreshes the stored tokens (under the portal's row lock) and returns
the new access token, and optionally a shared ``RateLimiter``.

Every call:

1. reserves a slot from the limiter under ``"{limiter_prefix}:{endpoint}"``,
   sleeping up to ``max_wait`` seconds in all, else raising ``RateLimited``
   so a Celery task can reschedule itself;
2. sends the token (``Authorization: Bearer ...`` or the documentation's
   ``Bearer: ...`` header) with a timeout;
3. feeds the rate-limit headers (HTTP headers, or the ``header`` object of
   the documentation's ``{"body": ..., "header": ...}`` envelope) back to the
   limiter;
4. on 401 calls ``refresh()`` once and tries again once;
5. on 429 waits for the announced reset and tries again when that fits in
   ``max_wait``, else raises ``RateLimited``: a request is never dropped
   silently;
6. GETs are retried on 5xx, timeouts and connection failures with
   exponential backoff and full jitter (tenacity); POST is never retried
   after it may have reached the server;
7. validates the answer's shape before returning it, raising
   ``MalformedResponse`` otherwise, and maps other failures to the typed
   errors of ``cinc.errors``.

``on_event(kind, **info)`` is told of every ``request``, ``rate_limited``
(a 429), ``retry`` and ``wait`` (a limiter sleep), so the sync can count
them.

A client holds one ``requests`` session: use one client per thread (they
may share a ``RateLimiter``).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import requests
import tenacity

from .errors import (
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
    redact,
    shorten,
)
from .ratelimit import DEFAULT_MARGIN, DEFAULT_WINDOW, RateLimiter, parse_reset

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = (3.05, 20)
PAGE_SIZE = 500
MAX_PAGES = 2000
# Backoff between GET retries: a random time up to min(cap, base * 2**n).
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
# 429 answers in a row before a call gives up (each one also costs a wait).
MAX_429_IN_A_ROW = 5
# Limiter rounds per request; the wait budget normally ends the loop first.
MAX_LIMITER_ROUNDS = 100
TOKEN_HEADERS = ("authorization", "bearer")
RATE_HEADERS = ("x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset")


@dataclass(frozen=True)
class Page:
    """One page of agents or leads; ``items`` are the raw records."""

    items: list[dict]
    offset: int
    limit: int
    count: int
    next: str | None


@dataclass(frozen=True)
class CreateResult:
    """The id of the posted lead; ``created`` False means an existing lead
    was updated (CINC answered 200 rather than 201)."""

    id: str
    created: bool


@dataclass
class _Answer:
    status: int
    data: Any
    is_json: bool
    text: str
    headers: Any
    rate: dict[str, Any]


@dataclass
class _Call:
    endpoint: str
    method: str
    budget: float
    refreshed: bool = False
    rate_limited: int = 0


class CincClient:
    """A client for one CINC site on behalf of one broker."""

    def __init__(
        self,
        api_url: str,
        *,
        token: Callable[[], str],
        refresh: Callable[[], str] | None = None,
        limiter: RateLimiter | None = None,
        limiter_prefix: str = "",
        session: requests.Session | None = None,
        timeout=DEFAULT_TIMEOUT,
        token_header: str = "authorization",  # noqa: S107 - a header name
        max_wait: float = 10.0,
        get_retries: int = 4,
        retry_429: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        on_event: Callable[..., None] | None = None,
    ) -> None:
        if token_header not in TOKEN_HEADERS:
            raise ValueError(f"token_header must be one of {TOKEN_HEADERS}")
        if timeout is None:
            raise ValueError("every request needs a timeout")
        self.api_url = api_url.rstrip("/")
        self._token = token
        self._refresh = refresh
        self.limiter = limiter
        self.limiter_prefix = limiter_prefix
        self._own_session = session is None
        self.session = session if session is not None else requests.Session()
        self.timeout = timeout
        self.token_header = token_header
        self.max_wait = float(max_wait)
        self.get_retries = int(get_retries)
        self.retry_429 = retry_429
        self._sleep = sleep
        self._on_event = on_event
        # The last few tokens sent, only to scrub them from upstream text.
        self._recent_tokens: deque[str] = deque(maxlen=4)

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    def __enter__(self) -> CincClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # Endpoints.

    def me(self) -> dict:
        """Who consented: ``{"id", "username", "roles": [...]}`` and more."""
        answer = self._request("me", "GET", "/me")
        data = answer.data
        if not isinstance(data, dict):
            raise self._malformed("me", answer, "answer is not an object")
        if not isinstance(data.get("id"), str) or not data["id"]:
            raise self._malformed("me", answer, "answer has no id")
        username = data.get("username")
        if username is not None and not isinstance(username, str):
            raise self._malformed("me", answer, "username is not a string")
        roles = data.get("roles")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise self._malformed("me", answer, "roles is not a list of strings")
        return {**data, "username": username or "", "roles": list(roles)}

    def agents_page(self, offset: int = 0, limit: int = PAGE_SIZE) -> Page:
        """One page of raw agent records (for resumable walks)."""
        return self._page("agents", offset, limit)

    def leads_page(self, offset: int = 0, limit: int = PAGE_SIZE) -> Page:
        """One page of raw lead records (for resumable walks)."""
        return self._page("leads", offset, limit)

    def iter_agents(
        self, page_size: int = PAGE_SIZE, *, max_pages: int = MAX_PAGES
    ) -> Iterator[dict]:
        """Every agent once, walking by offset until a short or empty page.

        Raises ``MalformedResponse`` when a full page brings no new id (the
        server repeats itself) or after ``max_pages`` pages.
        """
        return self._walk(self.agents_page, "agents", page_size, max_pages)

    def iter_leads(
        self, page_size: int = PAGE_SIZE, *, max_pages: int = MAX_PAGES
    ) -> Iterator[dict]:
        """Every lead once; see ``iter_agents``."""
        return self._walk(self.leads_page, "leads", page_size, max_pages)

    def agent(self, agent_id: str) -> dict:
        """One raw agent record; ``NotFound`` if there is none."""
        return self._one("agent", "agents", agent_id)

    def lead(self, lead_id: str) -> dict:
        """One raw lead record; ``NotFound`` if there is none."""
        return self._one("lead", "leads", lead_id)

    def create_lead(self, payload: dict) -> CreateResult:
        """POST a lead (see ``records.lead_payload``).

        201 gives ``created=True``, 200 (an upsert updated an existing lead)
        ``created=False``; 409 raises ``DuplicateEmail``.
        """
        answer = self._request("lead_create", "POST", "/leads", body=payload)
        data = answer.data
        record = data.get("lead") if isinstance(data, dict) else None
        if not isinstance(record, dict):
            record = data
        lead_id = record.get("id") if isinstance(record, dict) else None
        if isinstance(lead_id, int) and not isinstance(lead_id, bool):
            lead_id = str(lead_id)
        if not isinstance(lead_id, str) or not lead_id:
            raise self._malformed(
                "lead_create", answer, "answer has no lead id (the lead may exist)"
            )
        return CreateResult(id=lead_id, created=answer.status == 201)

    # Pages and records.

    def _page(self, kind: str, offset: int, limit: int) -> Page:
        if offset < 0 or not 1 <= limit <= PAGE_SIZE:
            raise ValueError(f"offset >= 0 and 1 <= limit <= {PAGE_SIZE} required")
        params = {"offset": offset, "limit": limit}
        answer = self._request(kind, "GET", f"/{kind}", params=params)
        data = answer.data
        paging: Any = None
        if isinstance(data, dict):
            items = data.get(kind)
            paging = data.get("paging")
        else:
            items = data
        if not isinstance(items, list):
            raise self._malformed(kind, answer, f"answer has no list of {kind}")
        if not all(isinstance(item, dict) for item in items):
            raise self._malformed(kind, answer, f"{kind} holds a non-object")
        if paging is None:
            paging = {}
        if not isinstance(paging, dict):
            raise self._malformed(kind, answer, "paging is not an object")
        server_limit = _count(paging.get("limit"))
        next_ = paging.get("next")
        return Page(
            items=items,
            offset=_count(paging.get("offset"), offset),
            limit=min(limit, server_limit) if server_limit else limit,
            count=_count(paging.get("count"), len(items)),
            next=str(next_) if next_ not in (None, "") else None,
        )

    def _walk(self, fetch, kind: str, page_size: int, max_pages: int):
        seen: set[str] = set()
        offset = 0
        for _ in range(max_pages):
            page = fetch(offset, page_size)
            fresh = 0
            for item in page.items:
                item_id = item.get("id")
                if isinstance(item_id, str | int) and not isinstance(item_id, bool):
                    if str(item_id) in seen:
                        continue
                    seen.add(str(item_id))
                    fresh += 1
                yield item
            if len(page.items) < page.limit or not page.items:
                logger.debug(
                    "CINC %s walk done for %s: %s records",
                    kind,
                    self._label,
                    len(seen),
                )
                return
            if fresh == 0:
                raise MalformedResponse(
                    f"a full page at offset {offset} repeated known {kind}; "
                    "stopped paging",
                    endpoint=kind,
                )
            offset += len(page.items)
        raise MalformedResponse(
            f"stopped after {max_pages} pages of {kind}", endpoint=kind
        )

    def _one(self, endpoint: str, collection: str, record_id: str) -> dict:
        if not isinstance(record_id, str) or not record_id.strip():
            raise ValueError(f"{endpoint} id must be a non-empty string")
        path = f"/{collection}/{quote(record_id.strip(), safe='')}"
        answer = self._request(endpoint, "GET", path)
        data = answer.data
        record = data.get(endpoint) if isinstance(data, dict) else None
        if record is None and isinstance(data, dict) and "id" in data:
            record = data
        if not isinstance(record, dict):
            raise self._malformed(endpoint, answer, f"answer has no {endpoint}")
        return record

    # Requests.

    @property
    def _label(self) -> str:
        return self.limiter_prefix or "-"

    def _extra(self, endpoint: str) -> dict:
        return {"cinc_connection": self._label, "cinc_endpoint": endpoint}

    def _request(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        body: Any = None,
    ) -> _Answer:
        call = _Call(endpoint=endpoint, method=method, budget=self.max_wait)
        if method != "GET" or self.get_retries <= 0:
            return self._attempt(call, path, params, body)
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.get_retries + 1),
            wait=tenacity.wait_random_exponential(
                multiplier=BACKOFF_BASE, max=BACKOFF_CAP
            ),
            retry=tenacity.retry_if_exception_type(UpstreamError),
            sleep=self._sleep,
            before_sleep=lambda state: self._before_retry(call, state),
            reraise=True,
        )
        return retrying(self._attempt, call, path, params, body)

    def _before_retry(self, call: _Call, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        reason = getattr(error, "kind", "error")
        seconds = state.next_action.sleep if state.next_action else 0.0
        logger.warning(
            "CINC %s for %s failed (%s), retry %s in %.2fs",
            call.endpoint,
            self._label,
            reason,
            state.attempt_number,
            seconds,
            extra=self._extra(call.endpoint),
        )
        self._emit(
            "retry",
            endpoint=call.endpoint,
            reason=reason,
            attempt=state.attempt_number,
            seconds=seconds,
        )

    def _attempt(
        self, call: _Call, path: str, params: dict | None, body: Any
    ) -> _Answer:
        url = self.api_url + path
        token = None
        for _ in range(MAX_LIMITER_ROUNDS):
            self._acquire(call)
            if token is None:
                token = self._token()
            if token not in self._recent_tokens:
                self._recent_tokens.append(token)
            answer = self._send(call, url, params, body, token)
            token = None

            if answer.status == 401 and self._refresh and not call.refreshed:
                call.refreshed = True
                logger.info(
                    "CINC %s for %s: token refused, refreshing once",
                    call.endpoint,
                    self._label,
                    extra=self._extra(call.endpoint),
                )
                self._emit("retry", endpoint=call.endpoint, reason="unauthorized")
                token = self._refresh() or None
                continue
            if answer.status == 429:
                self._after_429(call, answer)
                continue
            if answer.status >= 400:
                raise self._error(call, answer)
            if not answer.is_json:
                raise self._malformed(call.endpoint, answer, "answer is not JSON")
            return answer
        raise RateLimited(endpoint=call.endpoint, detail="gave up waiting for a slot")

    def _acquire(self, call: _Call) -> None:
        if self.limiter is None:
            return
        key = self._key(call.endpoint)
        for _ in range(MAX_LIMITER_ROUNDS):
            wait = self._reserve(call, key)
            if wait <= 0:
                return
            if wait > call.budget:
                logger.info(
                    "CINC %s for %s: limiter wants %.1fs, more than allowed",
                    call.endpoint,
                    self._label,
                    wait,
                    extra=self._extra(call.endpoint),
                )
                raise RateLimited(
                    endpoint=call.endpoint,
                    retry_after=wait,
                    retry_at=_utc(time.time() + wait),
                    from_server=False,
                )
            self._emit("wait", endpoint=call.endpoint, seconds=wait)
            self._sleep(wait)
            call.budget -= wait
        raise RateLimited(endpoint=call.endpoint, detail="gave up waiting for a slot")

    def _reserve(self, call: _Call, key: str) -> float:
        """The limiter's answer; a store that fails (Redis down) stops the
        call before anything is sent, as a typed error."""
        try:
            return self.limiter.reserve(key)
        except CincError:
            raise
        except Exception as exc:
            logger.warning(
                "CINC %s for %s: rate-limit store failed (%s); not sent",
                call.endpoint,
                self._label,
                type(exc).__name__,
                extra=self._extra(call.endpoint),
            )
            raise CincError(
                f"not sent: the rate-limit store did not answer ({type(exc).__name__})",
                endpoint=call.endpoint,
            ) from None

    def _key(self, endpoint: str) -> str:
        return f"{self.limiter_prefix}:{endpoint}" if self.limiter_prefix else endpoint

    def _headers(self, token: str) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token_header == "bearer":  # noqa: S105 - a header name
            headers["Bearer"] = token
        else:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _send(self, call: _Call, url: str, params, body, token: str) -> _Answer:
        started = time.monotonic()
        try:
            response = self.session.request(
                call.method,
                url,
                params=params,
                json=body,
                headers=self._headers(token),
                timeout=self.timeout,
            )
        except requests.Timeout:
            self._failed(call, "timeout", started)
            detail = "the lead may have been created" if call.method == "POST" else None
            raise UpstreamError(
                kind="timeout", endpoint=call.endpoint, detail=detail
            ) from None
        except requests.RequestException as exc:
            self._failed(call, "connection", started)
            raise UpstreamError(
                kind="connection", endpoint=call.endpoint, detail=type(exc).__name__
            ) from None
        elapsed = time.monotonic() - started

        answer = _read(response)
        logger.debug(
            "CINC %s %s for %s -> %s in %.3fs",
            call.method,
            call.endpoint,
            self._label,
            answer.status,
            elapsed,
            extra=self._extra(call.endpoint),
        )
        self._emit(
            "request",
            endpoint=call.endpoint,
            method=call.method,
            status=answer.status,
            seconds=elapsed,
        )
        if self.limiter is not None:
            self._observe(call, answer, elapsed)
        return answer

    def _observe(self, call: _Call, answer: _Answer, elapsed: float) -> None:
        # The answer is already here: a store that fails now only loses what
        # the headers said, never the answer.
        try:
            self.limiter.observe(
                self._key(call.endpoint),
                limit=answer.rate.get("x-rate-limit-limit"),
                remaining=answer.rate.get("x-rate-limit-remaining"),
                reset_at=answer.rate["reset_at"],
                rate_limited=answer.status == 429,
                latency=elapsed,
            )
        except Exception as exc:
            logger.warning(
                "CINC %s for %s: rate-limit store failed (%s) after the answer",
                call.endpoint,
                self._label,
                type(exc).__name__,
                extra=self._extra(call.endpoint),
            )

    def _failed(self, call: _Call, kind: str, started: float) -> None:
        elapsed = time.monotonic() - started
        logger.warning(
            "CINC %s %s for %s: %s after %.2fs",
            call.method,
            call.endpoint,
            self._label,
            kind,
            elapsed,
            extra=self._extra(call.endpoint),
        )
        self._emit(
            "request",
            endpoint=call.endpoint,
            method=call.method,
            status=None,
            error=kind,
            seconds=elapsed,
        )

    def _after_429(self, call: _Call, answer: _Answer) -> None:
        """Wait for the announced reset, or raise RateLimited."""
        call.rate_limited += 1
        now = time.time()
        reset = answer.rate["reset_at"]
        if reset is None or reset <= now:
            window = self.limiter.window if self.limiter else DEFAULT_WINDOW
            reset = now + window
        margin = self.limiter.margin if self.limiter else DEFAULT_MARGIN
        wait = reset - now + margin
        logger.warning(
            "CINC %s for %s answered 429; reset in %.2fs",
            call.endpoint,
            self._label,
            wait,
            extra=self._extra(call.endpoint),
        )
        self._emit("rate_limited", endpoint=call.endpoint, retry_after=wait)
        too_many = call.rate_limited > MAX_429_IN_A_ROW
        if not self.retry_429 or wait > call.budget or too_many:
            raise RateLimited(
                from_server=True,
                status=429,
                endpoint=call.endpoint,
                retry_at=_utc(reset),
                retry_after=wait,
            )
        if self.limiter is None:
            # With a limiter, its block makes the next reserve wait instead.
            self._emit("wait", endpoint=call.endpoint, seconds=wait)
            self._sleep(wait)
            call.budget -= wait

    # Errors.

    def _clean(self, text: str | None) -> str | None:
        if not text:
            return None
        return shorten(redact(str(text), *self._recent_tokens))

    def _malformed(self, endpoint: str, answer: _Answer, why: str) -> CincError:
        logger.warning(
            "CINC %s for %s: malformed answer (%s)",
            endpoint,
            self._label,
            why,
            extra=self._extra(endpoint),
        )
        # The body itself is never quoted: it can hold leads' contact
        # details, and the message reaches logs and the broker's pages.
        size = None if answer.is_json else f"{len(answer.text)} characters"
        return MalformedResponse(
            why, status=answer.status, endpoint=endpoint, detail=size
        )

    def _error(self, call: _Call, answer: _Answer) -> CincError:
        status, endpoint = answer.status, call.endpoint
        data = answer.data if isinstance(answer.data, dict) else {}
        code, message = _error_code(data)
        kwargs = {
            "status": status,
            "endpoint": endpoint,
            "code": shorten(code, 60) if code else None,
            "detail": self._clean(message),
        }
        if status >= 500:
            logger.warning(
                "CINC %s for %s answered %s",
                endpoint,
                self._label,
                status,
                extra=self._extra(endpoint),
            )
            return UpstreamError(kind="server_error", **kwargs)
        if status == 401:
            return Unauthorized("access token refused", **kwargs)
        if status == 403:
            challenge = str(answer.headers.get("www-authenticate") or "")
            if code == "insufficient_scope" or "insufficient_scope" in challenge:
                scope = _required_scope(data, challenge)
                return MissingScope(scope_required=scope, **kwargs)
            if code == "not_broker":
                return NotBroker("the consenting agent is not a broker", **kwargs)
            return Forbidden("forbidden", **kwargs)
        if status == 404:
            return NotFound("not found", **kwargs)
        if status == 409:
            existing = _existing_id(data)
            return DuplicateEmail(
                "a lead with this email already exists", existing_id=existing, **kwargs
            )
        if status in (400, 422):
            errors = [
                (field, self._clean(text) or "") for field, text in _field_errors(data)
            ]
            if not errors and kwargs["detail"]:
                errors = [("", kwargs["detail"])]
            return InvalidFields(errors=errors, **kwargs)
        return CincError("unexpected answer", **kwargs)

    def _emit(self, kind: str, **info: Any) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(kind, **info)
        except Exception:
            logger.exception("CINC on_event callback failed for %s", kind)


# Reading answers.


def _read(response: requests.Response) -> _Answer:
    content = response.content or b""
    text = content[:1000].decode("utf-8", "replace")
    try:
        data = json.loads(content) if content.strip() else None
        is_json = bool(content.strip())
    except ValueError:
        data, is_json = None, False

    envelope: dict = {}
    if (
        isinstance(data, dict)
        and "body" in data
        and set(data) <= {"body", "header", "headers"}
    ):
        header = data.get("header", data.get("headers"))
        if isinstance(header, dict):
            envelope = {str(k).lower(): v for k, v in header.items()}
        data = data["body"]

    rate = {}
    for name in RATE_HEADERS:
        value = response.headers.get(name)
        rate[name] = value if value is not None else envelope.get(name)
    # For a 429, Retry-After (when given) is the server's word on this very
    # answer; otherwise the window's reset time tells when room returns.
    now = time.time()
    reset_at = parse_reset(rate["x-rate-limit-reset"], now)
    if response.status_code == 429:
        retry_after = response.headers.get("retry-after", envelope.get("retry-after"))
        reset_at = _retry_after(retry_after, now) or reset_at
    rate["reset_at"] = reset_at
    return _Answer(
        status=response.status_code,
        data=data,
        is_json=is_json,
        text=text,
        headers=response.headers,
        rate=rate,
    )


def _error_code(data: dict) -> tuple[str | None, str | None]:
    error = data.get("error")
    code = data.get("code")
    message = data.get("error_description") or data.get("message")
    if isinstance(error, dict):
        code = code or error.get("code")
        message = message or error.get("message") or error.get("description")
    elif isinstance(error, str):
        if code is None:
            code = error
        elif message is None:
            message = error
    code = code if isinstance(code, str) and code else None
    message = message if isinstance(message, str) and message else None
    return code, message


def _required_scope(data: dict, challenge: str) -> str | None:
    for key in ("scope_required", "required_scope", "scope"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, list) and value:
            return " ".join(str(v) for v in value)
    match = re.search(r'scope="([^"]*)"', challenge)
    return match.group(1) if match else None


def _existing_id(data: dict) -> str | None:
    candidates = [data.get("existing_id"), data.get("lead_id"), data.get("id")]
    for key in ("lead", "error", "existing"):
        nested = data.get(key)
        if isinstance(nested, dict):
            candidates += [nested.get("existing_id"), nested.get("id")]
    for value in candidates:
        if isinstance(value, str) and value:
            return value
    return None


def _field_errors(data: dict) -> list[tuple[str, str]]:
    raw = data.get("errors")
    if raw is None and isinstance(data.get("error"), dict):
        raw = data["error"].get("errors") or data["error"].get("fields")
    if raw is None:
        raw = data.get("fields")
    errors: list[tuple[str, str]] = []
    if isinstance(raw, dict):
        for field, text in raw.items():
            texts = text if isinstance(text, list) else [text]
            errors += [(str(field), str(t)) for t in texts]
    elif isinstance(raw, list):
        for item in raw:
            if isinstance(item, dict):
                field = item.get("field") or item.get("path") or item.get("loc") or ""
                if isinstance(field, list):
                    field = ".".join(str(part) for part in field)
                text = item.get("message") or item.get("msg") or item.get("error")
                errors.append((str(field), str(text or "invalid")))
            elif isinstance(item, str):
                errors.append(("", item))
    return errors


def _retry_after(value: Any, now: float) -> float | None:
    """Parse ``Retry-After``: delta-seconds or an HTTP date."""
    if not value:
        return None
    reset = parse_reset(value, now)
    if reset is not None:
        return reset
    try:
        return parsedate_to_datetime(str(value)).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _count(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value if value >= 0 else default
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return default


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
