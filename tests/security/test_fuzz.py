"""Bad input: every query parameter of the broker's list pages, the export and
the dashboard, and every field of the new-lead form, fuzzed with Hypothesis;
oversized input; CINC records that are not what the documentation shows.

What is checked:

- never a 5xx, whatever the parameters (repeated, empty, huge, unicode, NUL
  bytes, broken percent escapes);
- a value the page cannot use is named in a visible message (an independent
  model of each parameter, below, says which values are unusable);
- another broker's uuid is a 404 (that path is tested in depth in
  ``test_isolation``);
- a lead form post shows the broker what happened: field errors, the
  confirmation step, or a flash message (after a redirect);
- oversized query strings and form bodies get a 4xx or a message;
- malformed upstream records are counted in the sync run and named in its
  error, never a crash and never dropped without a count.
"""

import re
import string
import uuid
from urllib.parse import urlencode

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leads import sync
from leads.filters import AGENT_SORTS, LEAD_SORTS
from leads.models import Agent, Lead, SyncRun
from leads.selectors import DOCUMENTED_AGENT_STATUSES, DOCUMENTED_LEAD_STATUSES
from leads.views import MAX_QUERY_STRING

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# The query-parameter tests run fewer examples: each one renders a list.
FUZZ_PAGES = settings(FUZZ, max_examples=40)
MEGABYTE = 1024 * 1024

LEAD_PARAMS = (
    "q",
    "status",
    "source",
    "buyer",
    "seller",
    "agent",
    "city",
    "state",
    "registered_from",
    "registered_to",
    "connection",
    "removed",
    "sort",
    "page",
)
AGENT_PARAMS = ("q", "status", "connection", "removed", "sort", "page")
# Dates the filter must refuse: impossible, or outside 1900-2999.
BAD_DATES = ("2024-02-30", "2024-13-01", "0001-01-01", "9999-12-31", "1899-12-31")
GOOD_DATES = ("2024-01-31", "2026-11-01", "11/01/2026")
JUNK = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "-",
    "--name",
    "0",
    "-1",
    "00",
    "1e3",
    "١٢",
    "９",
    "12/31/2024",
    "Dec 31 2024",
    "yes",
    "no",
    "on",
    "true",
    "null",
    "[]",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "%00",
    "../../etc/passwd",
    "\u202etxt.exe",
    "💥" * 5,
    "x" * 5000,
    "9" * 40,
    *BAD_DATES,
)
# Any text but lone surrogates, which no URL or form can carry.
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=30)
# Pieces of query strings that no encoder would write.
RAW_PIECES = ("%ff", "%fe%ff", "%00", "%", "%zz", "&", "=", ";", "+", "%C3%28")


def values(good):
    return st.one_of(st.sampled_from(good), st.sampled_from(JUNK), TEXT)


@pytest.fixture
def mirror(sandbox, connection):
    """The broker's connection with the sandbox's demo site synced."""
    sandbox.control.config(limit=10_000)
    outcome = sync.sync_connection(connection_id=connection.pk)
    assert outcome.run.status == SyncRun.Status.SUCCEEDED, outcome.run.error
    return connection


def good_values(connection, sorts):
    """Values each parameter can use, to mix with junk."""
    agents = Agent.objects.filter(connection=connection)
    leads = Lead.objects.filter(connection=connection)
    return {
        "uuids": [str(connection.uuid), *(str(a.uuid) for a in agents[:3])],
        "foreign": [str(uuid.uuid4()), str(leads.first().uuid)],
        "status": [*DOCUMENTED_LEAD_STATUSES, *DOCUMENTED_AGENT_STATUSES],
        "source": list(leads.values_list("source", flat=True).distinct()[:5]),
        "sort": [*sorts, *(f"-{key}" for key in sorts)],
        "dates": list(GOOD_DATES),
        "words": [leads.first().last_name, leads.first().email, "@", "404"],
        "flags": ["yes", "no", "on", ""],
        "pages": ["1", "2", "999999999", "0"],
    }


def param_values(name, good):
    by_name = {
        "q": good["words"],
        "status": good["status"],
        "source": good["source"] or ["x"],
        "buyer": good["flags"],
        "seller": good["flags"],
        "removed": good["flags"],
        "agent": good["uuids"] + good["foreign"],
        "connection": good["uuids"] + good["foreign"],
        "city": good["words"],
        "state": ["GA", "ga"],
        "registered_from": good["dates"],
        "registered_to": good["dates"],
        "sort": good["sort"],
        "page": good["pages"],
    }
    return values(by_name[name])


