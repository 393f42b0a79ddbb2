"""Each sandbox fault, and all of them together, against a sync of 1,000
leads (``reliability.faults``): the mirror converges to exactly the
sandbox's data within a bounded number of runs, and every run's status says
what happened to it."""

import pytest

from reliability import faults

from .conftest import LEADS, PAGES, TIMEOUT

pytestmark = pytest.mark.django_db

# The fault each scenario must actually have drawn (the dice are seeded).
DRAWN = {
    "5xx": "5xx",
    "early-429": "early_429",
    "token-expiry": "token_refreshes",
    "slow": "slow",
    "malformed": "malformed",
}


def run(fault_server, key, **options):
    options.setdefault("leads", LEADS)
    return faults.run_scenario(
        fault_server, key, pages=PAGES, timeout=TIMEOUT, **options
    )


@pytest.mark.parametrize("key", ["5xx", "early-429", "token-expiry", "slow"])
def test_sync_under_one_fault_converges_to_the_exact_data(fault_server, key):
    figures = run(fault_server, key)

    assert figures["faults"][DRAWN[key]] > 0
    assert figures["problems"] == []
    assert figures["converged"] and figures["runs_needed"] <= faults.MAX_RUNS
    assert (figures["lost"], figures["doubled"], figures["stale"]) == (0, 0, 0)
    assert figures["mirrored"] == figures["upstream"]
    assert figures["errors_logged"] == 0


def test_every_run_that_read_a_malformed_page_failed_and_removed_nothing(
    fault_server,
):
    figures = run(fault_server, "malformed")

    assert figures["faults"]["malformed"] > 0
    assert figures["problems"] == []
    assert (figures["lost"], figures["doubled"], figures["stale"]) == (0, 0, 0)
    broken = [run for run in figures["runs"] if run["malformed_read"]]
    assert broken
    assert all(run["status"] == "failed" for run in broken)
    assert all(run["removed"] == 0 for run in broken)
    assert all("cannot read" in run["error"] for run in broken)


def test_leads_changed_during_the_walk_are_mirrored_by_the_next_calm_run(
    fault_server,
):
    figures = run(fault_server, "churn")

    churned = [run for run in figures["runs"] if run["churn"]]
    assert len(churned) == faults.CHURN_RUNS
    assert sum(run["wrongly_removed"] for run in figures["runs"]) == 0
    assert figures["removed_ok"] > 0  # leads the churn removed, marked
    assert figures["problems"] == []
    assert (figures["lost"], figures["doubled"], figures["not_removed"]) == (0, 0, 0)


def test_all_faults_together_converge_within_the_bound(fault_server):
    # A smaller site and one run under a shorter churn: the full scenario
    # is the command's.
    figures = run(fault_server, "all", leads=500, churn_runs=1, churn_steps=8)

    drawn = figures["faults"]
    assert drawn["5xx"] and drawn["early_429"] and drawn["token_refreshes"]
    assert figures["churn"]["changes"] > 0
    assert figures["problems"] == []
    assert figures["converged"] and figures["runs_needed"] <= faults.MAX_RUNS
    assert (figures["lost"], figures["doubled"], figures["stale"]) == (0, 0, 0)
