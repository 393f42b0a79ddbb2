"""Outages and interruptions (``reliability.outages``): a lead POST that
times out after CINC stored it, a worker killed mid-sync, the sandbox down,
Redis down. Pages answer with a message, never a 500; no run stays queued
or running; nothing is lost or doubled."""

import pytest

from reliability import outages

from .conftest import LEADS, PAGES


@pytest.mark.django_db
def test_resending_a_lead_whose_post_timed_out_never_makes_a_second_one(
    fault_server,
):
    figures = outages.lead_post_timeout(fault_server)

    assert figures["problems"] == []
    refuse, upsert = figures["sites"]
    assert refuse["leads_with_email"] == upsert["leads_with_email"] == 1
    assert refuse["outcomes"] == ["unknown", "duplicate"]  # then nothing sent
    assert refuse["posts"] == 2
    assert upsert["outcomes"][0] == "unknown" and upsert["outcomes"][-1] == "updated"
    assert "may or may not have been created" in refuse["messages"][0]


@pytest.mark.django_db
def test_a_sync_stopped_mid_walk_keeps_a_consistent_mirror_and_is_completed(
    fault_server,
):
    figures = outages.worker_killed(fault_server, leads=LEADS, pages=PAGES)

    assert figures["problems"] == []
    crash, killed = figures["runs"]
    assert crash["status_after_stop"] == "failed"
    assert 0 < crash["leads_kept"] < LEADS
    assert killed["status_after_stop"] == "running"
    assert killed["closed_as_stale"] == 1 and killed["status_shown"] == "failed"
    assert "no sign of life" in killed["error_shown"]
    for run in (crash, killed):
        assert run["next_run"] == "succeeded"
        assert (run["lost"], run["doubled"]) == (0, 0)


@pytest.mark.django_db
def test_with_the_sandbox_down_pages_say_so_and_the_run_fails(tmp_path):
    figures = outages.sandbox_down(workdir=tmp_path)

    assert figures["problems"] == []
    assert figures["sandbox_stopped"]
    assert figures["run_status"] == "failed"
    assert "CINC did not answer properly" in figures["dashboard"]["error"]
    assert "could not be asked" in figures["refresh_messages"][0]


# The run "Sync now" queues is sent after the commit: a real transaction.
@pytest.mark.django_db(transaction=True)
def test_with_redis_down_nothing_answers_500_and_no_run_stays_queued(
    fault_server,
):
    figures = outages.redis_down(fault_server)

    assert figures["problems"] == []
    assert "could not be queued" in figures["dashboard_after_connect"]["error"]
    assert "could not be queued" in figures["sync_now_messages"][-1]
    assert "not sent" in figures["refresh_messages"][0]
    assert "not sent" in figures["new_lead_messages"][0]
    assert "queued" not in figures["runs_during_outage"]
    assert figures["after_outage"] == "succeeded"
