"""The sync against the sandbox over HTTP: exact mirror, nothing rewritten
when nothing changed, changes kept as history, removals marked and undone."""

import re
from datetime import datetime
from decimal import Decimal

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from leads import sync
from leads.models import Agent, Lead, LeadChange, SyncRun, SyncRunPage

BIG = {"agents": 40, "leads": 2345, "seed": 11}
WRITE_RE = re.compile(r'^\s*(INSERT INTO|UPDATE) "leads_(lead|agent)"\s')

pytestmark = pytest.mark.django_db


@pytest.fixture
def big_site(sandbox):
    sandbox.control.reset(**BIG)
    return sandbox


@pytest.fixture
def big_connection(big_site, connection):
    """A connection made after the big seed (a reset forgets every token)."""
    return connection


def run_sync(connection, **kwargs):
    outcome = sync.sync_connection(connection_id=connection.pk, **kwargs)
    outcome.run.refresh_from_db()
    return outcome.run


def text(value):
    return value.strip() if isinstance(value, str) else ""


def money(value):
    return None if value is None else Decimal(str(value))


def when(value):
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def expected_contact(raw):
    """The typed columns of a record, read from the raw JSON independently of
    the portal's parser."""
    info = raw.get("info") or {}
    contact = info.get("contact") or {}
    phones = contact.get("phone_numbers") or {}
    address = contact.get("mailing_address") or {}
    return {
        "registered_at": when(raw.get("registered_date")),
        "first_name": text(contact.get("first_name")),
        "last_name": text(contact.get("last_name")),
        "email": text(contact.get("email")),
        "cell_phone": text(phones.get("cell_phone")),
        "home_phone": text(phones.get("home_phone")),
        "work_phone": text(phones.get("work_phone")),
        "office_phone": text(phones.get("office_phone")),
        "street": text(address.get("street")),
        "city": text(address.get("city")),
        "state": text(address.get("state")),
        "zip_code": text(address.get("postal_or_zip") or address.get("postal_code")),
    }


def expected_agent(raw):
    info = raw.get("info") or {}
    status = info.get("status") or (info.get("contact") or {}).get("status")
    return {**expected_contact(raw), "status": text(status)}


def expected_lead(raw):
    info = raw["info"]
    buyer = info.get("buyer") or info.get("buyer_info") or {}
    seller = info.get("seller") or info.get("seller_info") or {}
    agents = info.get("assigned_agents") or {}
    return {
        **expected_contact(raw),
        "status": text(info.get("status")),
        "source": text(info.get("source")),
        "is_buyer": bool(info.get("is_buyer")),
        "is_seller": bool(info.get("is_seller")),
        "buyer_median_price": money(buyer.get("median_price")),
        "buyer_average_price": money(buyer.get("average_price")),
        "buyer_favorite_city": text(buyer.get("favorite_city")),
        "buyer_timeline": text(buyer.get("timeline")),
        "seller_timeline": text(seller.get("timeline")),
        "primary_agent_cinc_id": (agents.get("primary_agent") or {}).get("id", ""),
        "listing_agent_cinc_id": (agents.get("listing_agent") or {}).get("id", ""),
        "partner_cinc_id": (agents.get("partner") or {}).get("id", ""),
    }


def columns(row, names):
    return {name: getattr(row, name) for name in names}


