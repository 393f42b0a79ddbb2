"""The document: verdicts from figures, and figures kept for the next run."""

from bench import analysis, report


def sync_entry(ratio=1.05):
    return {
        "machine": {"date": "2026-01-01 10:00 UTC", "nproc": 2, "commit": "abc1234"},
        "load_after": [1.0, 1.0, 1.0],
        "seconds": 30,
        "figures": {
            "configured": {
                "leads": 50_000,
                "agents": 25,
                "window_s": 2.0,
                "limit": 15,
                "order": "sequence (me, then agents, then leads)",
                "portal_limiter_window_s": 2.0,
                "run_status": "succeeded",
                "records_seen": 50_025,
                "requests": {"me": 1, "agents": 1, "leads": 101},
                "expected_requests": {"me": 1, "agents": 1, "leads": 101},
                "issue_formula_lead_requests": 100,
                "extra_requests": 0,
                "portal_429": 0,
                "early_429": 0,
                "run_rate_limited": 0,
                "run_retries": 0,
                "floor_windows": 7,
                "floor_parallel_windows": 7,
                "floor_s": 14.0,
                "wall_s": 14.0 * ratio,
                "wall_over_floor": ratio,
                "breakdown_s": {"http": 1.0, "write_leads": 5.0, "other": 8.0},
                "peak_rss_mb": 90.0,
            }
        },
    }


def verdicts(results):
    return {target: ok for _name, target, _figure, ok in report.targets(results)}


def test_a_ratio_within_the_target_is_met():
    found = verdicts({"sync": sync_entry(ratio=1.05)})

    assert found["pages fetched ahead (as shipped): wall / floor ≤ 1.10"] is True
    assert (
        found["pages fetched ahead (as shipped): 429s caused by the portal = 0"] is True
    )


def test_a_ratio_above_the_target_is_missed_and_listed():
    results = {"sync": sync_entry(ratio=1.5)}

    document = report.render(results)

    assert (
        verdicts(results)["pages fetched ahead (as shipped): wall / floor ≤ 1.10"]
        is False
    )
    assert "## Missed targets" in document
    assert "**missed**" in document


def test_a_skipped_database_is_not_a_verdict():
    results = {"writes": {"figures": {"postgresql": {"skipped": "not reachable"}}}}

    rows = report.targets(results)

    assert rows == [("writes", "postgresql", "not reachable", None)]


def test_figures_survive_a_round_trip_through_the_document(tmp_path):
    results = {"sync": sync_entry()}
    path = tmp_path / "benchmarks.md"

    path.write_text(report.render(results))

    assert report.load_results(path) == results


def test_a_missing_or_foreign_document_gives_no_figures(tmp_path):
    foreign = tmp_path / "other.md"
    foreign.write_text("# Something else\n")

    assert report.load_results(tmp_path / "absent.md") == {}
    assert report.load_results(foreign) == {}


def test_a_failed_benchmark_says_so():
    entry = {"machine": {}, "error": "the sync worker ran out of time"}

    text = report.section("sync", entry)

    assert "ran out of time" in text


def test_nothing_is_explained_when_every_target_is_met():
    results = {"sync": sync_entry(ratio=1.05)}

    assert analysis.render(results, report.targets(results)) == ""


def test_a_missed_sync_target_says_where_the_time_went():
    entry = sync_entry(ratio=1.5)
    entry["figures"]["in_line"] = dict(
        entry["figures"]["configured"], wall_s=25.0, wall_over_floor=1.79
    )
    results = {"sync": entry}

    text = analysis.render(results, report.targets(results))

    assert "### Sync against the floor" in text
    assert "**Wall / floor 1.50, 1.4 times the target (1.10).**" in text
    assert "Writing the pages took 5.0 s of the 21.0 s (50 ms a page of 500)" in text
    assert "Without fetching ahead the same walk took 25.0 s (1.79)." in text


def test_the_comparison_run_has_no_target():
    entry = sync_entry(ratio=1.05)
    entry["figures"]["in_line"] = dict(
        entry["figures"]["configured"], wall_s=25.0, wall_over_floor=1.79
    )

    rows = report.targets({"sync": entry})

    assert rows and all("pages fetched ahead" in target for _b, target, *_ in rows)


def test_the_write_ceiling_is_computed_from_the_runs_own_figures():
    steps = {
        "hash": 13.0,
        "existing rows": 1.0,
        "parse": 12.0,
        "columns": 5.0,
        "statement": 37.0,
        "commit": 11.0,
        "rest": 16.0,
    }
    data = {"naive": {"insert": {"rows_per_s": 800}}}  # 1,250 us a lead

    text = analysis._ceiling("SQLite", data, steps)

    assert "the naive loop took 1,250 µs a lead" in text
    assert "(statement and commit) 48 µs" in text
    assert "would reach 26.0×" in text
    assert "20× needs at most 62 µs a lead in all" in text
    assert "leaves 14.5 µs for the Python work" in text
    assert "now 46 µs" in text
    assert "less than hashing a record alone" not in text


