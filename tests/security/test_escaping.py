"""Hostile text from CINC or from a link is shown as text on every page.

Markup arrives in lead fields synced from the sandbox, in the id of a record
the sync could not read (named in the run's error, shown on the dashboard)
and in the query string of a list; no page may carry it as markup.
"""

import pytest
from django.urls import reverse

from leads import sync
from leads.models import Lead
from tests.security.support import body, converters, uuid_urls

pytestmark = pytest.mark.django_db

MARKUP = (
    b"<img src=x onerror=alert(1)>",
    b"<script>alert(2)</script>",
    b'"><svg onload=alert(3)>',
    b"javascript:alert(4)",
)
HOSTILE_LEAD = {
    "info": {
        "contact": {
            "first_name": "<img src=x onerror=alert(1)>",
            "last_name": "<script>alert(2)</script>",
            "email": "x@example.test",
            "mailing_address": {"city": '"><svg onload=alert(3)>', "state": "GA"},
        },
        "source": "<script>alert(2)</script>",
        "status": "closed",
    }
}
# Not a lead the parser can read (no info object): counted, and its id is
# named in the run's error text.
UNREADABLE = {"id": "<img src=x onerror=alert(1)>", "info": "javascript:alert(4)"}


@pytest.fixture
def hostile(connection, sandbox):
    sandbox.control.add_lead("demo", HOSTILE_LEAD)
    sandbox.control.add_lead("demo", UNREADABLE)
    outcome = sync.sync_connection(connection_id=connection.pk)
    assert outcome.run.record_errors == 1
    assert "onerror" in outcome.run.error
    return connection


def pages(connection):
    lead = Lead.objects.get(connection=connection, email="x@example.test")
    urls = [
        reverse("leads:dashboard"),
        reverse("leads:list"),
        reverse("leads:list") + "?sort=-city",
        reverse("leads:list") + '?q="><svg onload=alert(3)>&status=<script>',
        reverse("leads:agent-list") + "?q=<img src=x onerror=alert(1)>",
        reverse("leads:create"),
        reverse("leads:create") + '?connection="><svg onload=alert(3)>',
    ]
    for name, pattern in uuid_urls():
        (param,) = converters(pattern)
        for value in (connection.uuid, lead.uuid, connection.agents.first().uuid):
            urls.append(reverse(name, kwargs={param: value}))
    return urls


def test_no_page_shows_hostile_text_as_markup(hostile, broker_client):
    shown = 0

    for url in pages(hostile):
        response = broker_client.get(url)
        content = body(response)
        if response.status_code == 200 and b"&lt;" in content:
            shown += 1
        for markup in MARKUP[:3]:
            assert markup not in content, (url, markup)
        assert b'href="javascript:' not in content, url

    assert shown >= 4  # the hostile text is there, escaped


def test_sync_error_with_hostile_record_id_is_escaped_on_the_dashboard(
    hostile, broker_client
):
    response = broker_client.get(reverse("leads:dashboard"))

    assert b"&lt;img src=x onerror=alert(1)&gt;" in response.content
    assert b"<img src=x onerror" not in response.content