def test_sync_mirrors_2345_leads_and_40_agents_exactly(big_connection, big_site):
    raw_agents = big_site.control.agents()
    raw_leads = big_site.control.leads()
    big_site.control.reset_stats()

    run = run_sync(big_connection)

    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert (run.created, run.updated, run.removed, run.record_errors) == (2385, 0, 0, 0)
    agents = {a.cinc_id: a for a in Agent.objects.filter(connection=big_connection)}
    leads = {
        lead.cinc_id: lead
        for lead in Lead.objects.filter(connection=big_connection).select_related(
            "primary_agent", "listing_agent", "partner"
        )
    }
    assert list(agents) and sorted(agents) == sorted(a["id"] for a in raw_agents)
    assert sorted(leads) == sorted(lead["id"] for lead in raw_leads)
    for raw in raw_agents:
        agent = agents[raw["id"]]
        assert columns(agent, expected_agent(raw)) == expected_agent(raw), raw["id"]
        assert agent.raw == raw
        assert agent.removed_at is None
    for raw in raw_leads:
        lead = leads[raw["id"]]
        assert columns(lead, expected_lead(raw)) == expected_lead(raw), raw["id"]
        assert lead.raw == raw  # unknown fields (notes, labels, validation) kept
        assert lead.primary_agent.cinc_id == lead.primary_agent_cinc_id
        for role in ("listing_agent", "partner"):
            linked = getattr(lead, role)
            cinc_id = getattr(lead, f"{role}_cinc_id")
            assert (linked.cinc_id if linked else "") == cinc_id
    # The seed holds what the documentation disagrees about.
    addresses = [r["info"]["contact"].get("mailing_address", {}) for r in raw_leads]
    assert any("postal_code" in a for a in addresses)
    assert any("postal_or_zip" in a for a in addresses)
    assert any("buyer_info" in r["info"] for r in raw_leads)
    assert any("mailing_address" not in r["info"]["contact"] for r in raw_leads)
    assert leads["mymdidwoah"].zip_code == ""
    assert Lead.objects.filter(connection=big_connection, first_name="秀英").exists()
    assert agents["AGENT_MDID3"].status  # status inside info.contact
    # One `me`, one page of agents, five pages of leads, nothing else.
    assert big_site.control.stats()["requests"] == {
        **dict.fromkeys(("agent", "lead", "lead_create", "authorize", "token"), 0),
        "me": 1,
        "agents": 1,
        "leads": 5,
    }
    assert (run.requests, run.pages, run.records_seen) == (7, 6, 2385)
    assert (run.rate_limited, run.retries) == (0, 0)
    big_connection.refresh_from_db()
    assert big_connection.last_synced_at == run.finished_at
    assert big_connection.last_sync_attempt_at == run.started_at
    assert big_connection.cinc_agent_name == "Rebecca Lejeune"


def test_sync_with_nothing_changed_writes_no_agent_or_lead(big_connection):
    run_sync(big_connection)
    before = dict(Lead.objects.values_list("cinc_id", "changed_at"))

    with CaptureQueriesContext(connections["default"]) as queries:
        run = run_sync(big_connection)

    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert (run.unchanged, run.created, run.updated, run.removed) == (2385, 0, 0, 0)
    writes = [q["sql"] for q in queries.captured_queries if WRITE_RE.match(q["sql"])]
    assert writes == []
    assert dict(Lead.objects.values_list("cinc_id", "changed_at")) == before
    assert not LeadChange.objects.exists()
    # The queries of a sync do not grow with the page size: a page of 500
    # unchanged leads costs a handful of statements.
    assert len(queries.captured_queries) / run.pages < 15


def test_sync_picks_up_changed_added_and_removed_leads(connection, sandbox):
    run_sync(connection)
    raw = sandbox.control.leads()
    changed, reassigned, deleted = raw[4], raw[5], raw[6]
    new_status = "closed" if changed["info"]["status"] != "closed" else "hot"
    old_primary = reassigned["info"]["assigned_agents"]["primary_agent"]["id"]
    new_primary = "AGENT_MDID2" if old_primary != "AGENT_MDID2" else "AGENT_MDID3"
    sandbox.control.update_lead("demo", changed["id"], info={"status": new_status})
    sandbox.control.update_lead(
        "demo",
        reassigned["id"],
        info={"assigned_agents": {"primary_agent": {"id": new_primary}}},
    )
    sandbox.control.delete_lead("demo", deleted["id"])
    added = sandbox.control.add_leads("demo", count=2)

    run = run_sync(connection)

    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert (run.created, run.updated, run.removed) == (2, 2, 1)
    lead = Lead.objects.get(cinc_id=changed["id"])
    assert lead.status == new_status
    assert list(lead.changes.values_list("field", "old_value", "new_value")) == [
        ("status", changed["info"]["status"], new_status)
    ]
    lead = Lead.objects.get(cinc_id=reassigned["id"])
    assert lead.primary_agent.cinc_id == new_primary
    assert list(lead.changes.values_list("field", "old_value", "new_value")) == [
        ("primary_agent", old_primary, new_primary)
    ]
    assert lead.changes.get().sync_run_id == run.pk
    gone = Lead.objects.get(cinc_id=deleted["id"])
    assert gone.removed_at == run.finished_at
    assert set(
        Lead.objects.filter(cinc_id__in=added).values_list("removed_at", flat=True)
    ) == {None}
    assert LeadChange.objects.count() == 2  # none for the new leads


