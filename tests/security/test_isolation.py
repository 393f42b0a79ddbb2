"""Two brokers, each connected to their own sandbox site and mirrored by a
real sync: broker B, signed in, reaches none of broker A's data.

Every URL of the ``leads`` and ``accounts`` apps is found by walking the URL
resolver, so a URL added later is covered (or fails the coverage test) without
editing this file. A URL with a uuid is asked, by GET and POST, with each of
A's ids (connection, agent, lead, sync run, lead write): the answer is the
same as for a uuid nobody owns, a 404 (or 405 where the method is not
served), and nothing changes. Lists, searches, the export and the forms are
asked with A's ids and A's names and emails as filters: a 404 for a foreign
id, otherwise a page without a byte of A's data.
"""

import uuid

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.urls.converters import UUIDConverter

from accounts.models import Connection
from leads import sync
from leads.models import Agent, Lead, LeadWrite, SyncRun
from tests.conftest import connect_site
from tests.leads.factories import fast_passwords  # noqa: F401 (a fixture)
from tests.security.support import (
    NAMESPACES,
    app_urls,
    body,
    converters,
    uuid_urls,
)

pytestmark = pytest.mark.django_db

SEED = {
    "agents": 8,
    "leads": 40,
    "seed": 7,
    "second_site_agents": 6,
    "second_site_leads": 30,
}
# One lead per site with values found nowhere else, so "absent from the page"
# cannot be confused with "the other site has someone of that name".
MARKERS = {
    "demo": {
        "first_name": "Aurelia",
        "last_name": "Zwickelbaum",
        "email": "aurelia.only-a@site-a.test",
        "phone_numbers": {"cell_phone": "(404) 555-0199"},
    },
    "second": {
        "first_name": "Bertrand",
        "last_name": "Quistorpe",
        "email": "bertrand.only-b@site-b.test",
    },
}
# The URLs without a uuid, and how B asks each with A's data (see below).
# A new URL without parameters must be added here, or the coverage test fails.
PLAIN_URLS = {
    "leads:dashboard",
    "leads:list",
    "leads:export",
    "leads:create",
    "leads:agent-list",
    "accounts:cinc-connect",
    "accounts:cinc-callback",
}


@pytest.fixture
def sites(sandbox, make_broker, queued_syncs, django_capture_on_commit_callbacks):
    """Broker A on the demo site, broker B on the second site, each connected
    through the OAuth flow and mirrored by a sync; A has also created a lead
    through the portal (so A has a lead write)."""
    sandbox.control.reset(**SEED)
    for site, contact in MARKERS.items():
        sandbox.control.add_lead(site, {"info": {"contact": contact}})
    sandbox.control.config(limit=1000)

    brokers = {}
    for key, username in (("a", "buum@cu.com"), ("b", "broker@second.test")):
        broker = make_broker(f"broker-{key}")
        client = Client()
        client.force_login(broker)
        with django_capture_on_commit_callbacks(execute=True):
            connect_site(client, sandbox, username=username)
        connection = broker.cinc_connections.get()
        outcome = sync.sync_connection(connection_id=connection.pk)
        assert outcome.run.status == SyncRun.Status.SUCCEEDED, outcome.run.error
        brokers[key] = {"broker": broker, "client": client, "connection": connection}

    a = brokers["a"]
    response = a["client"].post(
        reverse("leads:create"),
        {
            "connection": str(a["connection"].uuid),
            "email": "created.by-a@site-a.test",
            "first_name": "Cordelia",
            "last_name": "Fenwickshaw",
        },
    )
    assert response.status_code == 302, response.content[:500]
    return brokers


def ids_of(connection):
    """One of each kind of uuid the broker owns."""
    marker = Lead.objects.get(
        connection=connection, email__in=[m["email"] for m in MARKERS.values()]
    )
    agent = Agent.objects.filter(connection=connection).order_by("pk").first()
    ids = {
        "connection": connection.uuid,
        "agent": (marker.primary_agent or agent).uuid,
        "lead": marker.uuid,
        "sync run": SyncRun.objects.filter(connection=connection).first().uuid,
    }
    write = LeadWrite.objects.filter(connection=connection).first()
    if write is not None:
        ids["lead write"] = write.uuid
    return ids


