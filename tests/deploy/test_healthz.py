"""/healthz: the database and the Celery broker, no login, 200 or 503."""

import json
import os

import pytest
import redis
from django.db import OperationalError

from cinc_portal import health

pytestmark = pytest.mark.django_db

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def local_redis_url():
    """The suite's Redis (CI's second pass), else the machine's; skipped when
    none answers, except when the run was given a Redis broker."""
    given = os.environ.get("CELERY_BROKER_URL", "")
    url = given if given.startswith("redis://") else "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        if given.startswith("redis://"):
            raise
        pytest.skip("no Redis on 127.0.0.1:6379")
    return url


def test_healthz_is_ok_with_database_and_redis_up(client, settings):
    settings.CELERY_BROKER_URL = local_redis_url()

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {
        "status": "ok",
        "database": "ok",
        "broker": "ok",
    }


def test_healthz_names_the_broker_when_redis_is_unreachable(client, settings, caplog):
    settings.CELERY_BROKER_URL = UNREACHABLE_REDIS

    response = client.get("/healthz")

    assert response.status_code == 503
    assert json.loads(response.content) == {
        "status": "error",
        "database": "ok",
        "broker": "error",
    }
    assert "Health check broker failed: ConnectionError" in caplog.text


def test_healthz_names_the_database_when_it_fails(client, settings, monkeypatch):
    settings.CELERY_BROKER_URL = "memory://"

    def failing():
        raise OperationalError("could not connect to server")

    monkeypatch.setitem(health.CHECKS, "database", failing)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert json.loads(response.content) == {
        "status": "error",
        "database": "error",
        "broker": "ok",
    }


@pytest.mark.parametrize("present", [True, False])
def test_healthz_checks_the_filesystem_brokers_folder(
    client, settings, tmp_path, present
):
    folder = tmp_path / "queue"
    if present:
        folder.mkdir()
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
    }

    response = client.get("/healthz")

    assert response.status_code == (200 if present else 503)
    assert json.loads(response.content)["broker"] == ("ok" if present else "error")


def test_healthz_is_not_redirected_to_https_and_needs_no_login(client, settings):
    settings.CELERY_BROKER_URL = "memory://"
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # as with DEBUG=False

    health_response = client.get("/healthz")
    login_response = client.get("/accounts/login/")

    assert health_response.status_code == 200
    assert health_response["Cache-Control"].startswith("max-age=0")
    assert login_response.status_code == 301
    assert login_response["Location"].startswith("https://")


def test_health_command_exits_non_zero_when_a_check_fails(settings, capsys):
    settings.CELERY_BROKER_URL = UNREACHABLE_REDIS

    failing = health.main(["broker"])
    unknown = health.main(["disk"])
    settings.CELERY_BROKER_URL = "memory://"
    passing = health.main(["broker", "database"])

    assert (failing, unknown, passing) == (1, 2, 0)
    printed = capsys.readouterr().out.splitlines()
    assert "broker=error" in printed
    assert "broker=ok database=ok" in printed