def test_sync_clears_removed_mark_when_a_lead_comes_back(connection, sandbox):
    run_sync(connection)
    record = sandbox.control.leads()[10]
    sandbox.control.delete_lead("demo", record["id"])
    run_sync(connection)
    assert Lead.objects.get(cinc_id=record["id"]).removed_at is not None
    sandbox.control.add_lead("demo", record)

    run = run_sync(connection)

    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert (run.updated, run.removed) == (1, 0)
    assert Lead.objects.get(cinc_id=record["id"]).removed_at is None


@pytest.fixture
def shifted_pages():
    """Offsets of the pages a deletion made after the first lead page can
    shift: fetching in line, only the next one."""
    return {20}


def test_sync_confirms_missing_leads_so_a_shifted_page_removes_nothing_wrongly(
    connection, sandbox, monkeypatch, shifted_pages
):
    monkeypatch.setattr(sync, "PAGE_SIZE", 20)
    run_sync(connection)
    raw = sandbox.control.leads()
    deleted = raw[3]
    sandbox.control.reset_stats()

    def delete_after_first_lead_page(run):
        if run.phase == SyncRun.Phase.LEADS and run.next_offset == 20:
            sandbox.control.delete_lead("demo", deleted["id"])

    run = run_sync(connection, progress=delete_after_first_lead_page)

    # Deleting a lead of page one shifted the walk by one: the lead that was
    # first on the next page fetched after it was never listed. Asked for by
    # id, it is found, so nothing is marked removed (the deleted lead was
    # listed on page one).
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    listed = {
        cinc_id
        for ids in SyncRunPage.objects.filter(run=run, phase="leads").values_list(
            "cinc_ids", flat=True
        )
        for cinc_id in ids
    }
    unlisted = [lead for lead in raw if lead["id"] not in listed]
    assert len(unlisted) == 1
    skipped = unlisted[0]
    assert raw.index(skipped) in shifted_pages
    assert sandbox.control.stats()["requests"]["lead"] == 1
    assert run.removed == 0
    assert Lead.objects.filter(removed_at__isnull=False).count() == 0
    sandbox.control.reset_stats()

    run = run_sync(connection)

    assert run.removed == 1
    assert sandbox.control.stats()["requests"]["lead"] == 1  # the 404
    assert Lead.objects.get(cinc_id=deleted["id"]).removed_at == run.finished_at
    assert Lead.objects.get(cinc_id=skipped["id"]).removed_at is None


def test_sync_marks_many_missing_leads_removed_without_asking_for_each(
    connection, sandbox
):
    run_sync(connection)
    gone = [lead["id"] for lead in sandbox.control.leads()[:30]]
    for lead_id in gone:
        sandbox.control.delete_lead("demo", lead_id)
    sandbox.control.reset_stats()

    run = run_sync(connection)

    assert run.removed == 30
    assert sandbox.control.stats()["requests"]["lead"] == 0
    assert set(
        Lead.objects.filter(removed_at__isnull=False).values_list("cinc_id", flat=True)
    ) == set(gone)
    assert Lead.objects.count() == 60  # marked, never deleted