def query_pairs(draw, names, good):
    """A list of (name, value): names repeat, values mix good and junk."""
    pairs = draw(
        st.lists(
            st.sampled_from(names).flatmap(
                lambda name: st.tuples(st.just(name), param_values(name, good))
            ),
            max_size=8,
        )
    )
    return pairs


# A model of each parameter, independent of the views: which last values
# (Django reads the last of repeated parameters) a page must refuse.


def last(pairs, name):
    found = [value for key, value in pairs if key == name]
    return found[-1] if found else None


def is_uuid(value):
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def text_refused(value, limit):
    return "\x00" in value or len(value.strip()) > limit


def date_refused(value):
    """True: refused; False: accepted; None: this model cannot tell."""
    value = value.strip()
    if not value or value in GOOD_DATES:
        return False
    if "\x00" in value or value in BAD_DATES:
        return True
    if not any(ch in string.digits for ch in value):
        return True
    return None


def page_refused(value):
    return not (value.isascii() and value.isdigit() and len(value) <= 9)


def choice_refused(value, choices):
    return value != "" and value not in choices


def expected(pairs, *, kind, owned, choices):
    """(status, refused, unsure): 404 when a uuid parameter names a row the
    broker does not own, else 200; ``refused`` names the parameters a
    message must mention, ``unsure`` those this model cannot judge."""
    uuid_params = ("connection", "agent") if kind == "leads" else ("connection",)
    for name in uuid_params:
        value = last(pairs, name)
        if value and is_uuid(value) and uuid.UUID(value) not in owned[name]:
            return 404, [], []

    refused, unsure = [], []
    for name in {key for key, _ in pairs}:
        value = last(pairs, name)
        if name == "q":
            bad = text_refused(value, 100)
        elif name in ("city", "state"):
            bad = text_refused(value, 120)
        elif name in ("status", "source", "buyer", "seller", "sort"):
            bad = choice_refused(value, choices[name])
        elif name in ("registered_from", "registered_to"):
            bad = date_refused(value)
        elif name in ("connection", "agent"):
            bad = bool(value) and not is_uuid(value)
        elif name == "page":
            bad = page_refused(value)
        else:
            bad = False
        if bad:
            refused.append(name)
        elif bad is None:
            unsure.append(name)
    return 200, refused, unsure


def lead_choices(connection):
    leads = Lead.objects.filter(connection=connection)
    statuses = set(leads.values_list("status", flat=True)) | set(
        DOCUMENTED_LEAD_STATUSES
    )
    sources = set(leads.exclude(source="").values_list("source", flat=True))
    sort = {*LEAD_SORTS, *(f"-{key}" for key in LEAD_SORTS)}
    flags = {"", "yes", "no"}
    return {
        "status": statuses,
        "source": sources,
        "buyer": flags,
        "seller": flags,
        "sort": sort,
    }


def agent_choices(connection):
    agents = Agent.objects.filter(connection=connection)
    statuses = set(agents.exclude(status="").values_list("status", flat=True))
    return {
        "status": statuses | set(DOCUMENTED_AGENT_STATUSES),
        "sort": {*AGENT_SORTS, *(f"-{key}" for key in AGENT_SORTS)},
    }


def owned(connection):
    return {
        "connection": {connection.uuid},
        "agent": set(
            Agent.objects.filter(connection=connection).values_list("uuid", flat=True)
        ),
    }


def too_long(client, response, query):
    """A query string over the bound is not read: back to the plain list,
    with a message."""
    if len(query) <= MAX_QUERY_STRING:
        return False
    assert response.status_code == 302
    assert b"too long to be a filter" in client.get(response["Location"]).content
    return True


def read(response):
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


# Query parameters ------------------------------------------------------------


@FUZZ_PAGES
@given(data=st.data())
def test_leads_list_refuses_bad_parameters_with_a_message(broker_client, mirror, data):
    good = good_values(mirror, LEAD_SORTS)
    pairs = query_pairs(data.draw, LEAD_PARAMS, good)
    status, refused, _ = expected(
        pairs, kind="leads", owned=owned(mirror), choices=lead_choices(mirror)
    )

    query = urlencode(pairs)

    response = broker_client.get(reverse("leads:list") + "?" + query)

    if too_long(broker_client, response, query):
        return
    assert response.status_code == status, pairs
    if refused:
        assert b'id="filter-problems"' in response.content, (pairs, refused)


