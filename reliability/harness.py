"""What every scenario needs: the portal pointed at a sandbox, a broker
connected through the real OAuth flow, the sandbox's counters, a tally of
log lines, and a closed loopback port.

Everything here runs inside a Django process (the tests, or the command
after ``django.setup()``). Nothing talks to any host but 127.0.0.1.
"""

import contextlib
import logging
import socket
import uuid
from urllib.parse import urlsplit

SANDBOX_BROKER = "buum@cu.com"
SANDBOX_PASSWORD = "sandbox"  # noqa: S105 - the documented sandbox login
REDIRECT_URI = "http://127.0.0.1:8000/cinc/callback/"
# The shortened rate limit: 50 requests per 1 s window instead of 15 per 20 s,
# so that a sync of thousands of leads takes seconds, not minutes.
WINDOW = 1.0
LIMIT = 50
# The client's read timeout, lowered from 20 s so that "slow" answers can
# outlast it without making the scenarios slow.
TIMEOUT = 1.0
CONNECT_TIMEOUT = 1.0
# A wait for CINC's rate limit this long is slept inside the run.
MAX_INLINE_WAIT = 10.0


def portal_settings(server, **overrides):
    """Settings that point the portal at ``server`` (a ``SandboxProcess``)
    with the shortened rate window and client timeout."""
    values = {
        "CINC_AUTHORIZE_URL": server.authorize_url,
        "CINC_TOKEN_URL": server.token_url,
        "CINC_API_URL": server.api_url,
        "CINC_CLIENT_ID": server.client_id,
        "CINC_CLIENT_SECRET": server.client_secret,
        "CINC_REDIRECT_URI": REDIRECT_URI,
        "CINC_SCOPES": ["api:read", "api:create"],
        "CINC_RATE_WINDOW": WINDOW,
        "CINC_RATE_LIMIT": LIMIT,
        "CINC_TIMEOUT": TIMEOUT,
        "CINC_CONNECT_TIMEOUT": CONNECT_TIMEOUT,
        "CINC_MAX_INLINE_WAIT": MAX_INLINE_WAIT,
    }
    values.update(overrides)
    return values


@contextlib.contextmanager
def pointed_at(server, **overrides):
    """The portal's settings on ``server`` for the duration of the block."""
    from django.test import override_settings

    with override_settings(**portal_settings(server, **overrides)):
        yield


def make_broker(prefix="reliability"):
    from django.contrib.auth import get_user_model

    # No password: the scenarios sign in with force_login.
    return get_user_model().objects.create_user(
        username=f"{prefix}-{uuid.uuid4().hex[:8]}",
        password=None,
        first_name="Reliability",
        last_name="Broker",
    )


def signed_in(broker):
    """A Django test client signed in as ``broker``; an exception in a view
    comes back as a 500 answer (to be counted), not raised."""
    from django.test import Client

    client = Client(raise_request_exception=False)
    client.force_login(broker)
    return client


def connect(server, broker, *, client=None):
    """Connect ``broker`` to the sandbox's demo site through the portal's
    views and the sandbox's consent form; return (Connection, callback
    response). Call it with the settings of ``pointed_at(server)``."""
    from django.urls import reverse

    client = client or signed_in(broker)
    authorize_url = client.post(reverse("accounts:cinc-connect"))["Location"]
    callback = server.control.approve(authorize_url, SANDBOX_BROKER, SANDBOX_PASSWORD)
    parts = urlsplit(callback)
    response = client.get(f"{parts.path}?{parts.query}")
    connection = broker.cinc_connections.order_by("-pk").first()
    if connection is None:
        raise RuntimeError(
            f"the OAuth flow made no connection (callback {response.status_code})"
        )
    return connection, response


# The sandbox's counters -------------------------------------------------------


def flat_stats(stats, prefix=""):
    """The sandbox's nested counters as {"a.b": number}."""
    flat = {}
    for key, value in stats.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_stats(value, prefix=f"{name}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[name] = value
    return flat


def stats_delta(before, after):
    """What the counters grew by between two ``control.stats()`` snapshots."""
    old, new = flat_stats(before), flat_stats(after)
    return {key: new[key] - old.get(key, 0) for key in new if new[key] != old.get(key)}


API_ENDPOINTS = ("me", "agents", "agent", "leads", "lead", "lead_create")


def faults_of(delta):
    """The faults a counter delta shows, under the names of the report."""
    return {
        "5xx": delta.get("injected_5xx", 0),
        "early_429": delta.get("rate_limited.early", 0),
        "window_429": delta.get("rate_limited.window", 0),
        "slow": delta.get("slow", 0),
        "malformed": delta.get("malformed", 0),
        "token_refreshes": delta.get("token_grants.refresh_token", 0),
        "expired_401": delta.get("unauthorized", 0),
    }


def requests_of(delta):
    """API requests plus token requests the sandbox received."""
    api = sum(delta.get(f"requests.{name}", 0) for name in API_ENDPOINTS)
    return api + delta.get("requests.token", 0)


# Log lines --------------------------------------------------------------------


class LogTally(logging.Handler):
    """Counts the log records of the block by level, and keeps the first
    few ERROR messages (logged tracebacks mean an unexpected failure)."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.warnings = 0
        self.errors = 0
        self.error_lines = []

    def emit(self, record):
        if record.levelno >= logging.ERROR:
            self.errors += 1
            if len(self.error_lines) < 5:
                self.error_lines.append(f"{record.name}: {record.getMessage()}"[:200])
        else:
            self.warnings += 1

    def __enter__(self):
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc_info):
        logging.getLogger().removeHandler(self)


class MessageCount(logging.Handler):
    """Counts records of one logger whose message template contains
    ``needle`` (e.g. the client's "malformed answer" warnings: what the
    portal actually read, which the sandbox's counters cannot tell apart
    from answers sent after the client had given up)."""

    def __init__(self, logger_name, needle):
        super().__init__(level=logging.DEBUG)
        self.logger = logging.getLogger(logger_name)
        self.needle = needle
        self.count = 0

    def emit(self, record):
        if self.needle in str(record.msg):
            self.count += 1

    def __enter__(self):
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc_info):
        self.logger.removeHandler(self)


# Ports ----------------------------------------------------------------------


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
