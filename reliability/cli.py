"""``python -m reliability``: every scenario of issue 5's "Faults", the load
test, and the other sections' test suites; writes ``docs/reliability.md``.

Django runs in this process on a scratch SQLite database in a temporary
folder (``DATABASE_URL``, ``VAR_DIR`` and ``CELERY_BROKER_URL=memory://``
are set before Django starts, whatever the environment says), so nothing of
a real installation is touched. The portal's log goes to a file in that
folder. Every sandbox runs on 127.0.0.1 and is stopped by its pid in a
``finally`` block; the load test stops its own processes. The load test and
the test suites run with the environment the command was given.

The whole command is bounded: each scenario bounds its runs, and once
``--budget`` seconds have passed the remaining steps are skipped (and say
so in the document).
"""

import argparse
import datetime as dt
import json
import logging
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "docs" / "reliability.md"
LOAD_LEADS = 100_000
LOAD_SECONDS = 60
LOAD_THREADS = 8
BUDGET = 570.0
SUITE_TIMEOUT = 240
# The other sections of issue 5, proved by their own tests.
SUITES = (
    ("Isolation", "tests/security/test_isolation.py"),
    ("Bad input (fuzzed forms and parameters)", "tests/security/test_fuzz.py"),
    ("Secrets and deployment", "tests/security/test_secrets.py"),
)
OUTAGES = ("lead-post-timeout", "worker-killed", "sandbox-down", "redis-down")


def say(message):
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def parse_args(argv=None):
    from . import faults

    parser = argparse.ArgumentParser(
        prog="python -m reliability",
        description="Run the reliability scenarios and write docs/reliability.md.",
    )
    parser.add_argument("--leads", type=int, default=faults.LEADS)
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated scenario keys: "
        + ", ".join([s.key for s in faults.SCENARIOS] + list(OUTAGES)),
    )
    parser.add_argument("--no-load", action="store_true", help="skip the load test")
    parser.add_argument(
        "--no-suites", action="store_true", help="skip the security test suites"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--budget", type=float, default=BUDGET)
    args = parser.parse_args(argv)
    known = {s.key for s in faults.SCENARIOS} | set(OUTAGES)
    args.only = [key for key in args.only.split(",") if key]
    unknown = set(args.only) - known
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return args


def setup_django(workdir):
    """Django on a scratch database in ``workdir``; the log to a file."""
    var = workdir / "var"
    var.mkdir()
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "cinc_portal.settings",
            "DATABASE_URL": f"sqlite:///{workdir / 'portal.sqlite3'}",
            "VAR_DIR": str(var),
            "CELERY_BROKER_URL": "memory://",
            "REDIS_URL": "",
            "DEBUG": "True",
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "text",
        }
    )
    import django

    django.setup()
    log = open(workdir / "portal.log", "a")  # noqa: SIM115 - closed at exit
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(log)
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    return log


def machine():
    def read(path, prefix):
        try:
            with open(path) as handle:
                for line in handle:
                    if line.startswith(prefix):
                        return line.split(":", 1)[1].strip()
        except OSError:
            return None
        return None

    memory = read("/proc/meminfo", "MemTotal")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()
    return {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "commit": commit or None,
        "host": platform.platform(),
        "cpu": read("/proc/cpuinfo", "model name"),
        "nproc": os.cpu_count(),
        "memory_gb": round(int(memory.split()[0]) / 1024 / 1024, 1) if memory else None,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load_at_start": [round(value, 2) for value in os.getloadavg()],
    }


class Budget:
    def __init__(self, seconds):
        self.deadline = time.monotonic() + seconds

    def left(self):
        return self.deadline - time.monotonic()


def run_faults(server, args, budget, results):
    from . import faults

    for scenario in faults.SCENARIOS:
        if args.only and scenario.key not in args.only:
            continue
        if budget.left() <= 0:
            say(f"{scenario.key}: skipped, out of time")
            results["skipped"].append(scenario.key)
            continue
        say(f"{scenario.key}: {scenario.title}")
        figures = faults.run_scenario(server, scenario, leads=args.leads, say=say)
        verdict = "passed" if figures["passed"] else f"FAILED {figures['problems']}"
        say(f"{scenario.key}: {verdict} in {figures['seconds']:.0f} s")
        results["faults"].append(figures)


