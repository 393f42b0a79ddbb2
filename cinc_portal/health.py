"""``/healthz``: is this process able to serve? For load balancers, Docker's
health checks and uptime monitors.

It checks the database (a trivial query) and the Celery broker (a Redis PING,
the filesystem broker's folder, or a kombu connection for other brokers),
each bounded by ``TIMEOUT`` seconds. It needs no login and says nothing but
which check failed; details go to the log.

``python -m cinc_portal.health [database] [broker]`` runs the same checks
from a shell (the beat container's health check) and exits non-zero on a
failure.
"""

import logging
import os
import sys
from pathlib import Path

from django.conf import settings
from django.db import connections, transaction
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)

TIMEOUT = 2  # seconds, for each check


def check_database():
    connection = connections["default"]
    if connection.vendor == "postgresql":
        # SET LOCAL only lasts for this transaction. (On SQLite a transaction
        # here would take the write lock, so the query runs without one.)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = %s", [TIMEOUT * 1000])
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_broker():
    url = settings.CELERY_BROKER_URL
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("redis", "rediss"):
        _ping_redis(url)
    elif scheme == "filesystem":
        _check_folders(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    elif scheme != "memory":
        _connect_kombu(url)


def _ping_redis(url):
    import redis

    client = redis.Redis.from_url(
        url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT
    )
    try:
        client.ping()
    finally:
        client.close()


def _check_folders(options):
    for key in ("data_folder_in", "data_folder_out"):
        folder = Path(options[key])
        if not folder.is_dir():
            raise OSError(f"broker folder {key} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OSError(f"broker folder {key} is not writable")


def _connect_kombu(url):
    from kombu import Connection

    with Connection(url, connect_timeout=TIMEOUT) as connection:
        connection.ensure_connection(max_retries=0, timeout=TIMEOUT)


CHECKS = {"database": check_database, "broker": check_broker}


def run_checks(names=None):
    """``({name: "ok" or "error"}, healthy)`` for the named checks (all by
    default)."""
    results = {}
    for name in names or CHECKS:
        try:
            CHECKS[name]()
        except Exception as exc:  # any failure is an unhealthy answer
            logger.warning(
                "Health check %s failed: %s: %s", name, type(exc).__name__, exc
            )
            results[name] = "error"
        else:
            results[name] = "ok"
    return results, all(value == "ok" for value in results.values())


@never_cache
@require_GET
def healthz(request):
    results, healthy = run_checks()
    return JsonResponse(
        {"status": "ok" if healthy else "error", **results},
        status=200 if healthy else 503,
    )


def main(argv):
    import django
    from django.apps import apps

    if not apps.ready:  # as a command; set up already when called in-process
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cinc_portal.settings")
        django.setup()
    unknown = [name for name in argv if name not in CHECKS]
    if unknown:
        sys.stderr.write(f"unknown check(s): {', '.join(unknown)}\n")
        return 2
    results, healthy = run_checks(argv)
    sys.stdout.write(" ".join(f"{k}={v}" for k, v in results.items()) + "\n")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