@FUZZ_PAGES
@given(data=st.data())
def test_export_refuses_bad_filters_instead_of_exporting_everything(
    broker_client, mirror, data
):
    good = good_values(mirror, LEAD_SORTS)
    pairs = query_pairs(data.draw, LEAD_PARAMS, good)
    status, refused, unsure = expected(
        pairs, kind="leads", owned=owned(mirror), choices=lead_choices(mirror)
    )
    refused = [name for name in refused if name != "page"]  # no pages in a CSV

    query = urlencode(pairs)

    response = broker_client.get(reverse("leads:export") + "?" + query)

    if too_long(broker_client, response, query):
        return
    if status == 404:
        assert response.status_code == 404, pairs
    elif refused:
        assert response.status_code == 302, (pairs, refused)
        shown = broker_client.get(response["Location"])
        assert b"Nothing was exported" in shown.content
        assert b'id="filter-problems"' in shown.content
    elif response.status_code == 200:
        assert read(response).startswith(b"CINC id,")
    else:
        assert response.status_code == 302 and unsure, pairs


@FUZZ_PAGES
@given(data=st.data())
def test_agents_list_refuses_bad_parameters_with_a_message(broker_client, mirror, data):
    good = good_values(mirror, AGENT_SORTS)
    pairs = query_pairs(data.draw, AGENT_PARAMS, good)
    status, refused, _ = expected(
        pairs, kind="agents", owned=owned(mirror), choices=agent_choices(mirror)
    )

    query = urlencode(pairs)

    response = broker_client.get(reverse("leads:agent-list") + "?" + query)

    if too_long(broker_client, response, query):
        return
    assert response.status_code == status, pairs
    if refused:
        assert b'id="filter-problems"' in response.content, (pairs, refused)


@settings(FUZZ, max_examples=15)
@given(
    raw=st.lists(
        st.one_of(
            st.sampled_from(RAW_PIECES),
            st.sampled_from(LEAD_PARAMS),
            st.text(alphabet=string.printable, max_size=6),
        ),
        max_size=12,
    ).map("".join)
)
def test_no_page_fails_on_a_broken_query_string(broker_client, mirror, raw):
    urls = [
        reverse("leads:dashboard"),
        reverse("leads:list"),
        reverse("leads:export"),
        reverse("leads:agent-list"),
        reverse("leads:create"),
        reverse("leads:sync-progress", args=[mirror.uuid]),
    ]

    for url in urls:
        response = broker_client.get(f"{url}?{raw}")
        read(response)
        assert response.status_code in (200, 302, 404), (url, raw)


def test_export_link_of_a_list_with_unusable_filters_leads_to_the_message(
    broker_client, mirror
):
    """The list's Export CSV link carries the list's filters; when one cannot
    be used the export answers the list page with a message, so the link
    must not make the browser save that answer as a file (``download``)."""
    page = broker_client.get(reverse("leads:list"), {"status": "no-such-status"})
    link = re.search(rb'<a [^>]*id="export-csv"[^>]*>', page.content).group(0)
    href = re.search(rb'href="([^"]+)"', link).group(1).decode().replace("&amp;", "&")

    followed = broker_client.get(href, follow=True)

    assert b'id="filter-problems"' in page.content
    assert b" download" not in link
    assert b"Nothing was exported" in followed.content


# Oversized input ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url_name", ["leads:list", "leads:agent-list", "leads:export", "leads:dashboard"]
)
@pytest.mark.parametrize("param", ["q", "page", "connection"])
def test_a_megabyte_parameter_is_refused_with_a_message(
    broker_client, mirror, url_name, param
):
    value = "7" * MEGABYTE if param == "page" else "é" * (MEGABYTE // 2)

    response = broker_client.get(reverse(url_name), {param: value}, follow=True)

    content = read(response)
    assert response.status_code == 200
    if url_name != "leads:dashboard":
        assert b"too long to be a filter" in content
    assert len(content) < 200_000  # the value is not echoed back


def test_a_long_but_bounded_query_is_still_read(broker_client, mirror):
    response = broker_client.get(reverse("leads:list"), {"q": "x" * 3000})

    assert response.status_code == 200
    assert b"at most 100 characters" in response.content


def test_more_than_a_thousand_parameters_are_a_400(broker_client, mirror):
    query = "&".join("q" for _ in range(1100))  # short enough to be read

    for name in ("leads:list", "leads:export", "leads:agent-list"):
        response = broker_client.get(reverse(name) + "?" + query)
        assert response.status_code == 400, name


def test_a_megabyte_form_field_is_refused_next_to_the_field(
    broker_client, mirror, sandbox
):
    posts = sandbox.control.stats()["requests"].get("lead_create", 0)
    data = {
        "connection": str(mirror.uuid),
        "email": "huge@example.test",
        "first_name": "x" * MEGABYTE,
    }

    response = broker_client.post(reverse("leads:create"), data)

    assert response.status_code == 200
    assert b'id="form-errors"' in response.content
    assert b"at most 150 characters" in response.content
    assert sandbox.control.stats()["requests"].get("lead_create", 0) == posts


def test_a_form_body_over_the_upload_limit_is_a_400(broker_client, mirror, settings):
    data = {
        "connection": str(mirror.uuid),
        "email": "huge@example.test",
        "street": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1),
    }

    response = broker_client.post(reverse("leads:create"), data)

    assert response.status_code == 400