def secrets_of(connection):
    """Byte strings that only broker A's data contains: its rows' uuids,
    CINC ids, emails and marker names, minus anything found in B's site
    (``AGENT_MDID1`` is part of B's ``AGENT_MDID1000``)."""
    values = {str(connection.uuid), connection.cinc_username}
    for model in (Lead, Agent):
        for row in model.objects.filter(connection=connection):
            values |= {str(row.uuid), row.cinc_id, row.email}
    values |= {str(run.uuid) for run in connection.sync_runs.all()}
    values |= {"Aurelia", "Zwickelbaum", "Cordelia", "Fenwickshaw"}
    others = set()
    for model in (Lead, Agent):
        for row in model.objects.exclude(connection=connection):
            others |= {row.cinc_id, row.email}
    return {
        value.encode()
        for value in values
        if value and len(value) > 3 and not any(value in other for other in others)
    }


def leaked(response, secrets):
    """A's values found in the response, apart from those the request itself
    carried (a search box shows what was searched for)."""
    content = body(response)
    asked = response.wsgi_request.get_full_path()
    asked += " ".join(response.wsgi_request.GET.values())
    return sorted(
        secret.decode()
        for secret in secrets
        if secret in content and secret.decode() not in asked
    )


def state_of(connection):
    connection.refresh_from_db()
    return (
        connection.status,
        connection.access_token_ciphertext,
        SyncRun.objects.filter(connection=connection).count(),
        LeadWrite.objects.filter(connection=connection).count(),
        Lead.objects.filter(connection=connection).count(),
    )


# Coverage of the URL map -----------------------------------------------------


def test_every_url_parameter_is_a_uuid_and_every_plain_url_is_covered():
    """A URL with another kind of parameter, or a new plain URL, needs this
    module taught how to ask it with another broker's data."""
    urls = app_urls()

    for name, pattern in urls:
        for param, converter in converters(pattern).items():
            assert isinstance(converter, UUIDConverter), f"{name}: {param}"
    plain = {name for name, pattern in urls if not converters(pattern)}
    assert plain == PLAIN_URLS
    assert len(uuid_urls()) >= 6


# Pages with an id in the path --------------------------------------------------


def test_every_url_with_an_id_answers_404_for_another_brokers_ids(sites):
    a, b = sites["a"], sites["b"]
    foreign = ids_of(a["connection"])
    secrets = secrets_of(a["connection"])
    before = state_of(a["connection"])
    assert set(foreign) == {"connection", "agent", "lead", "sync run", "lead write"}
    asked = set()

    for name, pattern in uuid_urls():
        (param,) = converters(pattern)
        nobodys = reverse(name, kwargs={param: uuid.uuid4()})
        for method in ("get", "post"):
            expected = getattr(b["client"], method)(nobodys).status_code
            assert expected in (404, 405), (name, method, expected)
            for kind, value in foreign.items():
                url = reverse(name, kwargs={param: value})
                response = getattr(b["client"], method)(url)
                assert response.status_code == expected, (name, method, kind)
                assert not leaked(response, secrets), (name, method, kind)
                asked.add(name)

    assert asked == {name for name, _ in uuid_urls()}
    assert state_of(a["connection"]) == before


def test_the_same_urls_serve_the_owner(sites):
    """The 404s above are about ownership, not broken URLs: A's own client
    gets a page (or a redirect after a POST) for at least one of A's ids."""
    a = sites["a"]
    own = ids_of(a["connection"])

    for name, pattern in uuid_urls():
        (param,) = converters(pattern)
        statuses = set()
        for method in ("get", "post"):
            if method == "post" and name == "accounts:cinc-disconnect":
                continue  # would disconnect A; its GET page is enough
            for value in own.values():
                url = reverse(name, kwargs={param: value})
                statuses.add(getattr(a["client"], method)(url).status_code)
        assert statuses & {200, 302}, (name, statuses)


# Lists, search, export and forms -------------------------------------------------


def test_filters_with_another_brokers_ids_are_404(sites):
    a, b = sites["a"], sites["b"]
    foreign = ids_of(a["connection"])
    urls = [
        reverse("leads:list") + f"?connection={foreign['connection']}",
        reverse("leads:list") + f"?agent={foreign['agent']}",
        reverse("leads:export") + f"?connection={foreign['connection']}",
        reverse("leads:export") + f"?agent={foreign['agent']}",
        reverse("leads:agent-list") + f"?connection={foreign['connection']}",
        reverse("leads:create") + f"?connection={foreign['connection']}",
        # An id of another kind in the connection parameter is no better.
        reverse("leads:create") + f"?connection={foreign['lead']}",
        reverse("leads:list") + f"?connection={foreign['agent']}",
    ]

    for url in urls:
        response = b["client"].get(url)
        assert response.status_code == 404, url


