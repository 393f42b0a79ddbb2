"""Fixtures shared by the whole suite.

The CINC sandbox runs as a real server on loopback (one process for the
session, re-seeded per test that asks for it); the portal's settings are
pointed at it, so every CINC call in a test is real HTTP.
"""

import os

import pytest

# Tests queue Celery tasks into memory unless a run names a real broker (CI's
# second pass uses Redis).
os.environ.setdefault("CELERY_BROKER_URL", "memory://")
# On a shared broker (CI's Redis), each pytest worker has its own queue, so
# one process's Celery worker never takes another process's tasks.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault(
        "CELERY_TASK_DEFAULT_QUEUE", "tests-" + os.environ["PYTEST_XDIST_WORKER"]
    )

from django.conf import settings as django_settings  # noqa: E402

# The SQLite test database is a file per test process under var/test/.
(django_settings.VAR_DIR / "test").mkdir(parents=True, exist_ok=True)

# Password hashing is not under test; a fast hasher saves ~0.3 s per broker.
django_settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

from django.contrib.auth import get_user_model  # noqa: E402

from sandbox.process import start_sandbox  # noqa: E402

SMALL_SEED = {"agents": 12, "leads": 60, "seed": 7}


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory):
    server = start_sandbox(tmp_path_factory.mktemp("sandbox") / "sandbox.sqlite3")
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server, settings):
    """A freshly seeded sandbox (small), with the portal's CINC settings on it."""
    sandbox_server.control.reset(**SMALL_SEED)
    point_settings_at(settings, sandbox_server)
    return sandbox_server


def point_settings_at(settings, server):
    settings.CINC_AUTHORIZE_URL = server.authorize_url
    settings.CINC_TOKEN_URL = server.token_url
    settings.CINC_API_URL = server.api_url
    settings.CINC_CLIENT_ID = "cinc-portal-dev"
    settings.CINC_CLIENT_SECRET = "cinc-portal-dev-secret"
    settings.CINC_REDIRECT_URI = "http://127.0.0.1:8000/cinc/callback/"
    settings.CINC_SCOPES = ["api:read", "api:create"]
    settings.CINC_TIMEOUT = 5.0
    settings.CINC_CONNECT_TIMEOUT = 2.0


@pytest.fixture
def make_broker(db):
    counter = iter(range(1, 10_000))

    def make(username=None, **extra):
        number = next(counter)
        return get_user_model().objects.create_user(
            username=username or f"broker{number}",
            password="correct horse battery staple",
            first_name=extra.pop("first_name", "Brook"),
            last_name=extra.pop("last_name", f"Broker {number}"),
            **extra,
        )

    return make


@pytest.fixture
def broker(make_broker):
    return make_broker("broker")


@pytest.fixture
def broker_client(client, broker):
    client.force_login(broker)
    return client


def connect_site(client, server, *, username="buum@cu.com", scopes=None):
    """Run the whole connect flow through the portal's views and the sandbox's
    consent form; returns the callback's response."""
    from urllib.parse import urlsplit

    from django.urls import reverse

    authorize_url = client.post(reverse("accounts:cinc-connect"))["Location"]
    callback_url = server.control.approve(
        authorize_url, username=username, password="sandbox", scopes=scopes
    )
    parts = urlsplit(callback_url)
    return client.get(f"{parts.path}?{parts.query}")


@pytest.fixture
def queued_syncs(monkeypatch):
    """Connection ids whose sync run was queued; their tasks are not sent."""
    from leads import sync

    queued = []

    def record(connection_id, run_id, countdown=None):
        queued.append(connection_id)

    monkeypatch.setattr(sync, "_send_task", record)
    return queued


@pytest.fixture
def connection(
    broker_client, broker, sandbox, monkeypatch, django_capture_on_commit_callbacks
):
    """The broker's connection to the sandbox's demo site, made through the
    real OAuth flow. Its first sync is not started: tests start from a
    connection with no runs."""
    from leads import sync

    with monkeypatch.context() as patch:
        patch.setattr(sync, "_send_task", lambda *args, **kwargs: None)
        with django_capture_on_commit_callbacks(execute=True):
            connect_site(broker_client, sandbox)
    connection = broker.cinc_connections.get()
    connection.sync_runs.all().delete()
    return connection