def run_outages(server, args, budget, results, workdir):
    from . import outages

    steps = {
        "lead-post-timeout": lambda: outages.lead_post_timeout(server),
        "worker-killed": lambda: outages.worker_killed(server, leads=args.leads),
        "sandbox-down": lambda: outages.sandbox_down(workdir=workdir),
        "redis-down": lambda: outages.redis_down(server),
    }
    for key, step in steps.items():
        if args.only and key not in args.only:
            continue
        if budget.left() <= 0:
            say(f"{key}: skipped, out of time")
            results["skipped"].append(key)
            continue
        say(f"{key}: starting")
        figures = step()
        verdict = "passed" if figures["passed"] else f"FAILED {figures['problems']}"
        say(f"{key}: {verdict} in {figures['seconds']:.0f} s")
        results["outages"][key] = figures


def run_load(budget):
    try:
        from .load import run
    except ImportError:
        return {"missing": "reliability.load is not there yet"}
    say(f"load: {LOAD_LEADS:,} leads, {LOAD_SECONDS} s, {LOAD_THREADS} threads")
    started = time.monotonic()
    try:
        figures = run(leads=LOAD_LEADS, seconds=LOAD_SECONDS, threads=LOAD_THREADS)
    except Exception as exc:  # noqa: BLE001 - reported in the document
        say(f"load: crashed: {type(exc).__name__}: {exc}")
        return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    say(f"load: {figures['requests']} requests, {figures['errors']} errors")
    return {"figures": figures, "seconds": round(time.monotonic() - started, 1)}


def run_suite(title, path, budget):
    timeout = max(10, min(SUITE_TIMEOUT, budget.left()))
    say(f"suite: {path}")
    started = time.monotonic()
    try:
        result = subprocess.run(  # noqa: S603 - our own interpreter and tests
            [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", path],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        summary = lines[-1].strip("= ") if lines else "no output"
        passed = result.returncode == 0
    except subprocess.TimeoutExpired:
        summary, passed = f"stopped after {timeout:.0f} s", False
    return {
        "title": title,
        "path": path,
        "summary": summary,
        "passed": passed,
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv=None):
    args = parse_args(argv)
    budget = Budget(args.budget)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="cinc-reliability-"))
    environment = dict(os.environ)
    log = None
    results = {"faults": [], "outages": {}}
    try:
        log = setup_django(workdir)
        from sandbox.process import start_sandbox

        from . import faults, harness, report

        results = {
            "machine": machine(),
            "settings": report.settings_used(leads=args.leads, agents=faults.AGENTS),
            "faults": [],
            "outages": {},
            "skipped": [],
        }
        say(f"sandbox: {args.leads:,} leads on 127.0.0.1; scratch files in {workdir}")
        server = start_sandbox(
            workdir / "sandbox.sqlite3",
            leads=args.leads,
            agents=faults.AGENTS,
            seed=faults.SEED,
            window=harness.WINDOW,
            limit=harness.LIMIT,
            startup_timeout=120,
        )
        try:
            run_faults(server, args, budget, results)
            run_outages(server, args, budget, results, workdir)
        finally:
            server.stop()

        # The load test and the suites start their own processes: they get
        # the environment this command was given, not the scratch one.
        os.environ.clear()
        os.environ.update(environment)
        if not args.no_load and not args.only:
            results["load"] = run_load(budget)
        if not args.no_suites and not args.only:
            results["suites"] = [
                run_suite(title, path, budget)
                for title, path in SUITES
                if budget.left() > 0
            ]
        results["seconds"] = round(time.monotonic() - started, 1)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str))
        args.output.write_text(report.render(results))
        say(f"wrote {args.output} in {results['seconds']:.0f} s")
    finally:
        if log is not None:
            for handler in logging.getLogger().handlers:
                if getattr(handler, "stream", None) is log:
                    handler.setStream(sys.stderr)
            log.close()
        shutil.rmtree(workdir, ignore_errors=True)
    failed = [f["key"] for f in results["faults"] if not f["passed"]]
    failed += [key for key, f in results["outages"].items() if not f["passed"]]
    if failed:
        say(f"failed: {', '.join(failed)}")
    return 1 if failed else 0
