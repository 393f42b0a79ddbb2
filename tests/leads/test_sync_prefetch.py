"""The sync and its fault scenarios again, with the next page fetched while
the current one is written.

The other sync tests run inside a test transaction, where the sync fetches
in line (a second thread's database connection could not see the test's
rows). Here every test of ``test_sync`` and ``test_sync_faults`` runs
without a surrounding transaction, so the prefetching walk is the one
under test; the last test checks that it did prefetch.
"""

import threading

import pytest

from cinc.client import CincClient
from leads import sync
from leads.models import SyncRun, SyncRunPage

from .test_sync import *  # noqa: F403 - the same tests, collected again here
from .test_sync_faults import *  # noqa: F403

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
