"""``python -m bench [sync|writes|memory|pages ...] [--quick]``.

Runs the chosen benchmarks (all four by default), each in worker
subprocesses with scratch databases, prints the figures, and (for full
runs, or when ``--output`` is given) writes ``docs/benchmarks.md``. The raw
figures are kept in that document, so running one benchmark again updates
its section and keeps the others'.
"""

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import databases, report

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
BENCHMARKS = ("sync", "writes", "memory", "pages")
DATABASES = ("sqlite", "postgresql")

FULL = {
    "sync": {"leads": 50_000},
    "writes": {"leads": 100_000, "naive_sample": 3_000, "pairs": 3},
    "memory": {"sizes": [25_000, 50_000, 100_000]},
    "pages": {"leads": 100_000, "repeats": 30, "deep_page": 1_500},
}
QUICK = {
    "sync": {"leads": 3_000},
    "writes": {"leads": 2_000, "naive_sample": 300, "pairs": 2},
    "memory": {"sizes": [1_000, 2_000]},
    "pages": {"leads": 2_000, "repeats": 3, "deep_page": 30},
}
# Upper bounds per worker (seconds): every benchmark stops by itself well
# before, these only stop a run that hangs.
TIMEOUTS = {
    "sync": 600,
    "writes": 1200,
    "writes-pair": 900,
    "writes-steps": 600,
    "writes-unindexed": 600,
    "memory": 600,
    "pages-seed": 600,
    "pages": 600,
    "csv": 300,
}


class WorkerFailed(Exception):
    pass


def say(message):
    print(
        f"[{time.strftime('%H:%M:%S', time.gmtime())}] {message}",
        file=sys.stderr,
        flush=True,
    )


def sizes_for(args):
    """Sizes of each benchmark from ``--quick`` and ``--leads``."""
    sizes = json.loads(json.dumps(QUICK if args.quick else FULL))
    if args.leads:
        for name in ("sync", "writes", "pages"):
            sizes[name]["leads"] = args.leads
        sizes["writes"]["naive_sample"] = min(
            sizes["writes"]["naive_sample"], args.leads
        )
        sizes["memory"]["sizes"] = [args.leads // 4, args.leads // 2, args.leads]
    return sizes


def run_worker(task, params, env, *, timeout=None, no_migrate=False):
    """Run ``python -m bench.worker task`` in its own process group; return
    its figures. On a timeout or an interrupt the group (the worker and any
    sandbox it started) is stopped by its id."""
    with tempfile.NamedTemporaryFile(
        prefix=f"bench-{task}-", suffix=".json", delete=False
    ) as handle:
        out = handle.name
    command = [sys.executable, "-m", "bench.worker", task]
    command += ["--params", json.dumps(params), "--out", out]
    if no_migrate:
        command.append("--no-migrate")
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        command,
        cwd=ROOT,
        env={**os.environ, **env},
        start_new_session=True,
    )
    try:
        returncode = process.wait(timeout=timeout or TIMEOUTS.get(task, 600))
        if returncode != 0:
            raise WorkerFailed(f"the {task} worker exited with {returncode}")
        with open(out) as handle:
            return json.load(handle)
    except subprocess.TimeoutExpired:
        raise WorkerFailed(f"the {task} worker ran out of time") from None
    finally:
        _stop_group(process)
        Path(out).unlink(missing_ok=True)


def _stop_group(process):
    if process.poll() is None:
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
    # A sandbox the worker started is in the same group: stop it too, in
    # case the worker died before it could.
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


# The benchmarks, as run from the parent process. -----------------------------


class Databases:
    """Scratch databases by kind, kept open until the run ends, so the
    pages benchmark can use the mirror the writes benchmark left."""

    def __init__(self, stack, *, shared):
        self.stack = stack
        self.shared = shared
        self.open = {}

    @contextlib.contextmanager
    def use(self, kind):
        """(environment, notes) of a database of ``kind``: a new one, or
        the shared one. Notes pass things on (the writes broker)."""
        if not self.shared:
            with databases.scratch_database(kind) as env:
                yield env, {}
            return
        if kind not in self.open:
            env = self.stack.enter_context(databases.scratch_database(kind))
            self.open[kind] = (env, {})
        yield self.open[kind]


SYNC_VARIANTS = {
    # The portal configured for the sandbox's window (CINC_RATE_WINDOW), as
    # a deployment against such a site would be; pages fetched ahead.
    "configured": {"prefetch": True},
    # The same with CINC_SYNC_PREFETCH=False: each page fetched, then
    # written, which shows what fetching ahead is worth. No target.
    "in_line": {"prefetch": False},
}


def bench_sync(sizes, dbs, store):
    figures = {}
    for variant, options in SYNC_VARIANTS.items():
        params = dict(sizes["sync"], **options)
        params["limiter_window_s"] = params.get("window", 2.0)
        say(f"sync: variant {variant}")
        with databases.scratch_database("sqlite") as env:
            figures[variant] = run_worker("sync", params, env)
    return figures


def bench_memory(sizes, dbs, store):
    runs = []
    for leads in sizes["memory"]["sizes"]:
        say(f"memory: a sync of {leads:,} leads in a fresh process")
        with databases.scratch_database("sqlite") as env:
            runs.append(run_worker("memory", {"leads": leads}, env))
    return {"runs": runs}


def _per_database(dbs, body, store):
    figures = {}
    for kind in dbs:
        try:
            with store.use(kind) as (env, notes):
                figures[kind] = body(kind, env, notes)
        except databases.DatabaseUnavailable as exc:
            say(f"skipping {kind}: {exc}")
            figures[kind] = {"skipped": str(exc)}
    return figures