# The new-lead form ---------------------------------------------------------------

FORM_TEXT_FIELDS = (
    "first_name",
    "last_name",
    "street",
    "city",
    "state",
    "zip",
    "favorite_city",
    "buyer_timeline",
    "seller_timeline",
    "source",
)
PHONES = ("cell_phone", "home_phone", "work_phone", "office_phone")
AGENT_FIELDS = ("primary_agent", "listing_agent", "partner")
GOOD_TEXT = ("Ana", "Heard", "9390 Ford Ave", "Richmond Hill", "GA", "31324", "")
GOOD_PHONES = ("(912) 756-2309", "+1 404.555.0100", "4045550100", "")
GOOD_PRICES = ("0", "250000", "$250,000", "1,000.50", "")
MARKERS = (b'id="form-errors"', b'id="lead-exists"', b'id="messages"')


@st.composite
def lead_form(draw, connection, agents, existing_emails):
    fresh = f"fuzz-{uuid.uuid4().hex[:12]}@example.test"
    # Mostly well-formed, so that many posts really reach the sandbox.
    email = draw(
        st.one_of(
            st.just(fresh),
            st.just(fresh.upper()),
            st.sampled_from(existing_emails),
            st.sampled_from(JUNK),
            TEXT,
        )
    )
    data = {"connection": draw(st.sampled_from([str(connection.uuid), *JUNK[:8]]))}
    if draw(st.booleans()) or "@" in email:
        data["email"] = email
    fields = draw(
        st.sets(
            st.sampled_from(
                FORM_TEXT_FIELDS
                + PHONES
                + AGENT_FIELDS
                + ("median_price", "average_price", "status", "is_buyer", "is_seller")
            ),
            max_size=6,
        )
    )
    for name in fields:
        if name in PHONES:
            good = GOOD_PHONES
        elif name in AGENT_FIELDS:
            good = agents
        elif name in ("median_price", "average_price"):
            good = GOOD_PRICES
        elif name == "status":
            good = ("", "unworked", "closed", "hot")
        elif name in ("is_buyer", "is_seller"):
            good = ("on", "", "false")
        else:
            good = GOOD_TEXT
        data[name] = draw(st.one_of(st.sampled_from(good), values(good)))
    button = draw(st.sampled_from([None] * 6 + ["edit", "fill", "confirm"]))
    if button:
        data[button] = "1"
        data["confirm_token"] = draw(st.sampled_from(["", "forged:token", *JUNK[:4]]))
        data["existing_lead"] = draw(st.sampled_from(["", str(uuid.uuid4())]))
    return data


@FUZZ
@given(data=st.data())
def test_new_lead_form_never_fails_and_always_says_what_happened(
    broker_client, mirror, sandbox, data
):
    agents = [str(a.uuid) for a in Agent.objects.filter(connection=mirror)[:3]]
    emails = list(
        Lead.objects.filter(connection=mirror).values_list("email", flat=True)[:3]
    )
    form = data.draw(lead_form(mirror, agents, emails))

    response = broker_client.post(reverse("leads:create"), form, follow=True)

    assert response.status_code == 200, form
    if "edit" not in form:
        assert any(marker in response.content for marker in MARKERS), form
    if response.redirect_chain:
        assert Lead.objects.filter(
            connection=mirror, email__iexact=form["email"].strip()
        ).exists()


# Upstream records not as documented ------------------------------------------------

