"""The control API under ``/_sandbox/``: knobs, stats and data changes.

Only loopback clients are served. Bodies are JSON objects; anything else is a
400. None of the API's faults, rate limits or latency apply here.
"""

import datetime as dt
import ipaddress
import json
import secrets
import time
import urllib.parse

from sandbox import oauth, seed
from sandbox.knobs import KnobError
from sandbox.store import DuplicateEmail, DuplicateId
from sandbox.validation import iso_z
from sandbox.web import json_response, raw_json_response

RESET_KEYS = ("agents", "leads", "seed", "second_site_agents", "second_site_leads")
MAX_RECORDS = 1_000_000


class ControlError(Exception):
    def __init__(self, status, error, message):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def is_loopback(address):
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _body(request):
    if not request.body.strip():
        return {}
    try:
        data = request.json()
    except (ValueError, UnicodeDecodeError):
        raise ControlError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ControlError(400, "invalid_json", "the body must be a JSON object")
    return data


def _only(data, allowed):
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ControlError(400, "unknown_keys", f"unknown keys: {', '.join(unknown)}")


def _count(data, key, low=0, high=MAX_RECORDS):
    value = data.get(key)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not low <= value <= high
    ):
        raise ControlError(
            400, "invalid_value", f"{key} must be an integer {low}..{high}"
        )
    return value


def _site(app, name):
    if name not in app.store.site_names():
        raise ControlError(404, "not_found", "no such site")
    return name


def handle(app, request):
    if not is_loopback(request.client_ip):
        body = {"error": "forbidden", "message": "the control API is loopback only"}
        return json_response(403, body)
    parts = [urllib.parse.unquote(p) for p in request.path.split("/") if p][1:]
    try:
        return _dispatch(app, request, parts)
    except ControlError as exc:
        return json_response(exc.status, {"error": exc.error, "message": exc.message})


def _dispatch(app, request, parts):
    method = request.method
    route = (method, *parts[:1])
    if route == ("GET", "health") and len(parts) == 1:
        return json_response(200, {"ok": True})
    if parts == ["config"]:
        if method == "GET":
            return json_response(200, app.knobs.snapshot())
        if method == "POST":
            try:
                return json_response(200, app.update_knobs(_body(request)))
            except KnobError as exc:
                raise ControlError(400, "invalid_knob", str(exc)) from None
    if parts == ["stats"] and method == "GET":
        return json_response(200, app.stats.snapshot())
    if parts == ["stats", "reset"] and method == "POST":
        app.stats.reset()
        return json_response(200, {"ok": True})
    if parts == ["ratelimit", "reset"] and method == "POST":
        app.limiter.reset()
        return json_response(200, {"ok": True})
    if parts == ["reset"] and method == "POST":
        return _reset(app, _body(request))
    if parts == ["sites"] and method == "GET":
        return json_response(200, {"sites": app.store.sites_summary()})
    if parts and parts[0] == "tokens" and method == "POST":
        return _tokens(app, parts[1:], _body(request))
    if len(parts) >= 3 and parts[0] == "sites" and parts[2] in ("leads", "agents"):
        return _records(app, request, parts[1], parts[2], parts[3:])
    raise ControlError(404, "not_found", "no such control endpoint")


def _reset(app, data):
    _only(data, RESET_KEYS)
    params = {key: _count(data, key, 0, MAX_RECORDS) for key in RESET_KEYS}
    started = time.perf_counter()
    used = app.reset(params)
    seconds = round(time.perf_counter() - started, 3)
    return json_response(200, {"ok": True, "seeded": used, "seconds": seconds})


def _tokens(app, parts, data):
    if parts == ["expire"]:
        _only(data, ("site",))
        site = _site(app, data["site"]) if data.get("site") else None
        return json_response(200, {"expired": app.store.expire_access_tokens(site)})
    if parts == ["revoke"]:
        _only(data, ("site", "agent"))
        site = _site(app, data["site"]) if data.get("site") else None
        revoked = app.store.revoke_tokens(site, data.get("agent"))
        return json_response(200, {"revoked": revoked})
    if parts == ["issue"]:
        return _issue(app, data)
    raise ControlError(404, "not_found", "no such control endpoint")