def test_lists_searches_and_export_hold_none_of_the_other_brokers_data(sites):
    a, b = sites["a"], sites["b"]
    secrets = secrets_of(a["connection"])
    marker = Lead.objects.get(connection=a["connection"], last_name="Zwickelbaum")
    agent = Agent.objects.filter(connection=a["connection"]).first()
    searches = [
        marker.email,
        marker.last_name,
        "Aurelia Zwickelbaum",
        "404 555 0199",
        marker.cinc_id,
        "Fenwickshaw",
        "site-a.test",
    ]
    responses = [
        b["client"].get(reverse("leads:dashboard")),
        b["client"].get(reverse("leads:list")),
        b["client"].get(reverse("leads:list"), {"removed": "on", "sort": "email"}),
        b["client"].get(reverse("leads:agent-list"), {"removed": "on"}),
        b["client"].get(reverse("leads:agent-list"), {"q": agent.email}),
        b["client"].get(reverse("leads:export"), {"removed": "on"}),
        b["client"].get(reverse("leads:create")),
    ]
    for text in searches:
        responses.append(b["client"].get(reverse("leads:list"), {"q": text}))
        responses.append(b["client"].get(reverse("leads:export"), {"q": text}))

    for response in responses:
        assert response.status_code == 200
        assert not leaked(response, secrets), response.wsgi_request.get_full_path()
    # B's own pages do list B's data: the absence above is not an empty page.
    assert b"Quistorpe" in body(responses[1])
    assert b"bertrand.only-b@site-b.test" in body(responses[5])


def test_new_lead_form_takes_nothing_of_the_other_broker(sites, sandbox):
    a, b = sites["a"], sites["b"]
    foreign = ids_of(a["connection"])
    secrets = secrets_of(a["connection"])
    own = str(b["connection"].uuid)
    posts_before = sandbox.control.stats()["requests"].get("lead_create", 0)
    new = {"email": "new.for-b@site-b.test", "first_name": "Ottilie"}

    as_a = b["client"].post(
        reverse("leads:create"), {**new, "connection": str(foreign["connection"])}
    )
    with_a_agent = b["client"].post(
        reverse("leads:create"),
        {**new, "connection": own, "primary_agent": str(foreign["agent"])},
    )
    fill_from_a = b["client"].post(
        reverse("leads:create"),
        {**new, "connection": own, "fill": "1", "existing_lead": str(foreign["lead"])},
    )

    assert as_a.status_code == 404
    assert with_a_agent.status_code == 200
    assert b"Select a valid choice" in with_a_agent.content
    assert fill_from_a.status_code == 200
    assert b"could not be found" in fill_from_a.content
    for response in (as_a, with_a_agent, fill_from_a):
        assert not leaked(response, secrets)
    assert not LeadWrite.objects.filter(connection=b["connection"]).exists()
    assert sandbox.control.stats()["requests"].get("lead_create", 0) == posts_before


def test_callback_with_the_other_brokers_consent_connects_nothing(sites, sandbox):
    a, b = sites["a"], sites["b"]
    authorize_url = a["client"].post(reverse("accounts:cinc-connect"))["Location"]
    callback = sandbox.control.approve(authorize_url, "buum@cu.com", "sandbox")
    path_and_query = callback.split("/", 3)[3]

    response = b["client"].get("/" + path_and_query, follow=True)

    assert response.status_code == 200
    assert b"did not start here" in response.content
    assert list(Connection.objects.filter(broker=b["broker"])) == [b["connection"]]
    assert not leaked(response, secrets_of(a["connection"]))


# The admin -----------------------------------------------------------------------


def admin_pages(connection):
    """The admin index, every registered model's list, and the change page
    of one of A's rows for each model that has one."""
    urls = [reverse("admin:index")]
    for model in admin.site._registry:
        meta = model._meta
        if meta.app_label not in NAMESPACES:
            continue
        urls.append(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        field_names = {f.name for f in meta.get_fields()}
        if model is Connection:
            row = connection
        elif "connection" in field_names:
            row = model.objects.filter(connection=connection).first()
        else:
            row = None
        if row is not None:
            name = f"admin:{meta.app_label}_{meta.model_name}_change"
            urls.append(reverse(name, args=[row.pk]))
    return urls


def test_only_staff_reach_the_admin(sites):
    a, b = sites["a"], sites["b"]
    urls = admin_pages(a["connection"])
    staff = get_user_model().objects.create_superuser("root", "r@x.test", "pw-1-root")
    staff_client = Client()
    staff_client.force_login(staff)

    for url in urls:
        refused = b["client"].get(url)
        assert refused.status_code == 302, url
        assert refused["Location"].startswith(reverse("admin:login")), url
        assert staff_client.get(url).status_code == 200, url
    assert any("/accounts/connection/" in url for url in urls)
    assert any("/leads/syncrun/" in url for url in urls)