BAD_RECORDS = [
    {"id": "BAD_INFO_NULL", "info": None},
    {"id": "BAD_CONTACT_NULL", "info": {"contact": None}},
    {"id": "BAD_CONTACT_LIST", "info": {"contact": ["a@b.c"]}},
    {"id": "BAD_NAME_NUMBER", "info": {"contact": {"first_name": 5, "email": None}}},
    {"id": "BAD_DATE_TEXT", "registered_date": "yesterday"},
    {"id": "BAD_DATE_NUMBER", "registered_date": 1234567890},
    {"id": "BAD_PHONES_LIST", "info": {"contact": {"phone_numbers": ["555"]}}},
    {"id": "BAD_ADDRESS_TEXT", "info": {"contact": {"mailing_address": "1 Main"}}},
    {"id": "BAD_BUYER_TEXT", "info": {"is_buyer": "maybe", "buyer": "lots"}},
    {
        "id": "BAD_PRICE_HUGE",
        "info": {"is_buyer": True, "buyer": {"median_price": 1e300}},
    },
    {
        "id": "BAD_PRICE_LIST",
        "info": {"is_buyer": True, "buyer": {"average_price": [1]}},
    },
    {"id": "BAD_AGENTS_TEXT", "info": {"assigned_agents": "AGENT_MDID1"}},
    {
        "id": "BAD_AGENT_ID_OBJ",
        "info": {"assigned_agents": {"primary_agent": {"id": {}}}},
    },
    {"id": "BAD_STATUS_LIST", "info": {"status": ["closed"]}},
    {
        "id": "BAD_NUL",
        "info": {"contact": {"first_name": "a\x00b", "email": "n\x00@x.t"}},
    },
    {"id": "BAD_" + "L" * 300},
    {"id": 424242, "info": {"contact": {"email": "numeric.id@example.test"}}},
    {"id": True},
    {"id": "   "},
    {"id": None},
    {"id": ["LIST_ID"]},
]


def counts_every_record(run, connection, served):
    """Each record CINC served is in the mirror or counted as unreadable."""
    mirrored = set(
        Lead.objects.filter(connection=connection, removed_at=None).values_list(
            "cinc_id", flat=True
        )
    )
    readable = [r for r in served if str(r.get("id")).strip() in mirrored]
    return len(readable) + run.record_errors == len(served)


def add_records(sandbox, records):
    added = []
    for record in records:
        try:
            sandbox.control.add_lead("demo", record)
        except Exception:  # the sandbox's own store refuses some ids
            continue
        added.append(record)
    return added


def test_malformed_records_are_counted_and_named_never_dropped(
    connection, sandbox, caplog
):
    added = add_records(sandbox, BAD_RECORDS)

    outcome = sync.sync_connection(connection_id=connection.pk)
    run = outcome.run
    run.refresh_from_db()

    served = sandbox.control.leads()
    assert len(added) >= 15
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert run.records_seen == len(served) + len(sandbox.control.agents())
    assert run.record_errors > 0
    assert counts_every_record(run, connection, served)
    assert f"{run.record_errors} records CINC sent could not be read" in run.error
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False),
    TEXT,
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)
    ),
    max_leaves=6,
)
PATHS = (
    ("registered_date",),
    ("info",),
    ("info", "contact"),
    ("info", "contact", "email"),
    ("info", "contact", "first_name"),
    ("info", "contact", "phone_numbers"),
    ("info", "contact", "phone_numbers", "cell_phone"),
    ("info", "contact", "mailing_address"),
    ("info", "contact", "mailing_address", "postal_or_zip"),
    ("info", "is_buyer"),
    ("info", "buyer"),
    ("info", "buyer", "median_price"),
    ("info", "seller", "timeline"),
    ("info", "assigned_agents"),
    ("info", "assigned_agents", "primary_agent", "id"),
    ("info", "status"),
    ("info", "source"),
)


def put(record, path, value):
    node = record
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value


@st.composite
def mangled_record(draw):
    """A well-formed lead with a few values replaced by any JSON."""
    record = {
        "id": f"FUZZ_{uuid.uuid4().hex[:10]}",
        "info": {"contact": {"email": f"{uuid.uuid4().hex[:10]}@fuzz.test"}},
    }
    for path in draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=3)):
        put(record, path, draw(JSON))
    return record


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(records=st.lists(mangled_record(), min_size=1, max_size=6))
def test_any_mangled_record_is_mirrored_or_counted(connection, sandbox, records):
    sandbox.control.config(limit=10_000)
    add_records(sandbox, records)

    outcome = sync.sync_connection(connection_id=connection.pk)
    run = outcome.run
    run.refresh_from_db()

    served = sandbox.control.leads()
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert run.records_seen == len(served) + len(sandbox.control.agents())
    assert counts_every_record(run, connection, served), run.error
