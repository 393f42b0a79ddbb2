"""A rate limiter shared by every process that talks to one CINC site.

CINC allows 15 requests per 20 seconds per endpoint and per site, may lower
that under load, and announces the limit in ``x-rate-limit-limit``,
``x-rate-limit-remaining`` and ``x-rate-limit-reset``. The portal's web
processes and Celery workers share one budget per key
``"{connection}:{endpoint}"``.

Why not pyrate-limiter: it enforces rates fixed in advance. It cannot adopt a
limit the server announces in a header, nor block every process until a
reset time the server gave with a 429. Both matter here, and the algorithm
is small, so we keep our own.

The algorithm works on a small JSON-serialisable state per key:

- ``limit``: requests allowed per window (default 15; the server's
  ``x-rate-limit-limit`` replaces it),
- ``window``: seconds (default 20),
- ``log``: send times (epoch seconds) still inside the window,
- ``blocked_until``: epoch seconds before which nothing may be sent (set by a
  429 or by ``remaining == 0``),
- ``latency`` / ``latency_at``: the slowest recent round trip (see below),
- ``expires_at``: when the state is no longer needed (stores may drop it).

``reserve(key)`` records a send and returns 0 when a slot is free, or returns
the seconds to wait without recording anything. ``observe(...)`` feeds back
what the server said after each answer.

Staying clear of the server's limit. We keep a sliding log, so at most
``limit`` sends fall in any period of ``window + margin + latency`` seconds.
A server counting in fixed windows starts its window when a request arrives,
which is after we sent it; arrival is at most one round trip after the send,
so widening our window by the slowest recent round trip (capped at a quarter
of the window) plus ``margin`` (default 0.05 s, for clock jitter) means no
fixed or sliding window of the server's ever sees more than ``limit`` of our
requests. When the server says it has counted more than we know about
(``remaining`` lower than our log implies, e.g. a restart or another client),
the log is padded with entries that expire at the server's reset time.

Stores only provide ``locked(key)``: a context manager yielding the mutable
state dict, saved when the block exits without error. ``MemoryStore`` (one
process), ``FileStore`` (``flock`` on one JSON file per key; the embedded
default shared across processes) and ``RedisStore`` (a Redis lock beside one
key per limiter key, with a TTL; for production) run the same algorithm.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

from .errors import CincError

logger = logging.getLogger(__name__)

DEFAULT_LIMIT = 15
DEFAULT_WINDOW = 20.0
DEFAULT_MARGIN = 0.05
# A reset further ahead than this is treated as this far ahead: a broken
# header must not stop a connection for days.
MAX_BLOCK_SECONDS = 3600.0
# Values below this are "seconds from now", not epoch seconds (1e9 seconds
# after the epoch is 2001-09-09).
EPOCH_FLOOR = 1e9
# Values at or above this are epoch milliseconds (1e11 s is year 5138).
EPOCH_MS_FLOOR = 1e11
MAX_LIMIT = 100_000
# Epoch floats near 1.7e9 are only exact to about 0.3 microseconds: a wait
# shorter than this counts as no wait.
EPSILON = 1e-5


def parse_reset(value: Any, now: float | None = None) -> float | None:
    """Parse an ``x-rate-limit-reset`` value into epoch seconds.

    Accepts ISO 8601 date-times (with or without fractions of a second,
    ``Z`` or a numeric offset; a value without offset is taken as UTC) and
    numbers or numeric strings: epoch seconds, epoch milliseconds (values of
    1e11 and more) or, for values below 1e9, seconds from ``now`` (the way
    ``Retry-After`` counts). Anything else, including negative numbers, NaN
    and bare dates, gives None. Never raises.
    """
    try:
        if value is None or isinstance(value, bool):
            return None
        if isinstance(value, bytes):
            value = value.decode("ascii")
        if isinstance(value, int | float):
            return _from_number(float(value), now)
        if not isinstance(value, str):
            return None
        text = value.strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            return _from_iso(text)
        return _from_number(number, now)
    except Exception:  # noqa: BLE001 - a header must never break a request
        logger.debug("unparseable rate-limit reset value ignored")
        return None


def _from_number(number: float, now: float | None) -> float | None:
    if not math.isfinite(number) or number < 0:
        return None
    if number < EPOCH_FLOOR:
        return (time.time() if now is None else now) + number
    if number >= EPOCH_MS_FLOOR:
        return number / 1000.0
    return number


def _from_iso(text: str) -> float | None:
    # A bare date (2022-05-20) says nothing about a reset time.
    if len(text) <= 10:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class Store(Protocol):
    """Where limiter states live; see the module docstring."""

    def locked(self, key: str) -> contextlib.AbstractContextManager[dict]: ...


def _loads(raw: bytes | str | None, key: str) -> dict:
    if not raw:
        return {}
    try:
        state = json.loads(raw)
    except ValueError:
        logger.warning("rate-limit state for %s was unreadable; starting afresh", key)
        return {}
    return state if isinstance(state, dict) else {}


class MemoryStore:
    """States in a dict behind a thread lock: tests and single processes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, str] = {}

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[dict]:
        with self._lock:
            state = _loads(self._data.get(key), key)
            yield state
            self._data[key] = json.dumps(state)


