"""Sign in, sign out, password change and reset, in the portal's layout."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from tests.leads.factories import fast_passwords  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def no_lockout(settings):
    settings.AXES_ENABLED = False


def test_login_page_is_the_portals(client):
    response = client.get(reverse("login"))

    content = response.content.decode()
    assert response.status_code == 200
    assert 'id="login-form"' in content
    assert 'for="id_username"' in content
    assert 'for="id_password"' in content
    assert 'id="forgot-password"' in content
    assert 'id="main-nav"' not in content  # no navigation before signing in


def test_sign_in_lands_on_the_dashboard_with_navigation(client, broker):
    response = client.post(
        reverse("login"), {"username": "broker", "password": PASSWORD}, follow=True
    )

    content = response.content.decode()
    assert response.redirect_chain[-1][0] == reverse("leads:dashboard")
    for element in (
        "nav-dashboard",
        "nav-leads",
        "nav-agents",
        "nav-new-lead",
        "broker-name",
    ):
        assert f'id="{element}"' in content, element
    assert broker.get_full_name() in content


def test_wrong_password_says_so_and_keeps_the_username(client, broker):
    response = client.post(reverse("login"), {"username": "broker", "password": "nope"})

    assert response.status_code == 200
    assert b'id="login-error"' in response.content
    assert b'value="broker"' in response.content


def test_sign_out_is_a_post(broker_client):
    assert broker_client.get(reverse("logout")).status_code == 405

    response = broker_client.post(reverse("logout"))

    assert response.status_code == 302
    assert broker_client.get(reverse("leads:dashboard")).status_code == 302


def test_password_change(broker_client, broker):
    page = broker_client.get(reverse("password_change"))
    assert b'id="password-change-form"' in page.content

    response = broker_client.post(
        reverse("password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "a much newer passphrase",
            "new_password2": "a much newer passphrase",
        },
        follow=True,
    )

    broker.refresh_from_db()
    assert broker.check_password("a much newer passphrase")
    assert b'id="password-change-done"' in response.content


def test_password_change_errors_are_shown_next_to_the_fields(broker_client):
    response = broker_client.post(
        reverse("password_change"),
        {"old_password": "wrong", "new_password1": "a", "new_password2": "b"},
    )

    assert response.status_code == 200
    assert b'id="id_old_password_error"' in response.content


def test_password_reset_by_email(client, broker):
    broker.email = "broker@example.com"
    broker.save()

    response = client.post(
        reverse("password_reset"), {"email": "broker@example.com"}, follow=True
    )

    assert b'id="password-reset-done"' in response.content
    (message,) = mail.outbox
    assert message.subject == "Reset your CINC Portal password"
    link = re.search(r"http://testserver(/\S+)", message.body).group(1)
    form = client.get(link, follow=True)
    assert b'id="password-reset-confirm-form"' in form.content
    done = client.post(
        form.redirect_chain[-1][0],
        {
            "new_password1": "fresh passphrase 42",
            "new_password2": "fresh passphrase 42",
        },
        follow=True,
    )
    assert b'id="password-reset-complete"' in done.content
    broker.refresh_from_db()
    assert broker.check_password("fresh passphrase 42")


def test_password_reset_with_a_bad_link_explains(client):
    response = client.get(
        reverse("password_reset_confirm", kwargs={"uidb64": "MQ", "token": "x-y"})
    )

    assert b'id="password-reset-invalid"' in response.content
