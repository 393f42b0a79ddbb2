"""The command line: arguments, sizes, worker processes, scratch databases."""

import contextlib

import pytest

from bench import cli, databases, report


def test_without_arguments_every_benchmark_runs_and_the_document_is_written():
    args = cli.parse_args([])

    assert args.benchmarks == ["sync", "writes", "memory", "pages"]
    assert args.output == cli.DEFAULT_OUTPUT
    assert args.databases == ["sqlite", "postgresql"]


def test_quick_runs_print_only():
    args = cli.parse_args(["writes", "--quick"])

    assert args.benchmarks == ["writes"]
    assert args.output is None
    assert cli.sizes_for(args) == cli.QUICK


def test_unknown_benchmarks_and_databases_are_refused():
    with pytest.raises(SystemExit):
        cli.parse_args(["speed"])
    with pytest.raises(SystemExit):
        cli.parse_args(["--databases", "mysql"])


def test_leads_overrides_every_size():
    sizes = cli.sizes_for(cli.parse_args(["--leads", "800"]))

    assert sizes["sync"]["leads"] == sizes["writes"]["leads"] == 800
    assert sizes["pages"]["leads"] == 800
    assert sizes["writes"]["naive_sample"] == 800
    assert sizes["memory"]["sizes"] == [200, 400, 800]


def test_an_unreachable_postgresql_is_skipped_with_a_note(monkeypatch):
    monkeypatch.setattr(databases, "PG_PORT", 9)

    with contextlib.ExitStack() as stack:
        store = cli.Databases(stack, shared=True)
        figures = cli._per_database(
            ["postgresql"], lambda kind, env, notes: {"ran": True}, store
        )

    assert "skipped" in figures["postgresql"]
    assert "not usable" in figures["postgresql"]["skipped"]


def test_a_worker_runs_on_its_own_scratch_database(tmp_path):
    with databases.scratch_database("sqlite", tmp_path) as env:
        figures = cli.run_worker(
            "writes", {"leads": 40, "naive_sample": 10, "page_size": 20}, env
        )

    assert figures["passes"]["initial"]["created"] == 40
    assert figures["database"].startswith("SQLite")


def test_a_failing_worker_is_reported(tmp_path):
    with databases.scratch_database("sqlite", tmp_path) as env:
        with pytest.raises(cli.WorkerFailed):
            cli.run_worker("writes", {"no_such_size": 1}, env)


def test_render_rewrites_the_document_from_its_own_figures(tmp_path):
    path = tmp_path / "benchmarks.md"
    failed = {"sync": {"machine": {}, "error": "the sync worker ran out of time"}}
    path.write_text(report.render(failed) + "\nstale text\n")

    assert cli.main(["--render", "--output", str(path)]) == 0

    text = path.read_text()
    assert "stale text" not in text
    assert "ran out of time" in text
    assert report.load_results(path) == failed


def test_the_writes_benchmark_runs_its_pairs_and_probes_in_workers():
    sizes = {"writes": {"leads": 60, "naive_sample": 10, "page_size": 20, "pairs": 2}}

    with contextlib.ExitStack() as stack:
        store = cli.Databases(stack, shared=False)
        figures = cli.bench_writes(sizes, ["sqlite"], store)["sqlite"]

    pairs = figures["pairs"]
    assert len(pairs) == 2
    assert pairs[0]["ratio"] == round(
        figures["passes"]["initial"]["rows_per_s"]
        / figures["naive"]["insert"]["rows_per_s"],
        1,
    )
    assert pairs[1]["bulk_rows_per_s"] > 0 and pairs[1]["naive_rows_per_s"] > 0
    assert figures["steps"]["steps_us_per_lead"]["statement"] > 0
    assert figures["unindexed"]["created"] == 60
    assert figures["ratio"]["unindexed"] > 0
    assert "failed_runs" not in figures
    # The sizes are not changed for the next database.
    assert sizes["writes"]["pairs"] == 2


@pytest.fixture
def fake_workers(monkeypatch):
    """run_worker and scratch databases replaced: each task's answer comes
    from ``answers`` (an exception is raised); the tasks run are listed."""
    answers, ran = {}, []

    @contextlib.contextmanager
    def scratch(kind, workdir=None):
        yield {}

    def run_worker(task, params, env, **kwargs):
        ran.append((task, dict(params)))
        answer = (
            answers[task].pop(0) if isinstance(answers[task], list) else answers[task]
        )
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(databases, "scratch_database", scratch)
    monkeypatch.setattr(cli, "run_worker", run_worker)
    return answers, ran


def measured(ratio):
    return {
        "passes": {"initial": {"rows_per_s": 15_000}},
        "naive": {"insert": {"rows_per_s": 1_000}},
        "ratio": {"initial": ratio},
    }


def pair(ratio):
    return {"bulk_rows_per_s": 1, "naive_rows_per_s": 1, "ratio": ratio}


def test_the_empty_mirror_ratio_is_the_median_of_the_pairs(fake_workers):
    answers, ran = fake_workers
    answers["writes-pair"] = [pair(21.5), pair(18.6)]
    answers["writes-steps"] = {"steps_us_per_lead": {}}
    answers["writes-unindexed"] = {
        "rows_per_s": 20_000,
        "rows_per_s_with_build": 16_000,
    }

    figures = cli.more_writes_runs(
        "sqlite", measured(15.0), {"leads": 100, "naive_sample": 10}, pairs=3
    )

    # Not the first (15.0) nor the mean (18.4).
    assert [p["ratio"] for p in figures["pairs"]] == [15.0, 21.5, 18.6]
    assert figures["ratio"]["initial"] == 18.6
    assert figures["ratio"]["unindexed"] == 20.0
    assert figures["ratio"]["unindexed_with_build"] == 16.0
    assert [task for task, _ in ran] == [
        "writes-pair",
        "writes-pair",
        "writes-steps",
        "writes-unindexed",
    ]
    assert ran[0][1] == {"leads": 100, "naive_sample": 10}
    assert ran[2][1] == {"leads": 100}


def test_an_even_number_of_pairs_gives_a_median_of_one_decimal(fake_workers):
    answers, _ = fake_workers
    answers["writes-pair"] = [pair(12.2)]
    answers["writes-steps"] = answers["writes-unindexed"] = cli.WorkerFailed("off")

    figures = cli.more_writes_runs("sqlite", measured(12.1), {"leads": 100}, pairs=2)

    assert str(figures["ratio"]["initial"]) == "12.1"


def test_a_failed_probe_or_pair_keeps_what_was_measured(fake_workers):
    answers, _ = fake_workers
    answers["writes-pair"] = [databases.DatabaseUnavailable("PostgreSQL went away")]
    answers["writes-steps"] = {"steps_us_per_lead": {"hash": 6.0}}
    answers["writes-unindexed"] = cli.WorkerFailed(
        "the writes-unindexed worker exited with 1"
    )

    figures = cli.more_writes_runs(
        "postgresql", measured(15.0), {"leads": 100}, pairs=2
    )

    assert figures["ratio"]["initial"] == 15.0
    assert figures["steps"] == {"steps_us_per_lead": {"hash": 6.0}}
    assert "unindexed" not in figures and "unindexed" not in figures["ratio"]
    assert figures["failed_runs"] == [
        "writes-pair: PostgreSQL went away",
        "writes-unindexed: the writes-unindexed worker exited with 1",
    ]
