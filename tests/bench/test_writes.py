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
    steps = passes["initial"]["steps_us_per_lead"]
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
    assert passes["unchanged"]["steps_us_per_lead"]["hash"] > 0
    assert passes["unchanged"]["steps_us_per_lead"]["parse"] == 0


def test_changed_copy_moves_the_status_of_one_lead_in_a_hundred():
    records = [{"id": f"L{n}", "info": {"status": "unworked"}} for n in range(300)]

    changed, count = writes.changed_copy(records)

    assert count == 3
    assert [r["info"]["status"] for r in changed[::100]] == ["inprogress"] * 3
    assert records[0]["info"]["status"] == "unworked"
