"""Requests a broker did not mean to make: every POST of the broker's apps
needs the CSRF token, and sign-in never sends the broker to another site."""

import pytest
from django.test import Client
from django.urls import reverse

from leads.models import SyncRun
from tests.leads.factories import (  # noqa: F401 (fast_passwords is a fixture)
    fast_passwords,
    make_agent,
    make_connection,
    make_lead,
)
from tests.security.support import app_urls, converters

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"  # the make_broker fixture's


@pytest.fixture
def rows(broker):
    connection = make_connection(broker)
    agent = make_agent(connection)
    lead = make_lead(connection, primary_agent=agent)
    return {"connection": connection, "agent": agent, "lead": lead}


def post_urls(rows):
    """Every URL of the apps, with each of the broker's own ids where the
    URL takes one."""
    urls = []
    for name, pattern in app_urls():
        params = converters(pattern)
        if not params:
            urls.append(reverse(name))
            continue
        (param,) = params
        urls += [reverse(name, kwargs={param: row.uuid}) for row in rows.values()]
    return urls


def test_every_post_without_the_csrf_token_is_refused(broker, rows):
    client = Client(enforce_csrf_checks=True)
    client.force_login(broker)
    connection = rows["connection"]
    data = {"connection": str(connection.uuid), "email": "forged@example.test"}
    refused = 0

    for url in post_urls(rows):
        response = client.post(url, data)
        assert response.status_code in (403, 405), url
        refused += response.status_code == 403

    connection.refresh_from_db()
    assert refused >= 6
    assert connection.status == connection.Status.ACTIVE
    assert not SyncRun.objects.exists()


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "https:evil.example",
        "javascript:alert(1)",
    ],
)
def test_sign_in_never_redirects_to_another_site(client, broker, target):
    response = client.post(
        reverse("login") + "?next=" + target,
        {"username": "broker", "password": PASSWORD, "next": target},
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("leads:dashboard")
