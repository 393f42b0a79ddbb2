"""The sandbox application: shared state and request routing.

``Sandbox.handle(request)`` answers one ``web.Request`` with a
``web.Response``; ``server.py`` wraps it in an HTTP server. The endpoints
themselves live in ``oauth.py``, ``api.py`` and ``control_api.py``.
"""

import copy
import dataclasses
import logging
import os
import random
import threading
import time

from sandbox import api, control_api, oauth, pages, seed
from sandbox.knobs import Knobs
from sandbox.ratelimit import FixedWindowLimiter
from sandbox.web import html_response, json_response

logger = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "cinc-portal-dev"
DEFAULT_CLIENT_SECRET = "cinc-portal-dev-secret"  # noqa: S105 - public dev value
DEFAULT_REDIRECT_URIS = (
    "http://127.0.0.1:8000/cinc/callback/",
    "http://localhost:8000/cinc/callback/",
)
STAT_ENDPOINTS = (
    "me",
    "agents",
    "agent",
    "leads",
    "lead",
    "lead_create",
    "authorize",
    "token",
)


@dataclasses.dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str = dataclasses.field(repr=False)
    redirect_uris: tuple


def client_from_env(client_id=None, client_secret=None, redirect_uris=None):
    """The registered client: arguments first, then SANDBOX_* env vars."""
    env_uris = os.environ.get("SANDBOX_REDIRECT_URIS", "")
    uris = redirect_uris or [u.strip() for u in env_uris.split(",") if u.strip()]
    return Client(
        client_id=client_id or os.environ.get("SANDBOX_CLIENT_ID") or DEFAULT_CLIENT_ID,
        client_secret=client_secret
        or os.environ.get("SANDBOX_CLIENT_SECRET")
        or DEFAULT_CLIENT_SECRET,
        redirect_uris=tuple(uris or DEFAULT_REDIRECT_URIS),
    )


def empty_stats():
    return {
        "requests": dict.fromkeys(STAT_ENDPOINTS, 0),
        "token_grants": {"authorization_code": 0, "refresh_token": 0},
        "token_errors": 0,
        "token_errors_by_code": {},
        "rate_limited": {"window": 0, "early": 0},
        "injected_5xx": 0,
        "malformed": 0,
        "slow": 0,
        "unauthorized": 0,
        "forbidden": 0,
        "leads_created": 0,
        "leads_updated": 0,
        "duplicates": 0,
        "statuses": {},
    }


class Stats:
    def __init__(self):
        self._lock = threading.Lock()
        self._data = empty_stats()

    def bump(self, *path, by=1):
        with self._lock:
            node = self._data
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = node.get(path[-1], 0) + by

    def snapshot(self):
        with self._lock:
            return copy.deepcopy(self._data)

    def reset(self):
        with self._lock:
            self._data = empty_stats()


class Sandbox:
    def __init__(self, store, *, knobs=None, client=None, seed_params=None):
        self.store = store
        self.knobs = Knobs(knobs)
        self.client = client or client_from_env()
        self.seed_params = dict(seed_params or {})
        self.stats = Stats()
        values = self.knobs.snapshot()
        self.limiter = FixedWindowLimiter(values["window"], values["limit"])
        self._rng = random.Random(values["random_seed"])
        self._rng_lock = threading.Lock()
        self._pools = None
        self._pools_lock = threading.Lock()

    # -- data --------------------------------------------------------------

    def seed_if_empty(self):
        if not self.store.is_empty():
            return False
        self.reseed({})
        return True

    def reseed(self, params):
        """Replace all data by freshly seeded sites (same params, same data)."""
        merged = dict(self.seed_params)
        merged.update({k: v for k, v in params.items() if v is not None})
        started = time.perf_counter()
        self.store.replace_all(seed.build_sites(**merged))
        with self._pools_lock:
            self._pools = None
        logger.info("seeded sites in %.2fs", time.perf_counter() - started)
        return merged

    def pools(self):
        with self._pools_lock:
            if self._pools is None:
                seed_value = self.seed_params.get("seed", seed.DEFAULT_SEED)
                self._pools = seed.pools_for(seed_value)
            return self._pools

    def reset(self, params):
        """Re-seed, and put knobs, stats, rate windows and randomness back."""
        used = self.reseed(params)
        values = self.knobs.restore()
        self.limiter.configure(values["window"], values["limit"])
        self.stats.reset()
        with self._rng_lock:
            self._rng.seed(values["random_seed"])
        return used

    # -- knobs and randomness ----------------------------------------------

    def update_knobs(self, update):
        values, changed = self.knobs.update(update)
        if changed & {"window", "limit"}:
            self.limiter.configure(values["window"], values["limit"])
        if "random_seed" in update:  # setting it (again) restarts the sequence
            with self._rng_lock:
                self._rng.seed(values["random_seed"])
        return values

    def chance(self, rate):
        """True with probability ``rate`` (never draws when rate is 0)."""
        if rate <= 0:
            return False
        with self._rng_lock:
            return self._rng.random() < rate

    def choice(self, options):
        with self._rng_lock:
            return self._rng.choice(options)

    def new_rng(self):
        with self._rng_lock:
            return random.Random(self._rng.getrandbits(64))

    # -- routing -----------------------------------------------------------

    def handle(self, request):
        path = request.path
        if path == "/_sandbox" or path.startswith("/_sandbox/"):
            return control_api.handle(self, request)
        if path.startswith("/integrator/"):
            response = oauth.handle(self, request)
        elif api.is_api_path(path):
            response = api.handle(self, request)
        elif path == "/" and request.method == "GET":
            sites = self.store.sites_summary()
            response = html_response(200, pages.index_page(sites))
        else:
            response = json_response(404, {"error": "not_found"})
        self.stats.bump("statuses", str(response.status))
        return response