def test_sync_counts_unreadable_records_and_names_them(connection, sandbox):
    bad_price = sandbox.control.add_lead(
        "demo",
        {
            "info": {
                "contact": {"email": "bad.price@example.test"},
                "is_buyer": True,
                "buyer": {"average_price": "a lot"},
            }
        },
    )
    sandbox.control.add_lead(
        "demo", {"id": "", "info": {"contact": {"email": "no.id@example.test"}}}
    )
    sandbox.control.add_lead(
        "demo", {"id": "LEAD_BAD_INFO", "info": "not an object", "x": 1}
    )

    run = run_sync(connection)

    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert run.record_errors == 3
    assert run.records_seen == 72 + 3
    assert run.error.splitlines()[0].startswith("3 records CINC sent could not be read")
    assert bad_price in run.error and "average_price is not a number" in run.error
    assert "LEAD_BAD_INFO" in run.error and "record has no id" in run.error
    assert Lead.objects.count() == 60


def test_unreadable_record_already_mirrored_is_not_marked_removed(connection, sandbox):
    run_sync(connection)
    record = sandbox.control.leads()[8]
    sandbox.control.update_lead(
        "demo", record["id"], info={"buyer": {"median_price": "n/a"}, "is_buyer": True}
    )

    run = run_sync(connection)

    assert (run.record_errors, run.removed) == (1, 0)
    lead = Lead.objects.get(cinc_id=record["id"])
    assert lead.removed_at is None
    assert lead.raw == record  # the last readable copy stays


def test_upsert_leads_fits_long_and_odd_values_and_keeps_them_raw(connection):
    record = {
        "id": "LEAD_LONG",
        "info": {
            "contact": {
                "first_name": "A" * 400,
                "last_name": "Nul\x00Byte",
                "email": "long@example.test",
            },
            "is_buyer": True,
            "buyer": {"average_price": 10**15, "median_price": "1,250,000.456"},
            "assigned_agents": {"primary_agent": {"id": "AGENT_NOT_MIRRORED"}},
        },
    }

    counts = sync.upsert_leads(connection=connection, records=[record, record])

    assert (counts.created, counts.record_errors, counts.ids) == (1, 0, ["LEAD_LONG"])
    lead = Lead.objects.get(cinc_id="LEAD_LONG")
    assert lead.first_name == "A" * 150
    assert lead.last_name == "NulByte"
    assert lead.buyer_average_price is None
    assert lead.buyer_median_price == Decimal("1250000.46")
    assert lead.primary_agent is None
    assert lead.primary_agent_cinc_id == "AGENT_NOT_MIRRORED"
    assert lead.raw["info"]["contact"]["first_name"] == "A" * 400
    assert lead.raw["info"]["contact"]["last_name"] == "NulByte"
    assert "long@example.test" in lead.search_text


def test_upsert_stores_a_lone_surrogate_instead_of_failing_the_page(connection):
    record = {"id": "LEAD_SURROGATE", "info": {"contact": {"first_name": "Bad\ud800"}}}

    counts = sync.upsert_leads(connection=connection, records=[record])
    again = sync.upsert_leads(connection=connection, records=[record])

    assert (counts.created, counts.record_errors, again.unchanged) == (1, 0, 1)
    lead = Lead.objects.get(cinc_id="LEAD_SURROGATE")
    assert lead.first_name == "Bad?"
    assert lead.raw["info"]["contact"]["first_name"] == "Bad?"


def test_upsert_links_a_lead_once_its_agent_is_mirrored(connection):
    lead = {
        "id": "LEAD_1",
        "info": {"assigned_agents": {"partner": {"id": "AGENT_LATE"}}},
    }
    sync.upsert_leads(connection=connection, records=[lead])
    sync.upsert_agents(
        connection=connection,
        records=[{"id": "AGENT_LATE", "info": {"contact": {"first_name": "Lou"}}}],
    )

    counts = sync.upsert_leads(connection=connection, records=[lead])

    assert (counts.updated, counts.unchanged, counts.history) == (1, 0, 0)
    assert Lead.objects.get(cinc_id="LEAD_1").partner.first_name == "Lou"


def test_finished_runs_keep_page_ids_only_for_the_latest_run(connection):
    first = run_sync(connection)

    second = run_sync(connection)

    assert not SyncRunPage.objects.filter(run=first).exists()
    assert SyncRunPage.objects.filter(run=second).count() == second.pages == 2
