"""The OAuth2 connect flow, end to end against the sandbox over HTTP."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from accounts.models import Connection
from tests.conftest import connect_site


def callback_path(url):
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def follow_messages(response):
    return [str(message) for message in response.context["messages"]]


def test_dashboard_without_connection_offers_connect(broker_client):
    response = broker_client.get(reverse("leads:dashboard"))

    assert response.status_code == 200
    assert b"Connect your CINC site" in response.content


def test_connect_redirects_to_cinc_with_the_documented_parameters(
    broker_client, sandbox
):
    response = broker_client.post(reverse("accounts:cinc-connect"))

    location = urlsplit(response["Location"])
    params = parse_qs(location.query)
    assert response.status_code == 302
    assert (
        f"{location.scheme}://{location.netloc}{location.path}" == sandbox.authorize_url
    )
    assert params["client_id"] == ["cinc-portal-dev"]
    assert params["response_type"] == ["code"]
    assert params["redirect_uri"] == ["http://127.0.0.1:8000/cinc/callback/"]
    assert params["scope"] == ["api:read api:create"]
    assert len(params["state"][0]) >= 32


def test_each_connect_gets_a_fresh_state(broker_client, sandbox):
    first = broker_client.post(reverse("accounts:cinc-connect"))["Location"]
    second = broker_client.post(reverse("accounts:cinc-connect"))["Location"]

    assert (
        parse_qs(urlsplit(first).query)["state"]
        != parse_qs(urlsplit(second).query)["state"]
    )


def test_approve_stores_encrypted_tokens_and_queues_first_sync(
    broker_client, broker, sandbox, queued_syncs, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = connect_site(broker_client, sandbox)

    connection = broker.cinc_connections.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("leads:dashboard")
    assert connection.cinc_agent_id == "AGENT_MDID0"
    assert connection.cinc_username == "buum@cu.com"
    assert "broker" in connection.cinc_roles
    assert connection.scopes == ["api:read", "api:create"]
    assert connection.status == Connection.Status.ACTIVE
    assert connection.access_token and connection.refresh_token
    assert connection.token_expires_at is not None
    assert queued_syncs == [connection.pk]
    page = broker_client.get(response["Location"])
    assert "Connected to CINC" in " ".join(follow_messages(page))
    assert b"buum@cu.com" in page.content


def test_tokens_are_never_in_the_raw_database_column(connection, django_db_blocker):
    from django.db import connection as db

    access, refresh = connection.access_token, connection.refresh_token
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT access_token_ciphertext, refresh_token_ciphertext "
            "FROM accounts_connection WHERE id = %s",
            [connection.pk],
        )
        stored = cursor.fetchone()

    assert access not in stored[0] and refresh not in stored[1]
    assert stored[0].startswith("gAAAA")  # a Fernet token


def test_tokens_are_not_on_the_dashboard_or_in_the_admin(
    connection, broker_client, admin_client
):
    access, refresh = connection.access_token, connection.refresh_token

    pages = [
        broker_client.get(reverse("leads:dashboard")).content.decode(),
        admin_client.get(
            reverse("admin:accounts_connection_changelist")
        ).content.decode(),
        admin_client.get(
            reverse("admin:accounts_connection_change", args=[connection.pk])
        ).content.decode(),
    ]

    for html in pages:
        assert access not in html
        assert refresh not in html
        assert connection.access_token_ciphertext not in html
    assert "buum@cu.com" in pages[2]


def test_connection_str_and_repr_hold_no_token(connection):
    assert connection.access_token not in str(connection)
    assert connection.access_token not in repr(connection)


def test_deny_connects_nothing_and_says_so(broker_client, broker, sandbox):
    authorize_url = broker_client.post(reverse("accounts:cinc-connect"))["Location"]
    callback = sandbox.control.deny(authorize_url)

    response = broker_client.get(callback_path(callback), follow=True)

    assert "error=access_denied" in callback
    assert not broker.cinc_connections.exists()
    assert any("cancelled" in message for message in follow_messages(response))


@pytest.mark.parametrize(
    "tamper",
    [
        lambda query: query.replace("state=", "state=x"),
        lambda query: "&".join(
            p for p in query.split("&") if not p.startswith("state=")
        ),
    ],
    ids=["tampered", "missing"],
)
def test_bad_state_is_refused_before_the_code_is_used(
    broker_client, broker, sandbox, tamper
):
    authorize_url = broker_client.post(reverse("accounts:cinc-connect"))["Location"]
    callback = urlsplit(
        sandbox.control.approve(
            authorize_url, username="buum@cu.com", password="sandbox"
        )
    )
    sandbox.control.reset_stats()

    response = broker_client.get(
        f"{callback.path}?{tamper(callback.query)}", follow=True
    )

    assert response.status_code == 200
    assert not broker.cinc_connections.exists()
    assert sandbox.control.stats()["requests"]["token"] == 0
    assert any("connect" in message.lower() for message in follow_messages(response))


def test_replayed_state_is_refused(broker_client, broker, sandbox, queued_syncs):
    authorize_url = broker_client.post(reverse("accounts:cinc-connect"))["Location"]
    callback = callback_path(
        sandbox.control.approve(
            authorize_url, username="buum@cu.com", password="sandbox"
        )
    )
    broker_client.get(callback)
    broker.cinc_connections.all().delete()

    response = broker_client.get(callback, follow=True)

    assert not broker.cinc_connections.exists()
    assert any("already been used" in message for message in follow_messages(response))


def test_state_from_another_session_is_refused(client, make_broker, sandbox):
    alice, mallory = make_broker("alice"), make_broker("mallory")
    client.force_login(mallory)
    authorize_url = client.post(reverse("accounts:cinc-connect"))["Location"]
    callback = callback_path(
        sandbox.control.approve(
            authorize_url, username="buum@cu.com", password="sandbox"
        )
    )
    client.logout()
    client.force_login(alice)

    response = client.get(callback, follow=True)

    assert not Connection.objects.exists()
    assert response.status_code == 200


def test_replayed_code_is_refused_by_cinc(broker_client, broker, sandbox, queued_syncs):
    first = urlsplit(
        sandbox.control.approve(
            broker_client.post(reverse("accounts:cinc-connect"))["Location"],
            username="buum@cu.com",
            password="sandbox",
        )
    )
    broker_client.get(f"{first.path}?{first.query}")
    broker.cinc_connections.all().delete()
    second_state = parse_qs(
        urlsplit(broker_client.post(reverse("accounts:cinc-connect"))["Location"]).query
    )["state"][0]
    code = parse_qs(first.query)["code"][0]

    response = broker_client.get(
        reverse("accounts:cinc-callback"),
        {"code": code, "state": second_state},
        follow=True,
    )

    assert not broker.cinc_connections.exists()
    assert any(
        "refused the sign-in" in message for message in follow_messages(response)
    )


@pytest.mark.parametrize(
    ("knobs", "expected"),
    [
        ({"token_fail": "400"}, "refused the sign-in"),
        ({"token_fail": "500"}, "did not answer in time or failed"),
        ({"token_fail": "slow", "token_delay": 4}, "did not answer in time or failed"),
    ],
    ids=["400", "500", "timeout"],
)
def test_token_endpoint_faults_give_a_clear_message(
    broker_client, broker, sandbox, settings, knobs, expected
):
    settings.CINC_TIMEOUT = 1.0
    authorize_url = broker_client.post(reverse("accounts:cinc-connect"))["Location"]
    callback = callback_path(
        sandbox.control.approve(
            authorize_url, username="buum@cu.com", password="sandbox"
        )
    )
    sandbox.control.config(**knobs)

    response = broker_client.get(callback, follow=True)

    assert response.status_code == 200
    assert not broker.cinc_connections.exists()
    assert any(expected in message for message in follow_messages(response))


def test_agent_without_broker_role_keeps_nothing(broker_client, broker, sandbox):
    # agent@demo.test is a plain agent of the demo site, not a broker.
    response = connect_site(broker_client, sandbox, username="agent@demo.test")
    page = broker_client.get(response["Location"])

    assert not broker.cinc_connections.exists()
    assert any("not a broker" in message for message in follow_messages(page))


def test_narrower_scopes_are_kept_and_the_dashboard_says_what_they_disable(
    broker_client, broker, sandbox, queued_syncs
):
    connect_site(broker_client, sandbox, scopes=["api:read"])

    connection = broker.cinc_connections.get()
    page = broker_client.get(reverse("leads:dashboard"))
    assert connection.scopes == ["api:read"]
    assert connection.requested_scopes == ["api:read", "api:create"]
    assert not connection.can_create_leads
    assert b"create leads in CINC" in page.content


def test_a_broker_can_connect_two_sites(broker_client, broker, sandbox, queued_syncs):
    connect_site(broker_client, sandbox)
    connect_site(broker_client, sandbox, username="broker@second.test")

    assert sorted(broker.cinc_connections.values_list("cinc_username", flat=True)) == [
        "broker@second.test",
        "buum@cu.com",
    ]


def test_connecting_the_same_site_again_updates_the_connection(
    broker_client, broker, sandbox, queued_syncs
):
    connect_site(broker_client, sandbox)
    first_token = broker.cinc_connections.get().access_token

    connect_site(broker_client, sandbox)

    connection = broker.cinc_connections.get()
    assert connection.access_token != first_token


def test_callback_requires_sign_in(client, sandbox):
    response = client.get(
        reverse("accounts:cinc-callback"), {"code": "x", "state": "y"}
    )

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(
    "query",
    [
        "",
        "state=" + "a" * 5000 + "&code=x",
        "state=a&state=b&code=x",
        "code=%00%01&state=%ff",
        "error=server_error&error_description=%3Cscript%3E&state=zzz",
    ],
    ids=["empty", "huge", "repeated", "binary", "error-junk"],
)
def test_callback_with_junk_answers_with_a_clear_page(broker_client, sandbox, query):
    response = broker_client.get(
        f"{reverse('accounts:cinc-callback')}?{query}", follow=True
    )

    assert response.status_code == 200
    assert b"<script>" not in response.content
    assert follow_messages(response)


def test_another_brokers_connection_is_404(connection, make_broker, client):
    other = make_broker("other")
    client.force_login(other)

    reconnect = client.post(reverse("accounts:cinc-reconnect", args=[connection.uuid]))
    disconnect = client.post(
        reverse("accounts:cinc-disconnect", args=[connection.uuid])
    )

    assert reconnect.status_code == 404
    assert disconnect.status_code == 404
    connection.refresh_from_db()
    assert connection.status == Connection.Status.ACTIVE


def test_disconnect_forgets_tokens_and_keeps_the_mirror(connection, broker_client):
    response = broker_client.post(
        reverse("accounts:cinc-disconnect", args=[connection.uuid])
    )

    connection.refresh_from_db()
    assert response.status_code == 302
    assert connection.status == Connection.Status.DISCONNECTED
    assert connection.access_token_ciphertext == ""
    assert connection.refresh_token_ciphertext == ""


def test_disconnect_can_delete_the_mirror(connection, broker_client):
    broker_client.post(
        reverse("accounts:cinc-disconnect", args=[connection.uuid]),
        {"delete_mirror": "on"},
    )

    assert not Connection.objects.filter(pk=connection.pk).exists()


def test_reconnect_starts_a_new_consent(connection, broker_client, sandbox):
    response = broker_client.post(
        reverse("accounts:cinc-reconnect", args=[connection.uuid])
    )

    assert response.status_code == 302
    assert response["Location"].startswith(sandbox.authorize_url)


def test_pkce_is_sent_when_enabled(
    broker_client, broker, sandbox, settings, queued_syncs
):
    settings.CINC_USE_PKCE = True

    authorize_url = broker_client.post(reverse("accounts:cinc-connect"))["Location"]
    params = parse_qs(urlsplit(authorize_url).query)
    callback = callback_path(
        sandbox.control.approve(
            authorize_url, username="buum@cu.com", password="sandbox"
        )
    )
    broker_client.get(callback)

    assert params["code_challenge_method"] == ["S256"]
    assert broker.cinc_connections.get().is_active


def test_reconnect_as_another_cinc_user_changes_nothing(
    connection, broker_client, broker, sandbox
):
    authorize_url = broker_client.post(
        reverse("accounts:cinc-reconnect", args=[connection.uuid])
    )["Location"]
    # AGENT_MDID10 is another broker of the same demo site.
    other = next(a for a in sandbox.control.agents("demo") if a["id"] == "AGENT_MDID10")
    callback = sandbox.control.approve(
        authorize_url, username=other["info"]["contact"]["email"], password="sandbox"
    )

    response = broker_client.get(callback_path(callback), follow=True)

    assert list(broker.cinc_connections.values_list("cinc_agent_id", flat=True)) == [
        "AGENT_MDID0"
    ]
    assert any("belongs to buum@cu.com" in m for m in follow_messages(response))
