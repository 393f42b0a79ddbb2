"""The sync and its fault scenarios again, with the next page fetched while
the current one is written.

The other sync tests run inside a test transaction, where the sync fetches
in line (a second thread's database connection could not see the test's
rows). Here every test of ``test_sync`` and ``test_sync_faults`` runs
without a surrounding transaction, so the prefetching walk is the one
under test; the last test checks that it did prefetch.
"""

import threading
import time
from functools import partial

import pytest
from django import db
from django.db import transaction

from cinc.client import CincClient
from cinc.errors import RecordError
from leads import sync
from leads.models import Lead, LeadChange, SyncRun, SyncRunPage

from .test_sync import *  # noqa: F403 - the same tests, collected again here
from .test_sync_faults import *  # noqa: F403
from .test_sync_faults import mirror, run_sync, upstream

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def failed_offsets():
    """With pages fetched ahead, the page after the first one may already
    have been fetched, intact, when CINC starts breaking: the walk then
    stops one page later. Either way nothing after the break is written."""
    return {20, 40}


@pytest.fixture
def shifted_pages():
    """Likewise, a deletion after the first page shifts the page after it,
    or the one after that when the next page was already fetched."""
    return {20, 40}


@pytest.fixture
def three_pages(sandbox):
    sandbox.control.reset(agents=5, leads=1234, seed=3)
    return sandbox


def test_pages_are_fetched_ahead_in_a_second_thread_and_written_in_order(
    three_pages, connection, monkeypatch
):
    threads = set()
    real_fetch = CincClient.leads_page

    def recording_fetch(self, offset, limit):
        threads.add((offset, threading.current_thread().name))
        return real_fetch(self, offset, limit)

    monkeypatch.setattr(CincClient, "leads_page", recording_fetch)

    outcome = sync.sync_connection(connection_id=connection.pk)

    run = outcome.run
    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert run.created == 1234 + 5
    fetched = dict(threads)
    assert sorted(fetched) == [0, 500, 1000]
    assert fetched[0] == threading.current_thread().name
    assert all(name.startswith("cinc-prefetch") for o, name in fetched.items() if o)
    offsets = SyncRunPage.objects.filter(run=run, phase="leads").order_by("pk")
    assert list(offsets.values_list("offset", flat=True)) == [0, 500, 1000]


@pytest.fixture
def slow_lead_writes(monkeypatch):
    """Lead pages written more slowly than the sandbox answers, so the next
    page is always fetched by the time one is written; records, for each
    written page, how many pages had been written when its transaction
    committed. Pages are numbered in the order first written (a page
    written again after a failure keeps its number); ``fail_on`` makes that
    page's write raise, ``before`` runs a function before a page's first
    write, and ``attempts`` lists every write, by page number and whether
    it was made in a savepoint."""
    real_upsert = sync.upsert_leads
    state = {
        "written": 0,
        "commits": [],
        "fail_on": None,
        "before": {},
        "numbers": {},
        "attempts": [],
    }

    def slow_upsert(**kwargs):
        time.sleep(0.2)
        # A page written again is the same list of records (kept here, so
        # that no later page's list can take its id).
        records = kwargs["records"]
        new = id(records) not in state["numbers"]
        if new:
            state["numbers"][id(records)] = (len(state["numbers"]) + 1, records)
        page = state["numbers"][id(records)][0]
        state["attempts"].append((page, kwargs.get("savepoint", True)))
        before = state["before"].get(page)
        if new and before is not None:
            before(kwargs["records"])
        if page == state["fail_on"]:
            raise RuntimeError("worker killed")
        counts = real_upsert(**kwargs)
        state["written"] = max(state["written"], page)
        transaction.on_commit(lambda: state["commits"].append((page, state["written"])))
        return counts

    monkeypatch.setattr(sync, "PAGE_SIZE", 20)
    monkeypatch.setattr(sync, "upsert_leads", slow_upsert)
    state["upsert_leads"] = real_upsert
    return state


def in_thread(work):
    """Run ``work`` in a thread of its own (its own database connection);
    return the thread and a dict that receives "ok" or the error."""
    outcome = {}

    def target():
        try:
            work()
            outcome["result"] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported to the test
            outcome["result"] = f"{type(exc).__name__}: {exc}"
        finally:
            db.connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("writer", ["creation", "refresh"])
