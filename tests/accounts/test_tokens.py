"""Token refresh, encryption and rotation, against the sandbox over HTTP."""

import logging
import threading
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import close_old_connections
from django.urls import reverse
from django.utils import timezone

from accounts import crypto, services
from accounts.models import Connection
from tests.conftest import connect_site


def expire(connection):
    Connection.objects.filter(pk=connection.pk).update(
        token_expires_at=timezone.now() + timedelta(seconds=30)
    )


def test_a_token_expiring_within_a_minute_is_refreshed_before_use(connection, sandbox):
    old_access, old_refresh = connection.access_token, connection.refresh_token
    expire(connection)
    sandbox.control.reset_stats()

    token = services.connection_access_token(connection_id=connection.pk)

    connection.refresh_from_db()
    assert token == connection.access_token != old_access
    assert connection.refresh_token != old_refresh  # rotated, and saved
    assert connection.token_expires_at > timezone.now() + timedelta(minutes=30)
    assert sandbox.control.stats()["token_grants"]["refresh_token"] == 1


def test_a_fresh_token_is_used_as_it_is(connection, sandbox):
    sandbox.control.reset_stats()

    token = services.connection_access_token(connection_id=connection.pk)

    assert token == connection.access_token
    assert sandbox.control.stats()["token_grants"]["refresh_token"] == 0


def test_a_401_refreshes_once_and_the_call_succeeds(connection, sandbox):
    sandbox.control.expire_tokens()
    sandbox.control.reset_stats()
    client = services.connection_client(connection=connection)

    me = client.me()

    assert me["id"] == "AGENT_MDID0"
    assert sandbox.control.stats()["token_grants"]["refresh_token"] == 1


@pytest.mark.django_db(transaction=True)
def test_twenty_threads_on_an_expired_connection_cause_one_refresh(
    broker_client, broker, sandbox, queued_syncs
):
    connect_site(broker_client, sandbox)
    connection = broker.cinc_connections.get()
    expire(connection)
    sandbox.control.reset_stats()
    tokens, failures = [], []
    start = threading.Barrier(20)

    def ask():
        try:
            start.wait(timeout=10)
            tokens.append(services.connection_access_token(connection_id=connection.pk))
        except Exception as exc:  # collected and asserted below
            failures.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    assert len(tokens) == 20
    assert len(set(tokens)) == 1
    assert sandbox.control.stats()["token_grants"]["refresh_token"] == 1
    connection.refresh_from_db()
    assert connection.access_token == tokens[0]


def test_a_revoked_refresh_token_needs_reconnect_and_stops_asking(
    connection, sandbox, broker_client
):
    sandbox.control.revoke_tokens()
    expire(connection)

    with pytest.raises(services.ConnectionUnavailable):
        services.connection_access_token(connection_id=connection.pk)
    sandbox.control.reset_stats()
    with pytest.raises(services.ConnectionUnavailable):
        services.connection_access_token(connection_id=connection.pk)

    connection.refresh_from_db()
    assert connection.status == Connection.Status.NEEDS_RECONNECT
    assert connection.access_token_ciphertext == ""
    assert sandbox.control.stats()["token_grants"]["refresh_token"] == 0
    page = broker_client.get(reverse("leads:dashboard"))
    assert b"needs reconnecting" in page.content
    assert (
        reverse("accounts:cinc-reconnect", args=[connection.uuid]).encode()
        in page.content
    )


def test_reconnecting_restores_an_active_connection(
    connection, sandbox, broker_client, queued_syncs
):
    sandbox.control.revoke_tokens()
    expire(connection)
    with pytest.raises(services.ConnectionUnavailable):
        services.connection_access_token(connection_id=connection.pk)

    connect_site(broker_client, sandbox)

    connection.refresh_from_db()
    assert connection.status == Connection.Status.ACTIVE
    assert connection.last_error == ""


def test_a_log_capture_of_the_whole_flow_holds_no_token(
    broker_client, broker, sandbox, caplog, queued_syncs
):
    caplog.set_level(logging.DEBUG)

    connect_site(broker_client, sandbox)
    connection = broker.cinc_connections.get()
    first = (connection.access_token, connection.refresh_token)
    expire(connection)
    services.connection_access_token(connection_id=connection.pk)
    connection.refresh_from_db()
    sandbox.control.revoke_tokens()
    expire(connection)
    with pytest.raises(services.ConnectionUnavailable):
        services.connection_access_token(connection_id=connection.pk)

    secrets = [
        *first,
        connection.access_token,
        connection.refresh_token,
        "cinc-portal-dev-secret",
    ]
    assert caplog.records
    for secret in filter(None, secrets):
        assert secret not in caplog.text


def test_rotate_token_key_reencrypts_with_the_new_key(connection, settings):
    access = connection.access_token
    old_key = settings.TOKEN_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEYS = [new_key, old_key]

    call_command("rotate_token_key")

    settings.TOKEN_ENCRYPTION_KEYS = [new_key]
    connection.refresh_from_db()
    assert connection.access_token == access
    settings.TOKEN_ENCRYPTION_KEYS = [old_key]
    with pytest.raises(crypto.TokenDecryptionError):
        connection.refresh_from_db()
        connection.access_token  # noqa: B018 - the read is the test


def test_a_malformed_encryption_key_gives_a_clear_error(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.TOKEN_ENCRYPTION_KEYS = ["not-a-key"]

    with pytest.raises(ImproperlyConfigured, match="Fernet key"):
        crypto.encrypt("x")
