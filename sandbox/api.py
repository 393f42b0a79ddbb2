"""The CINC API: ``/v2/site/me``, ``agents``, ``leads`` (also under ``/site/``).

Order of checks for every call: bearer token (401), rate-limit window (429),
injected faults (early 429, 5xx, slow answers), scope and broker role (403),
then the endpoint. Every answer carries the ``x-rate-limit-*`` headers.
"""

import datetime as dt
import hashlib
import logging
import re
import secrets
import time
import urllib.parse

from sandbox.store import DuplicateEmail, DuplicateId
from sandbox.validation import lead_errors, normalise_lead
from sandbox.web import JSON_TYPE, Response, to_json

logger = logging.getLogger(__name__)

API_PREFIXES = ("/v2/site/", "/site/")
DEFAULT_LIMIT = 10
MAX_LIMIT = 500
MAX_OFFSET = 2**62
NUMBER_RE = re.compile(r"^[0-9]+$")
LIST_ENDPOINTS = ("agents", "leads")


def is_api_path(path):
    return path.startswith(API_PREFIXES) or path in ("/v2/site", "/site")


class ApiError(Exception):
    def __init__(self, status, body, headers=None):
        super().__init__(body.get("error"))
        self.status = status
        self.body = body
        self.headers = headers or {}


# -- routing -----------------------------------------------------------------


def _route(request):
    """(endpoint name, handler, path argument); endpoint None if no route."""
    path = request.path
    for prefix in API_PREFIXES:
        if path.startswith(prefix):
            rest = path[len(prefix) :].strip("/")
            break
    else:
        rest = ""
    parts = rest.split("/") if rest else []
    method = request.method
    if parts == ["me"]:
        return ("me", me, None) if method == "GET" else (None, 405, None)
    if parts and parts[0] in ("agents", "leads"):
        kind = parts[0]
        if len(parts) == 1:
            if method == "GET":
                return kind, list_page, kind
            if method == "POST" and kind == "leads":
                return "lead_create", lead_create, None
            return None, 405, None
        if len(parts) == 2 and parts[1]:
            record_id = urllib.parse.unquote(parts[1])
            if method == "GET":
                return kind[:-1], one_record, (kind, record_id)
            return None, 405, None
    return None, 404, None


def _bearer_token(request):
    header = (request.headers.get("Authorization") or "").strip()
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    documented = (request.headers.get("Bearer") or "").strip()
    return documented or None


def _answer(status, text, rate_headers, knobs, extra_headers=None):
    if knobs["envelope"]:
        text = f'{{"body":{text},"header":{to_json(rate_headers)}}}'
    headers = {name: str(value) for name, value in rate_headers.items()}
    headers.update(extra_headers or {})
    return Response(status, text.encode("utf-8"), JSON_TYPE, headers)


def _error(status, body, rate_headers, knobs, extra_headers=None):
    return _answer(status, to_json(body), rate_headers, knobs, extra_headers)


def _injected_failure(app, rate_headers):
    status = app.choice((500, 502, 503))
    headers = {name: str(value) for name, value in rate_headers.items()}
    if status == 500:
        return Response(500, b'{"error":"internal_error"}', JSON_TYPE, headers)
    if status == 502:
        body = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        return Response(502, body, "text/html", headers)
    headers["Retry-After"] = "1"
    return Response(503, b"Service Unavailable", "text/plain", headers)