def _issue(app, data):
    """Tokens for an agent without the consent page (test shortcut)."""
    _only(data, ("username", "scope"))
    login = app.store.agent_login(data.get("username") or "")
    if login is None:
        raise ControlError(404, "not_found", "no agent with this username")
    scope = data.get("scope") or "api:read api:create"
    if not isinstance(scope, str) or any(
        s not in oauth.KNOWN_SCOPES for s in scope.split()
    ):
        raise ControlError(400, "invalid_value", "scope must name known scopes")
    response = oauth.issue_tokens(
        app,
        scope=" ".join(scope.split()),
        site=login[0],
        agent_id=login[1],
        grant_id=f"control:{secrets.token_hex(8)}",
        grant_type=None,
    )
    return response


def _records(app, request, site, kind, rest):
    site = _site(app, site)
    method = request.method
    if not rest:
        if method == "GET":
            rows = app.store.all_records(kind, site)
            text = f'{{"count":{len(rows)},"{kind}":[{",".join(rows)}]}}'
            return raw_json_response(200, text)
        if method == "POST" and kind == "leads":
            return _add_leads(app, site, _body(request))
        raise ControlError(405, "method_not_allowed", "method not allowed")
    if len(rest) != 1:
        raise ControlError(404, "not_found", "no such control endpoint")
    record_id = rest[0]
    if method == "GET":
        data = app.store.record(kind, site, record_id)
        if data is None:
            raise ControlError(404, "not_found", "no such record")
        return raw_json_response(200, f'{{"{kind[:-1]}":{data}}}')
    if kind != "leads":
        raise ControlError(405, "method_not_allowed", "agents are read-only")
    if method == "PATCH":
        return _patch_lead(app, site, record_id, _body(request))
    if method == "DELETE":
        if not app.store.delete_lead(site, record_id):
            raise ControlError(404, "not_found", "no such lead")
        return json_response(200, {"deleted": record_id})
    raise ControlError(405, "method_not_allowed", "method not allowed")


def _add_leads(app, site, data):
    _only(data, ("count", "record"))
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    if "record" in data:
        record = data["record"]
        if not isinstance(record, dict):
            raise ControlError(400, "invalid_value", "record must be an object")
        record = dict(record)
        record.setdefault("id", f"LEAD_{secrets.token_hex(5)}")
        record.setdefault("registered_date", iso_z(now))
        record = {"id": record.pop("id"), **record}
        try:
            app.store.insert_lead(site, record)
        except DuplicateEmail as exc:
            raise _duplicate(exc) from None
        except DuplicateId:
            raise ControlError(409, "duplicate_id", "a lead has this id") from None
        return json_response(201, {"ids": [record["id"]]})
    count = _count(data, "count", 1, 100_000)
    if count is None:
        raise ControlError(400, "invalid_value", "give count or record")
    ids, emails = app.store.lead_keys(site)
    gen = seed.Generator(app.new_rng(), app.pools(), taken_emails=emails, taken_ids=ids)
    agent_ids = app.store.agent_ids(site)
    records = [gen.lead(agent_ids, registered=now) for _ in range(count)]
    try:
        app.store.insert_leads(site, records)
    except DuplicateEmail as exc:
        raise _duplicate(exc) from None
    return json_response(201, {"ids": [r["id"] for r in records]})


def _duplicate(exc):
    message = f"lead {exc.existing_id} already has this email"
    return ControlError(409, "duplicate_email", message)


def merge(target, patch):
    """Deep-merge ``patch`` into ``target``; a null value removes the key."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = json.loads(json.dumps(value))
    return target


def _patch_lead(app, site, lead_id, data):
    if "id" in data:
        raise ControlError(400, "invalid_value", "the id cannot change")
    if "info" in data and not isinstance(data["info"], dict):
        raise ControlError(400, "invalid_value", "info must be an object")
    try:
        record = app.store.update_lead(site, lead_id, lambda r: merge(r, data))
    except DuplicateEmail as exc:
        raise _duplicate(exc) from None
    if record is None:
        raise ControlError(404, "not_found", "no such lead")
    return json_response(200, {"lead": record})