def test_the_write_ceiling_says_when_python_cannot_fit():
    steps = {"hash": 14.0, "parse": 12.0, "columns": 5.0, "rest": 16.0}
    steps.update(statement=40.0, commit=12.0)
    data = {"naive": {"insert": {"rows_per_s": 800}}}

    text = analysis._ceiling("SQLite", data, steps)

    assert "leaves 10.5 µs for the Python work" in text
    assert "less than hashing a record alone (14.0 µs)" in text
    assert analysis._ceiling("SQLite", {"naive": {}}, steps) is None


def test_the_index_probe_is_shown_against_the_naive_loop():
    data = {
        "ratio": {"unindexed": 23.5, "unindexed_with_build": 19.0},
        "unindexed": {
            "leads": 100_000,
            "dropped": ["lead_by_name", "lead_facets"],
            "seconds": 4.99,
            "rows_per_s": 20_053,
            "created": 100_000,
            "build_seconds": 1.19,
            "rows_per_s_with_build": 16_183,
        },
        "steps": {"leads": 100_000, "rows_per_s": 13_600, "steps_us_per_lead": {}},
    }

    text = analysis._unindexed_text("SQLite", data)
    rows = report._probe_rows(data)

    assert text == (
        "on SQLite, without its 2 secondary indexes 20,053 leads/s (23.5×), "
        "and 16,183 leads/s (19.0×) counting the 1.2 s their build then took"
    )
    assert [row[2] for row in rows] == ["13,600", "20,053", "16,183"]
    assert [row[5] for row in rows] == ["", "23.5×", "19.0×"]
    assert analysis._unindexed_text("SQLite", {"ratio": {}}) is None


def test_the_steps_come_from_the_probe_or_from_an_older_runs_pass():
    steps = {"hash": 6.0}
    older = {"passes": {"initial": {"steps_us_per_lead": steps}}}
    newer = {"passes": {"initial": {}}, "steps": {"steps_us_per_lead": steps}}

    assert analysis._steps_of(older) == steps
    assert analysis._steps_of(newer) == steps


def test_the_empty_mirror_verdict_is_the_median_of_the_paired_runs():
    pairs = [
        {"bulk_rows_per_s": 12_000, "naive_rows_per_s": 800, "ratio": 15.0},
        {"bulk_rows_per_s": 13_551, "naive_rows_per_s": 727, "ratio": 18.6},
        {"bulk_rows_per_s": 14_000, "naive_rows_per_s": 650, "ratio": 21.5},
    ]
    figures = {
        "ratio": {"initial": 18.6, "unchanged": 60.0, "changed_1pct": 50.0},
        "pairs": pairs,
        "passes": {
            "initial": {"rows_per_s": 12_000},
            "unchanged": {"rows_per_s": 60_000, "write_statements": {}},
            "changed_1pct": {"rows_per_s": 50_000},
        },
        "naive": {"insert": {"rows_per_s": 800}, "update": {"rows_per_s": 1_000}},
        "unchanged_writes_zero": True,
    }
    results = {"writes": {"figures": {"sqlite": figures}}}

    rows = {target: (shown, ok) for _b, target, shown, ok in report.targets(results)}

    shown, ok = rows["SQLite: bulk ≥ 20× naive loop (empty mirror)"]
    assert shown == "18.6×, the median of 3 paired runs (15.0×, 18.6×, 21.5×)"
    assert ok is False
    # The first pair alone (15.0x) is what the pass's own row shows.
    figures.update(
        database="SQLite 3",
        leads=100_000,
        page_size=500,
        changed=1_000,
        naive={**figures["naive"], "sample": 3_000},
    )
    for key in ("initial", "unchanged", "changed_1pct"):
        figures["passes"][key].update(
            seconds=1.0, created=0, updated=0, unchanged=0, write_statements={}
        )
    figures["naive"]["insert"].update(
        records=3_000, seconds=3.0, lead_write_statements=1
    )
    figures["naive"]["update"].update(
        records=3_000, seconds=3.0, lead_write_statements=1
    )
    figures["naive"]["extrapolated_seconds"] = 125.0
    text = "\n".join(report._writes_section({"sqlite": figures}))
    assert "| empty mirror | 1.00 | 12,000 | 0/0/0 | none | 15.0× |" in text
    assert "The median, 18.6×, is the verdict's figure" in text
    assert "(median of 3 paired runs) 18.6× (missed" in "\n".join(
        analysis._writes({"sqlite": figures})
    )
