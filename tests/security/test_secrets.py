"""Secrets: no token, client secret or key in logs, pages, the admin or error
pages; sign-in throttled against password guessing.

Tokens are caught where the portal receives them: the token exchange and
every refresh are wrapped (they still run for real against the sandbox), so
every access and refresh token the portal ever held is known to the checks,
not only the last one.
"""

import logging
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from accounts import services
from leads import sync
from leads.models import Lead, SyncRun
from tests.leads.factories import fast_passwords  # noqa: F401 (a fixture)
from tests.security.support import NAMESPACES, body, converters, uuid_urls

pytestmark = pytest.mark.django_db

CLIENT_SECRET = "cinc-portal-dev-secret"
# Loggers the settings quiet; the capture opens them all to DEBUG.
LOGGERS = ("", "urllib3", "django", "django.request", "cinc", "accounts", "leads")


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    """Retries of failing CINC calls wait milliseconds, not seconds."""
    monkeypatch.setattr("cinc.client.BACKOFF_BASE", 0.005)
    monkeypatch.setattr("cinc.client.BACKOFF_CAP", 0.02)


@pytest.fixture
def issued(monkeypatch):
    """Every token the portal receives from the sandbox, as it receives it."""
    tokens = []

    def spy(function):
        def wrapper(*args, **kwargs):
            answer = function(*args, **kwargs)
            tokens.extend(filter(None, (answer.access_token, answer.refresh_token)))
            return answer

        return wrapper

    monkeypatch.setattr(services, "exchange_code", spy(services.exchange_code))
    monkeypatch.setattr(services, "refresh_tokens", spy(services.refresh_tokens))
    return tokens


def connect(client, sandbox, codes):
    """The connect flow through the portal's views; the code is kept."""
    authorize_url = client.post(reverse("accounts:cinc-connect"))["Location"]
    callback = sandbox.control.approve(authorize_url, "buum@cu.com", "sandbox")
    parts = urlsplit(callback)
    codes += parse_qs(parts.query)["code"]
    return client.get(f"{parts.path}?{parts.query}")


def secrets_in(text, secrets):
    return [secret[:6] + "…" for secret in secrets if secret and secret in text]


def all_secrets(settings, issued, codes):
    return [
        *issued,
        *codes,
        CLIENT_SECRET,
        settings.SECRET_KEY,
        *settings.TOKEN_ENCRYPTION_KEYS,
    ]


def test_a_log_capture_of_connect_sync_refresh_create_and_errors_holds_no_secret(
    broker_client,
    broker,
    sandbox,
    caplog,
    issued,
    queued_syncs,
    django_capture_on_commit_callbacks,
    settings,
):
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    sandbox.control.config(limit=1000)
    codes = []

    with django_capture_on_commit_callbacks(execute=True):
        connect(broker_client, sandbox, codes)
    connection = broker.cinc_connections.get()
    sync.sync_connection(connection_id=connection.pk)
    lead = Lead.objects.filter(connection=connection).first()
    # A 401 from CINC: the access token expired early; refreshed, retried.
    sandbox.control.expire_tokens()
    broker_client.post(reverse("leads:refresh", args=[lead.uuid]))
    # Expiring within a minute: refreshed before use, during a sync.
    connection.refresh_from_db()
    connection.token_expires_at = connection.connected_at
    connection.save(update_fields=["token_expires_at"])
    sync.sync_connection(connection_id=connection.pk)
    broker_client.post(
        reverse("leads:create"),
        {"connection": str(connection.uuid), "email": "log.capture@example.test"},
    )
    # CINC failing: API errors, then a refresh the token endpoint refuses.
    sandbox.control.config(fail_rate=1.0)
    broker_client.post(reverse("leads:refresh", args=[lead.uuid]))
    broker_client.post(
        reverse("leads:create"),
        {"connection": str(connection.uuid), "email": "failing@example.test"},
    )
    sandbox.control.config(fail_rate=0, token_fail="400")
    sandbox.control.expire_tokens()
    broker_client.post(reverse("leads:refresh", args=[lead.uuid]))

    connection.refresh_from_db()
    assert connection.status == connection.Status.NEEDS_RECONNECT
    assert len(issued) >= 6  # exchange, then two refreshes, two tokens each
    assert len(caplog.records) > 20
    assert any(record.levelno >= logging.WARNING for record in caplog.records)
    secrets = all_secrets(settings, issued, codes)
    for record in caplog.records:
        text = f"{record.getMessage()} {record.__dict__} {record.exc_text or ''}"
        assert not secrets_in(text, secrets), record.getMessage()
    assert not secrets_in(caplog.text, secrets)


@pytest.fixture
def synced(broker, broker_client, sandbox, issued, queued_syncs):
    """A connection whose token was refreshed once, synced, with a lead
    created through the portal (so every page has rows to show)."""
    sandbox.control.config(limit=1000)
    codes = []
    connect(broker_client, sandbox, codes)
    connection = broker.cinc_connections.get()
    sandbox.control.expire_tokens()
    outcome = sync.sync_connection(connection_id=connection.pk)
    assert outcome.run.status == SyncRun.Status.SUCCEEDED, outcome.run.error
    broker_client.post(
        reverse("leads:create"),
        {"connection": str(connection.uuid), "email": "pages@example.test"},
    )
    connection.refresh_from_db()
    return connection, codes