def handle(app, request):
    knobs = app.knobs.snapshot()
    endpoint, handler, argument = _route(request)
    if endpoint is None:
        rate = app.limiter.peek().headers(knobs["reset_format"])
        if handler == 405:
            return _error(405, {"error": "method_not_allowed"}, rate, knobs)
        return _error(404, {"error": "not_found"}, rate, knobs)
    app.stats.bump("requests", endpoint)
    if knobs["latency"] > 0:
        time.sleep(knobs["latency"])

    token = _bearer_token(request)
    holder = app.store.access_token(token) if token else None
    if holder is None:
        app.stats.bump("unauthorized")
        rate = app.limiter.peek().headers(knobs["reset_format"])
        challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        return _error(401, {"error": "invalid_token"}, rate, knobs, challenge)

    decision = app.limiter.hit((holder["site"], endpoint))
    rate = decision.headers(knobs["reset_format"])
    if not decision.allowed:
        app.stats.bump("rate_limited", "window")
        retry = {"Retry-After": str(decision.retry_after())}
        return _error(429, {"error": "rate_limited"}, rate, knobs, retry)
    if app.chance(knobs["early_429_rate"]):
        app.stats.bump("rate_limited", "early")
        return _error(429, {"error": "rate_limited"}, rate, knobs, {"Retry-After": "1"})
    if app.chance(knobs["fail_rate"]):
        app.stats.bump("injected_5xx")
        return _injected_failure(app, rate)
    if knobs["slow_seconds"] > 0 and app.chance(knobs["slow_rate"]):
        app.stats.bump("slow")
        time.sleep(knobs["slow_seconds"])

    required = "api:create" if endpoint == "lead_create" else "api:read"
    if required not in holder["scope"]:
        app.stats.bump("forbidden")
        challenge = {
            "WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{required}"'
        }
        body = {"error": "insufficient_scope", "scope_required": required}
        return _error(403, body, rate, knobs, challenge)
    if endpoint != "me" and "broker" not in holder["roles"]:
        app.stats.bump("forbidden")
        body = {"error": "not_broker", "message": "only brokers may use the API"}
        return _error(403, body, rate, knobs)

    try:
        status, text = handler(app, request, holder, argument, knobs)
    except ApiError as exc:
        return _error(exc.status, exc.body, rate, knobs, exc.headers)
    if endpoint in LIST_ENDPOINTS and app.chance(knobs["malformed_rate"]):
        app.stats.bump("malformed")
        cut = text.encode("utf-8")[: max(len(text) // 2, 1)]
        headers = {name: str(value) for name, value in rate.items()}
        return Response(200, cut, JSON_TYPE, headers)
    return _answer(status, text, rate, knobs)


# -- endpoints ---------------------------------------------------------------


def me(app, request, holder, argument, knobs):
    identity = app.store.agent_identity(holder["site"], holder["agent_id"])
    username, roles, record = identity
    contact = record.get("info", {}).get("contact", {})
    body = {
        "id": holder["agent_id"],
        "username": username,
        "roles": roles,
        "first_name": contact.get("first_name"),
        "last_name": contact.get("last_name"),
    }
    return 200, to_json(body)


def _number(request, name, default):
    raw = request.arg(name)
    if raw is None or raw.strip() == "":
        return default
    raw = raw.strip()
    if not NUMBER_RE.match(raw) or int(raw) > MAX_OFFSET:
        message = f"{name} must be a non-negative integer"
        raise ApiError(400, {"error": "invalid_request", "message": message})
    return int(raw)


def next_marker(site, kind, position):
    """An opaque 'hash code' for the next page (NOTES 6: do not rely on it)."""
    text = f"{site}:{kind}:{position}".encode()
    return hashlib.blake2s(text, digest_size=4).hexdigest()


def list_page(app, request, holder, kind, knobs):
    offset = _number(request, "offset", 0)
    limit = _number(request, "limit", DEFAULT_LIMIT)
    if limit < 1:
        message = "limit must be at least 1"
        raise ApiError(400, {"error": "invalid_request", "message": message})
    limit = min(limit, MAX_LIMIT)
    rows = app.store.page(kind, holder["site"], offset, limit)
    paging = {
        "offset": offset,
        "limit": limit,
        "count": len(rows),
        "next": next_marker(holder["site"], kind, offset + limit),
    }
    return 200, f'{{"paging":{to_json(paging)},"{kind}":[{",".join(rows)}]}}'


def one_record(app, request, holder, argument, knobs):
    kind, record_id = argument
    data = app.store.record(kind, holder["site"], record_id)
    if data is None:
        raise ApiError(404, {"error": "not_found"})
    return 200, f'{{"{kind[:-1]}":{data}}}'


def lead_create(app, request, holder, argument, knobs):
    site = holder["site"]
    try:
        body = request.json()
    except (ValueError, UnicodeDecodeError):
        message = "the body is not valid JSON"
        raise ApiError(400, {"error": "invalid_request", "message": message}) from None
    if not isinstance(body, dict):
        message = "the body must be a JSON object"
        raise ApiError(400, {"error": "invalid_request", "message": message})
    errors = lead_errors(body, lambda ids: app.store.existing_agent_ids(site, ids))
    if errors:
        raise ApiError(400, {"error": "invalid_fields", "errors": errors})

    now = dt.datetime.now(dt.UTC)
    status = None
    for _attempt in range(5):
        record = normalise_lead(body, f"LEAD_{secrets.token_hex(5)}", now)
        try:
            if knobs["upsert"]:
                created, lead_id = app.store.upsert_lead(site, record)
                status = 201 if created else 200
            else:
                app.store.insert_lead(site, record)
                lead_id, status = record["id"], 201
        except DuplicateId:
            continue
        except DuplicateEmail as exc:
            app.stats.bump("duplicates")
            body = {
                "error": "duplicate_email",
                "message": "a lead with this email already exists on the site",
                "lead": {"id": exc.existing_id},
            }
            raise ApiError(409, body) from None
        break
    if status is None:
        raise ApiError(500, {"error": "internal_error"})
    app.stats.bump("leads_created" if status == 201 else "leads_updated")
    logger.info("lead stored: site=%s lead=%s status=%s", site, lead_id, status)
    if knobs["post_stall_seconds"] > 0:
        time.sleep(knobs["post_stall_seconds"])
    return status, to_json({"lead": {"id": lead_id}})