def test_the_portal_writing_a_lead_while_a_group_is_open_waits_for_it(
    connection, sandbox, slow_lead_writes, monkeypatch, writer
):
    # The portal writes a lead (a lead creation mirrors CINC's answer with
    # upsert_leads; a refresh fetches it again) while the sync has page 1
    # of a group written but not committed, and page 2 holds the same lead.
    # Both lock the connection before the lead, so the portal waits for the
    # group's commit instead of deadlocking with it (PostgreSQL).
    from leads.services import lead_refresh

    monkeypatch.setattr(sync, "GROUP_PAGES", 3)
    if writer == "refresh":
        assert run_sync(connection).status == SyncRun.Status.SUCCEEDED
        first_sync_pages = slow_lead_writes["written"]
        # Changed upstream: a lead of page 1 (so the group writes from its
        # start) and the lead of page 2 that the broker refreshes.
        upstream_leads = sandbox.control.leads()
        sandbox.control.update_lead(
            "demo", upstream_leads[2]["id"], info={"source": "Changed"}
        )
        refreshed = upstream_leads[20]["id"]
        status = upstream_leads[20]["info"].get("status")
        other = next(s for s in ("unworked", "inprogress", "closed") if s != status)
        sandbox.control.update_lead("demo", refreshed, info={"status": other})
    else:
        first_sync_pages = 0
    portal = {}

    def before_page_2(records):
        raw = records[0]
        if writer == "creation":
            work = partial(
                slow_lead_writes["upsert_leads"], connection=connection, records=[raw]
            )
        else:
            lead = Lead.objects.get(connection=connection, cinc_id=refreshed)
            work = partial(lead_refresh, lead=lead)
        portal["thread"], portal["outcome"] = in_thread(work)
        time.sleep(0.5)  # the portal is now waiting for the group

    slow_lead_writes["before"][first_sync_pages + 2] = before_page_2

    run = run_sync(connection)
    portal["thread"].join(30)

    assert portal["outcome"] == {"result": "ok"}
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert mirror(connection) == upstream(sandbox)
    if writer == "refresh":
        # The refresh read what the group wrote: one history row, not two.
        changes = LeadChange.objects.filter(lead__cinc_id=refreshed, field="status")
        assert changes.count() == 1


def test_pages_already_fetched_are_committed_together(
    connection, sandbox, slow_lead_writes, monkeypatch
):
    monkeypatch.setattr(sync, "GROUP_PAGES", 3)

    run = run_sync(connection)

    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    # 60 leads: three full pages in one commit, then the empty last page.
    assert slow_lead_writes["commits"] == [(1, 3), (2, 3), (3, 3), (4, 4)]
    assert mirror(connection) == upstream(sandbox)


def test_a_page_failing_inside_a_group_keeps_the_pages_before_it(
    connection, sandbox, slow_lead_writes
):
    slow_lead_writes["fail_on"] = 3

    run = run_sync(connection)

    assert run.status == SyncRun.Status.FAILED
    assert "RuntimeError" in run.error
    # Pages 1 and 2 were written in the group the third page failed in;
    # the group was rolled back, the two pages were written again, each in
    # a savepoint, and committed, and the third page was not tried again.
    assert slow_lead_writes["attempts"] == [
        (1, False),
        (2, False),
        (3, False),
        (1, True),
        (2, True),
    ]
    assert slow_lead_writes["commits"] == [(1, 2), (2, 2)]
    assert Lead.objects.count() == 40
    assert (run.phase, run.next_offset, run.created) == ("leads", 40, 12 + 40)
    slow_lead_writes["fail_on"] = None

    run = run_sync(connection)

    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert (run.created, run.unchanged) == (20, 52)
    assert mirror(connection) == upstream(sandbox)


def refuse_row(monkeypatch, refused):
    """Make the database refuse the agent or lead row of CINC id ``refused``
    (its content hash is sent as NULL, which the column does not allow)."""
    real_rows_for = sync._Upsert.rows_for

    def rows_for(self, *args):
        params = real_rows_for(self, *args)
        hash_at = self.columns.index("content_hash")

        def refusing(cinc_id, values):
            row = params(cinc_id, values)
            if cinc_id == refused:
                row[hash_at] = None
            return row

        return refusing

    monkeypatch.setattr(sync._Upsert, "rows_for", rows_for)