class FileStore:
    """One JSON file per key under ``directory``, guarded by ``flock``.

    Works across processes on one machine (the embedded default). A file
    that cannot be read is replaced by a fresh state.
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = os.fspath(directory)
        os.makedirs(self.directory, exist_ok=True)

    def path(self, key: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)[:80]
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        return os.path.join(self.directory, f"{safe}-{digest}.json")

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[dict]:
        import fcntl

        fd = os.open(self.path(key), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            state = _loads(b"".join(chunks), key)
            yield state
            data = json.dumps(state).encode()
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)


class RedisStore:
    """One Redis string per key (with a TTL), guarded by a Redis lock.

    ``target`` is a ``redis://`` URL or a ready ``redis.Redis`` client.
    """

    def __init__(
        self,
        target: Any,
        *,
        prefix: str = "cinc:ratelimit:",
        lock_timeout: float = 10.0,
        blocking_timeout: float = 10.0,
    ) -> None:
        if isinstance(target, str):
            import redis

            target = redis.Redis.from_url(target)
        self.client = target
        self.prefix = prefix
        self.lock_timeout = lock_timeout
        self.blocking_timeout = blocking_timeout

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[dict]:
        name = self.prefix + key
        lock = self.client.lock(
            name + ":lock",
            timeout=self.lock_timeout,
            blocking_timeout=self.blocking_timeout,
            sleep=0.005,
        )
        if not lock.acquire():
            raise CincError(f"rate-limit store busy for {key}")
        try:
            state = _loads(self.client.get(name), key)
            yield state
            expires_at = float(state.get("expires_at") or time.time() + 3600)
            ttl_ms = max(1000, int((expires_at - time.time()) * 1000) + 1000)
            self.client.set(name, json.dumps(state), px=ttl_ms)
        finally:
            with contextlib.suppress(Exception):
                lock.release()


class RateLimiter:
    """Per-key budgets over a ``Store``; see the module docstring."""

    def __init__(
        self,
        store: Store | None = None,
        *,
        limit: int = DEFAULT_LIMIT,
        window: float = DEFAULT_WINDOW,
        margin: float = DEFAULT_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if limit < 1 or window <= 0 or margin < 0:
            raise ValueError("limit >= 1, window > 0 and margin >= 0 are required")
        self.store = store if store is not None else MemoryStore()
        self.limit = int(limit)
        self.window = float(window)
        self.margin = float(margin)
        self.clock = clock

    def reserve(self, key: str) -> float:
        """Record a send and return 0, or return the seconds to wait."""
        with self.store.locked(key) as state:
            now = self.clock()
            self._normalise(state, now)
            wait = self._wait(state, now)
            if wait <= 0:
                state["log"].append(now)
                wait = 0.0
            self._set_expiry(state, now)
        return wait

    def observe(
        self,
        key: str,
        *,
        limit: Any = None,
        remaining: Any = None,
        reset_at: float | None = None,
        rate_limited: bool = False,
        latency: float | None = None,
    ) -> None:
        """Take in what one answer said about the budget.

        ``limit`` and ``remaining`` are the header values (strings or ints;
        unusable values are ignored), ``reset_at`` epoch seconds as given by
        ``parse_reset``, ``rate_limited`` True for a 429 and ``latency`` the
        seconds from send to answer.
        """
        limit = _as_count(limit)
        remaining = _as_count(remaining)
        with self.store.locked(key) as state:
            now = self.clock()
            self._normalise(state, now)
            if limit is not None and limit >= 1:
                state["limit"] = min(limit, MAX_LIMIT)
            if latency is not None and latency >= 0:
                self._note_latency(state, now, float(latency))
            reset = self._usable_reset(reset_at, now)
            if rate_limited or remaining == 0:
                until = (reset if reset is not None else now + self.window) + (
                    self.margin
                )
                state["blocked_until"] = max(state["blocked_until"], until)
            elif remaining is not None:
                self._pad_log(state, now, remaining, reset)
            self._set_expiry(state, now)

    def state(self, key: str) -> dict:
        """A copy of the current state of ``key`` (for stats and tests)."""
        with self.store.locked(key) as state:
            self._normalise(state, self.clock())
            return json.loads(json.dumps(state))

    # The algorithm.

    def _span(self, state: dict) -> float:
        return state["window"] + self.margin + state["latency"]

    def _normalise(self, state: dict, now: float) -> None:
        limit = _as_count(state.get("limit"))
        state["limit"] = limit if limit and limit >= 1 else self.limit
        state["window"] = self.window
        state["latency"] = _as_float(state.get("latency"), 0.0)
        state["latency_at"] = _as_float(state.get("latency_at"), 0.0)
        state["blocked_until"] = _as_float(state.get("blocked_until"), 0.0)
        log = state.get("log")
        if not isinstance(log, list):
            log = []
        horizon = now - self._span(state) + EPSILON
        state["log"] = sorted(
            t for t in log if isinstance(t, int | float) and t > horizon
        )

    def _wait(self, state: dict, now: float) -> float:
        wait = 0.0
        if state["blocked_until"] > now:
            wait = state["blocked_until"] - now
        log, limit = state["log"], state["limit"]
        if len(log) >= limit:
            wait = max(wait, log[len(log) - limit] + self._span(state) - now)
        return wait if wait > EPSILON else 0.0

    def _note_latency(self, state: dict, now: float, latency: float) -> None:
        latency = min(latency, state["window"] / 4)
        # Keep the slowest round trip until every send it may concern has
        # left the log, then let a faster one replace it.
        stale = now - state["latency_at"] > self._span(state)
        if latency >= state["latency"] or stale:
            state["latency"] = latency
            state["latency_at"] = now

    def _usable_reset(self, reset_at: float | None, now: float) -> float | None:
        if reset_at is None or not math.isfinite(reset_at) or reset_at <= now:
            return None
        return min(reset_at, now + MAX_BLOCK_SECONDS)

    def _pad_log(
        self, state: dict, now: float, remaining: int, reset: float | None
    ) -> None:
        used = state["limit"] - remaining
        missing = used - len(state["log"])
        if missing <= 0:
            return
        stamp = now if reset is None else min(now, reset - self._span(state))
        state["log"] = sorted(state["log"] + [stamp] * missing)

    def _set_expiry(self, state: dict, now: float) -> None:
        last = state["log"][-1] if state["log"] else now
        state["expires_at"] = max(state["blocked_until"], last + self._span(state))


def _as_count(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number < 0:
        return None
    return int(number)


def _as_float(value: Any, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if math.isfinite(value):
            return float(value)
    return default
