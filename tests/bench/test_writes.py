"""The writes benchmark on a tiny mirror: every pass and the naive loop."""

import pytest

from bench import writes

pytestmark = pytest.mark.django_db


def test_writes_benchmark_counts_the_rows_each_pass_writes():
    figures = writes.run(leads=120, naive_sample=30, page_size=50)

    passes = figures["passes"]
    assert set(passes) == {"initial", "unchanged", "changed_1pct"}
    assert passes["initial"]["created"] == 120
    assert passes["initial"]["lead_write_statements"] > 0
    assert passes["unchanged"]["unchanged"] == 120
    assert passes["unchanged"]["write_statements"] == {}
    assert figures["unchanged_writes_zero"] is True
    assert figures["changed"] == 2
    assert passes["changed_1pct"]["updated"] == 2
    assert passes["changed_1pct"]["history_rows"] == 2
    assert figures["naive"]["sample"] == 30
    assert figures["naive"]["insert"]["lead_write_statements"] == 30
    assert set(figures["ratio"]) == {"initial", "unchanged", "changed_1pct"}
    assert figures["database"].startswith(("SQLite", "PostgreSQL"))
    assert figures["broker"]
    assert figures["lead_indexes"] > 0
    # The passes go without the step timers: run_steps times the steps.
    assert "steps_us_per_lead" not in passes["initial"]


def test_the_steps_probe_says_where_a_leads_time_goes():
    figures = writes.run_steps(leads=120, page_size=50)

    assert figures["leads"] == 120
    assert figures["rows_per_s"] > 0
    steps = figures["steps_us_per_lead"]
    assert set(steps) == {
        "hash",
        "existing rows",
        "parse",
        "columns",
        "statement",
        "commit",
        "rest",
    }
    assert steps["statement"] > 0 and steps["parse"] > 0
    # An unchanged re-sync hashes every lead and parses none.
    assert figures["unchanged_steps_us_per_lead"]["hash"] > 0
    assert figures["unchanged_steps_us_per_lead"]["parse"] == 0


# Committed for real: PostgreSQL builds no index on a table whose deferred
# foreign-key checks are still pending in the test's transaction.
@pytest.mark.django_db(transaction=True)
def test_the_unindexed_probe_drops_the_secondary_indexes_and_builds_them_back():
    before = writes.secondary_indexes()
    names = {name for name, _ in before}
    # The list indexes and the agents' foreign keys, not the unique ones
    # the writes rely on (connection and CINC id, uuid).
    assert {"lead_by_registered", "lead_facets"} <= names
    assert not any("unique" in name or "uuid" in name for name in names)

    figures = writes.run_unindexed(leads=120, page_size=50)

    assert figures["created"] == 120
    assert sorted(figures["dropped"]) == sorted(names)
    assert figures["build_seconds"] > 0
    assert figures["rows_per_s_with_build"] < figures["rows_per_s"]
    assert writes.secondary_indexes() == before


def test_changed_copy_moves_the_status_of_one_lead_in_a_hundred():
    records = [{"id": f"L{n}", "info": {"status": "unworked"}} for n in range(300)]

    changed, count = writes.changed_copy(records)

    assert count == 3
    assert [r["info"]["status"] for r in changed[::100]] == ["inprogress"] * 3
    assert records[0]["info"]["status"] == "unworked"