def bench_writes(sizes, dbs, store):
    params = dict(sizes["writes"])
    pairs = params.pop("pairs", 1)

    def body(kind, env, notes):
        figures = run_worker("writes", params, env)
        notes["writes_broker"] = figures["broker"]
        notes["writes_leads"] = figures["leads"]
        return more_writes_runs(kind, figures, params, pairs)

    return _per_database(dbs, body, store)


def more_writes_runs(kind, figures, params, pairs):
    """Add to the writes figures of ``kind`` the other paired runs of the
    empty-mirror target (its verdict then takes the median ratio) and the
    two probes: the same leads again, each into a database of its own
    (the shared one is kept for the pages benchmark). A run that fails is
    noted and the others go on: the figures already measured are kept."""
    figures["pairs"] = [
        {
            "bulk_rows_per_s": figures["passes"]["initial"]["rows_per_s"],
            "naive_rows_per_s": figures["naive"]["insert"]["rows_per_s"],
            "ratio": figures["ratio"]["initial"],
        }
    ]
    runs = [("pairs", "writes-pair", params)] * (pairs - 1)
    probe = {key: params[key] for key in ("leads", "page_size") if key in params}
    runs += [("steps", "writes-steps", probe), ("unindexed", "writes-unindexed", probe)]
    for key, task, task_params in runs:
        say(f"writes: {task}")
        try:
            with databases.scratch_database(kind) as run_env:
                result = run_worker(task, task_params, run_env)
        except (WorkerFailed, databases.DatabaseUnavailable) as exc:
            say(f"writes: {task} failed: {exc}")
            figures.setdefault("failed_runs", []).append(f"{task}: {exc}")
            continue
        if key == "pairs":
            figures["pairs"].append(result)
        else:
            figures[key] = result
    figures["ratio"]["initial"] = round(
        statistics.median(pair["ratio"] for pair in figures["pairs"]), 1
    )
    naive = figures["naive"]["insert"]["rows_per_s"]
    unindexed = figures.get("unindexed")
    if unindexed:
        figures["ratio"]["unindexed"] = round(unindexed["rows_per_s"] / naive, 1)
        figures["ratio"]["unindexed_with_build"] = round(
            unindexed["rows_per_s_with_build"] / naive, 1
        )
    return figures


def bench_pages(sizes, dbs, store):
    params = sizes["pages"]

    def body(kind, env, notes):
        seed_params = {"leads": params["leads"]}
        if notes.get("writes_leads") == params["leads"]:
            seed_params["adopt"] = notes["writes_broker"]
        seeded = run_worker("pages-seed", seed_params, env)
        where = {k: seeded[k] for k in ("broker", "leads")}
        timing = {
            **where,
            "lead_uuid": seeded["lead_uuid"],
            "search_name": seeded["search_name"],
            "search_phone": seeded["search_phone"],
            "repeats": params["repeats"],
            "deep_page": params["deep_page"],
        }
        return {
            "seed": seeded,
            "pages": run_worker("pages", timing, env, no_migrate=True),
            "csv": run_worker("csv", where, env, no_migrate=True),
        }

    return _per_database(dbs, body, store)


RUNNERS = {
    "sync": bench_sync,
    "writes": bench_writes,
    "memory": bench_memory,
    "pages": bench_pages,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the CINC Portal benchmarks and write docs/benchmarks.md.",
    )
    parser.add_argument(
        "benchmarks",
        nargs="*",
        metavar="BENCHMARK",
        help="sync, writes, memory, pages (default: all four)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes; the document is not written"
    )
    parser.add_argument("--leads", type=int, help="override the lead counts")
    parser.add_argument(
        "--databases",
        default=",".join(DATABASES),
        help="comma-separated: sqlite,postgresql (writes and pages)",
    )
    parser.add_argument("--output", type=Path, help="where to write the document")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument(
        "--render",
        action="store_true",
        help="only rewrite the document from the figures it holds",
    )
    args = parser.parse_args(argv)
    unknown = set(args.benchmarks) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    args.benchmarks = list(dict.fromkeys(args.benchmarks or BENCHMARKS))
    args.databases = [name for name in args.databases.split(",") if name]
    unknown = set(args.databases) - set(DATABASES)
    if unknown:
        parser.error(f"unknown database(s): {', '.join(sorted(unknown))}")
    if args.output is None and not args.quick:
        args.output = DEFAULT_OUTPUT
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.render:
        path = args.output or DEFAULT_OUTPUT
        path.write_text(report.render(report.load_results(path)))
        say(f"wrote {path}")
        return 0
    sizes = sizes_for(args)
    results = report.load_results(args.output) if args.output else {}
    failed = []
    shared = {"writes", "pages"} <= set(args.benchmarks)
    with contextlib.ExitStack() as stack:
        store = Databases(stack, shared=shared)
        for name in args.benchmarks:
            if not _run_one(name, args, sizes, store, results):
                failed.append(name)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    if args.output:
        args.output.write_text(report.render(results))
        say(f"wrote {args.output}")
    return 1 if failed else 0


def _run_one(name, args, sizes, store, results):
    """Run one benchmark into ``results``; False when it failed."""
    say(f"{name}: starting")
    started = time.monotonic()
    entry = {
        "machine": databases.machine(ROOT),
        "sizes": sizes[name],
        "quick": args.quick,
    }
    ok = True
    try:
        entry["figures"] = RUNNERS[name](sizes, args.databases, store)
    except WorkerFailed as exc:
        say(f"{name}: FAILED: {exc}")
        entry["error"] = str(exc)
        ok = False
    entry["seconds"] = round(time.monotonic() - started, 1)
    entry["load_after"] = [round(value, 2) for value in os.getloadavg()]
    results[name] = entry
    print(report.section(name, entry), flush=True)
    return ok