def own_ids(connection):
    lead = Lead.objects.filter(connection=connection).exclude(raw={}).first()
    return [
        connection.uuid,
        lead.uuid,
        connection.agents.first().uuid,
        connection.sync_runs.first().uuid,
    ]


def page_urls(connection):
    """Every GET page of the broker's apps with the broker's own ids, and
    the list pages with filters and a search."""
    urls = [
        reverse("leads:dashboard"),
        reverse("leads:list") + "?removed=on&sort=-email",
        reverse("leads:list") + f"?q=example&connection={connection.uuid}",
        reverse("leads:export"),
        reverse("leads:create"),
        reverse("leads:create") + "?connection=not-a-uuid",
        reverse("leads:agent-list") + "?removed=on",
        reverse("accounts:cinc-callback") + "?state=forged&code=forged",
    ]
    for name, pattern in uuid_urls():
        (param,) = converters(pattern)
        urls += [reverse(name, kwargs={param: value}) for value in own_ids(connection)]
    return urls


def admin_urls(connection):
    urls = [reverse("admin:index")]
    for model in admin.site._registry:
        meta = model._meta
        if meta.app_label not in NAMESPACES:
            continue
        prefix = f"admin:{meta.app_label}_{meta.model_name}"
        urls.append(reverse(f"{prefix}_changelist"))
        urls.append(reverse(f"{prefix}_changelist") + "?q=buum")
        row = model.objects.order_by("pk").first()
        if row is not None:
            urls.append(reverse(f"{prefix}_change", args=[row.pk]))
    return urls


def test_no_page_and_no_admin_page_shows_a_token(
    synced, broker_client, issued, settings
):
    connection, codes = synced
    staff = get_user_model().objects.create_superuser("root", "r@x.test", "pw-1-root")
    staff_client = Client()
    staff_client.force_login(staff)
    secrets = [
        *all_secrets(settings, issued, codes),
        connection.access_token_ciphertext,
        connection.refresh_token_ciphertext,
    ]

    pages = [(url, broker_client.get(url)) for url in page_urls(connection)]
    pages += [(url, staff_client.get(url)) for url in admin_urls(connection)]

    assert len(issued) >= 4
    shown = [url for url, response in pages if response.status_code == 200]
    assert any("/admin/accounts/connection/" in url for url in shown)
    assert any("/admin/leads/syncrun/" in url for url in shown)
    for url, response in pages:
        assert response.status_code < 500, url
        assert not secrets_in(body(response).decode(errors="replace"), secrets), url


def test_error_pages_show_no_token_with_debug_off(
    synced, broker_client, issued, sandbox, settings, monkeypatch
):
    connection, codes = synced
    settings.DEBUG = False
    lead = Lead.objects.filter(connection=connection).first()
    secrets = all_secrets(settings, issued, codes)
    sandbox.control.config(fail_rate=1.0, token_fail="500")
    sandbox.control.expire_tokens()

    answers = [
        broker_client.post(reverse("leads:refresh", args=[lead.uuid]), follow=True),
        broker_client.post(
            reverse("leads:create"),
            {"connection": str(connection.uuid), "email": "down@example.test"},
            follow=True,
        ),
        broker_client.post(
            reverse("leads:sync-start", args=[connection.uuid]), follow=True
        ),
    ]
    # A bug that puts a token into an exception, on a page with DEBUG off.
    token = connection.access_token

    def broken(**kwargs):
        raise RuntimeError(f"lead counts failed with token {token}")

    monkeypatch.setattr("leads.selectors.lead_counts", broken)
    crashing = Client(raise_request_exception=False)
    crashing.force_login(connection.broker)
    server_error = crashing.get(reverse("leads:dashboard"))

    for response in answers:
        assert response.status_code == 200
        assert b'id="messages"' in response.content
        assert not secrets_in(response.content.decode(), [*secrets, token])
    assert server_error.status_code == 500
    assert token.encode() not in server_error.content
    assert b"Traceback" not in server_error.content
    assert b"lead counts failed" not in server_error.content


# Sign-in throttling ----------------------------------------------------------------

PASSWORD = "correct horse battery staple"  # the make_broker fixture's


def sign_in(client, username, password):
    return client.post(reverse("login"), {"username": username, "password": password})


def signed_in(client):
    return "_auth_user_id" in client.session


def test_right_password_is_refused_after_the_failure_limit(client, broker, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "broker", "wrong password")

    response = sign_in(client, "broker", PASSWORD)

    assert response.status_code == 429
    assert b'id="locked-out"' in response.content
    assert not signed_in(client)


def test_a_correct_password_before_the_limit_signs_in_and_resets(
    client, broker, settings
):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        refused = sign_in(client, "broker", "wrong password")
        assert refused.status_code == 200

    response = sign_in(client, "broker", PASSWORD)
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, "broker", "wrong again")
    again = sign_in(client, "broker", PASSWORD)

    assert response.status_code == 302
    assert again.status_code == 302
    assert signed_in(client)


def test_the_lockout_holds_the_guessed_account_not_everyone(
    client, broker, make_broker, settings
):
    other = make_broker("colleague")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "broker", "wrong password")

    colleague = Client()
    response = sign_in(colleague, other.username, PASSWORD)

    assert response.status_code == 302
    assert signed_in(colleague)
    assert sign_in(Client(), "broker", PASSWORD).status_code == 429
