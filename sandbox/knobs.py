"""Runtime knobs of the sandbox: rate limits, token lifetimes and faults.

Every knob can be set on the command line at startup and changed at runtime
through ``POST /_sandbox/config``. ``validate_knobs`` checks a partial update
and returns the cleaned values; ``KnobError`` carries a message for a 400.
"""

import math
import threading

RATE_KNOBS = ("fail_rate", "early_429_rate", "slow_rate", "malformed_rate")
SECONDS_KNOBS = (
    "latency",
    "slow_seconds",
    "post_stall_seconds",
    "token_delay",
    "token_ttl",
    "code_ttl",
)
TOKEN_FAIL_MODES = (None, "500", "400", "slow")
RESET_FORMATS = ("iso", "epoch")

KNOB_DEFAULTS = {
    "window": 20.0,
    "limit": 15,
    "token_ttl": 3600.0,
    "code_ttl": 60.0,
    "fail_rate": 0.0,
    "early_429_rate": 0.0,
    "latency": 0.0,
    "slow_rate": 0.0,
    "slow_seconds": 0.0,
    "malformed_rate": 0.0,
    "post_stall_seconds": 0.0,
    "token_fail": None,
    "token_delay": 0.0,
    "upsert": False,
    "envelope": False,
    "reset_format": "iso",
    "random_seed": None,
}


class KnobError(ValueError):
    """A knob update that cannot be applied (unknown key or bad value)."""


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise KnobError(f"{name} must be a number")
    if not math.isfinite(value):
        raise KnobError(f"{name} must be finite")
    return float(value)


def _clean(name, value):
    if name in RATE_KNOBS:
        value = _number(name, value)
        if not 0.0 <= value <= 1.0:
            raise KnobError(f"{name} must be between 0 and 1")
        return value
    if name in SECONDS_KNOBS:
        value = _number(name, value)
        if value < 0:
            raise KnobError(f"{name} must not be negative")
        return value
    if name == "window":
        value = _number(name, value)
        if value <= 0:
            raise KnobError("window must be positive")
        return value
    if name == "limit":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise KnobError("limit must be a positive integer")
        return value
    if name == "random_seed":
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int)
        ):
            raise KnobError("random_seed must be an integer or null")
        return value
    if name == "token_fail":
        if value is not None:
            value = str(value)
        if value not in TOKEN_FAIL_MODES:
            raise KnobError('token_fail must be null, "500", "400" or "slow"')
        return value
    if name == "reset_format":
        if value not in RESET_FORMATS:
            raise KnobError('reset_format must be "iso" or "epoch"')
        return value
    if name in ("upsert", "envelope"):
        if not isinstance(value, bool):
            raise KnobError(f"{name} must be true or false")
        return value
    raise KnobError(f"unknown knob: {name}")


def validate_knobs(update):
    """Return the cleaned copy of a partial knob update, or raise KnobError."""
    if not isinstance(update, dict):
        raise KnobError("expected a JSON object of knobs")
    return {name: _clean(name, value) for name, value in update.items()}


class Knobs:
    """The current knob values, shared by all request threads."""

    def __init__(self, initial=None):
        self._startup = dict(KNOB_DEFAULTS)
        self._startup.update(validate_knobs(initial or {}))
        self._values = dict(self._startup)
        self._lock = threading.Lock()

    def snapshot(self):
        with self._lock:
            return dict(self._values)

    def update(self, update):
        """Apply a partial update; return (new values, names that changed)."""
        cleaned = validate_knobs(update)
        with self._lock:
            changed = {k for k, v in cleaned.items() if self._values[k] != v}
            self._values.update(cleaned)
            return dict(self._values), changed

    def restore(self):
        with self._lock:
            self._values = dict(self._startup)
            return dict(self._values)