def test_a_row_refused_inside_a_group_is_counted_and_the_group_kept(
    connection, sandbox, slow_lead_writes, monkeypatch
):
    # The database refuses one lead of the second page (its content hash
    # sent as NULL): the group, written without savepoints, is rolled back
    # and written again page by page, the refused lead counted as an error.
    monkeypatch.setattr(sync, "GROUP_PAGES", 3)
    refused = sandbox.control.leads()[25]["id"]
    refuse_row(monkeypatch, refused)

    run = run_sync(connection)

    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert slow_lead_writes["attempts"][:5] == [
        (1, False),
        (2, False),
        (1, True),
        (2, True),
        (3, False),
    ]
    assert run.record_errors == 1
    assert f"{refused}: the database refused it (IntegrityError)" in run.error
    expected = upstream(sandbox)
    del expected[refused]
    assert mirror(connection) == expected


@pytest.fixture
def seventy_agents(sandbox):
    sandbox.control.reset(agents=70, leads=10, seed=3)
    return sandbox


def test_an_agent_group_written_again_still_names_the_connection(
    seventy_agents, connection, monkeypatch
):
    sandbox = seventy_agents
    # The broker's own agent is on the first page of agents; the second page
    # has a row the database refuses, so the group of agent pages is rolled
    # back and written again. The connection's name is stored all the same.
    monkeypatch.setattr(sync, "PAGE_SIZE", 20)
    monkeypatch.setattr(sync, "GROUP_PAGES", 3)
    real_upsert = sync.upsert_agents
    attempts = []

    def slow_upsert(**kwargs):
        time.sleep(0.15)  # the next page is fetched by then: one group
        attempts.append((kwargs["records"][0]["id"], kwargs.get("savepoint", True)))
        return real_upsert(**kwargs)

    monkeypatch.setattr(sync, "upsert_agents", slow_upsert)
    refused = sandbox.control.agents()[25]["id"]
    refuse_row(monkeypatch, refused)
    assert connection.cinc_agent_id in {a["id"] for a in sandbox.control.agents()[:20]}

    run = run_sync(connection)

    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert [saved for _, saved in attempts[:4]] == [False, False, True, True]
    assert run.record_errors == 1
    connection.refresh_from_db()
    assert connection.cinc_agent_name


def fail_one_commit(monkeypatch, when):
    """Make the first commit of the main database connection for which
    ``when()`` is true fail as a full disk would; return a list that gets
    an entry when it has."""
    main = db.connections["default"]
    real_commit = main.commit
    failed = []

    def commit():
        if not failed and when():
            failed.append(True)
            raise db.OperationalError("disk I/O error")
        return real_commit()

    monkeypatch.setattr(main, "commit", commit)
    return failed


def test_a_group_whose_commit_fails_leaves_the_run_where_the_group_began(
    connection, sandbox, slow_lead_writes, monkeypatch
):
    failed = fail_one_commit(monkeypatch, lambda: slow_lead_writes["written"])

    run = run_sync(connection)

    assert failed and run.status == SyncRun.Status.FAILED
    assert "OperationalError" in run.error
    # Nothing of the lost group is counted or stored, and the run resumes
    # from the group's first page.
    assert (run.phase, run.next_offset, run.created, run.pages) == (
        "leads",
        0,
        12,
        1,
    )
    assert Lead.objects.count() == 0
    assert not SyncRunPage.objects.filter(run=run, phase="leads").exists()


def test_a_group_written_again_whose_commit_fails_keeps_no_note_of_its_pages(
    connection, sandbox, slow_lead_writes, monkeypatch
):
    monkeypatch.setattr(sync, "GROUP_PAGES", 2)
    leads = sandbox.control.leads()
    # One unreadable lead on page 1 (committed with the first group), one
    # on page 3 (the second group, which is lost).
    kept, lost = leads[5]["id"], leads[45]["id"]
    real_parse = sync.parse_lead

    def parse(raw):
        if isinstance(raw, dict) and raw.get("id") in (kept, lost):
            raise RecordError("unreadable on purpose", record_id=raw["id"])
        return real_parse(raw)

    monkeypatch.setattr(sync, "parse_lead", parse)
    # Page 4 fails, so pages 3 and 4 are rolled back and page 3 is written
    # again in a savepoint; then the commit of that rewrite fails.
    slow_lead_writes["fail_on"] = 4
    failed = fail_one_commit(
        monkeypatch, lambda: slow_lead_writes["attempts"][-1:] == [(3, True)]
    )

    run = run_sync(connection)

    assert failed and run.status == SyncRun.Status.FAILED
    assert (run.record_errors, run.next_offset) == (1, 40)
    assert kept in run.error
    assert lost not in run.error
