"""The sync benchmark: its floor arithmetic, and its figures on a tiny site."""

import pytest

from bench import sync_floor


def test_walk_needs_the_empty_page_after_the_last_full_one():
    assert sync_floor.walk_requests(50_000) == 101
    assert sync_floor.walk_requests(49_999) == 100
    assert sync_floor.walk_requests(0) == 1


def test_floor_in_sequence_adds_the_waits_of_each_phase():
    requests = {"me": 1, "agents": 20, "leads": 31}

    windows = sync_floor.floor_windows(requests, limit=15, order="sequence")

    # agents: 2 windows (1 waited out); leads: 3 windows (2 waited out).
    assert windows == 1 + 0 + 1 + 2


def test_floor_in_parallel_is_the_busiest_endpoint():
    requests = {"me": 1, "agents": 20, "leads": 31}

    assert sync_floor.floor_windows(requests, limit=15, order="parallel") == 3


def test_floor_of_the_issue_size_is_seven_windows():
    requests = sync_floor.expected_requests(agents=25, leads=50_000)

    assert requests == {"me": 1, "agents": 1, "leads": 101}
    assert sync_floor.floor_windows(requests, limit=15) == 7


def test_floor_refuses_an_unknown_order():
    with pytest.raises(ValueError):
        sync_floor.floor_windows({"leads": 3}, order="sideways")


@pytest.mark.django_db
def test_sync_benchmark_reports_requests_429s_and_the_ratio(tmp_path):
    figures = sync_floor.run(leads=600, window=1.0, limit=1000, workdir=tmp_path)

    assert figures["run_status"] == "succeeded"
    assert figures["requests"] == {"me": 1, "agents": 1, "leads": 2}
    assert figures["requests"] == figures["expected_requests"]
    assert figures["extra_requests"] == 0
    assert figures["portal_429"] == 0
    assert figures["floor_windows"] == 1
    assert figures["floor_s"] == 1.0
    # Both figures are rounded (wall to 10 ms), hence the tolerance.
    assert figures["wall_over_floor"] == pytest.approx(
        figures["wall_s"] / figures["floor_s"], abs=0.01
    )
    assert set(figures["breakdown_s"]) == {
        "http",
        "limiter",
        "write_leads",
        "write_agents",
        "other",
    }
    assert None not in figures["breakdown_s"].values()
