"""Fixed-window rate limiting per (site, endpoint).

A window starts with the first request after the previous window ended and
lasts ``window`` seconds; at most ``limit`` requests fit in it.
"""

import dataclasses
import datetime as dt
import math
import threading
import time


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # epoch seconds

    def headers(self, reset_format):
        return {
            "x-rate-limit-limit": self.limit,
            "x-rate-limit-remaining": self.remaining,
            "x-rate-limit-reset": format_reset(self.reset_at, reset_format),
        }

    def retry_after(self, now=None):
        now = time.time() if now is None else now
        return max(1, math.ceil(self.reset_at - now))


def format_reset(reset_at, reset_format):
    if reset_format == "epoch":
        return math.ceil(reset_at)
    moment = dt.datetime.fromtimestamp(reset_at, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class FixedWindowLimiter:
    def __init__(self, window, limit):
        self.window = window
        self.limit = limit
        self._windows = {}  # key -> [started_at, count]
        self._lock = threading.Lock()

    def configure(self, window, limit):
        """Change the window and limit; every window starts afresh."""
        with self._lock:
            self.window = window
            self.limit = limit
            self._windows.clear()

    def reset(self):
        with self._lock:
            self._windows.clear()

    def _current(self, key, now):
        state = self._windows.get(key)
        if state is None or now >= state[0] + self.window:
            return None
        return state

    def hit(self, key, now=None):
        """Count one request against ``key``'s window."""
        now = time.time() if now is None else now
        with self._lock:
            state = self._current(key, now)
            if state is None:
                state = self._windows[key] = [now, 0]
            reset_at = state[0] + self.window
            if state[1] >= self.limit:
                return Decision(False, self.limit, 0, reset_at)
            state[1] += 1
            return Decision(True, self.limit, self.limit - state[1], reset_at)

    def peek(self, key=None, now=None):
        """The current state without counting (for requests without a site)."""
        now = time.time() if now is None else now
        with self._lock:
            state = self._current(key, now) if key is not None else None
            if state is None:
                return Decision(True, self.limit, self.limit, now + self.window)
            remaining = max(self.limit - state[1], 0)
            return Decision(True, self.limit, remaining, state[0] + self.window)
