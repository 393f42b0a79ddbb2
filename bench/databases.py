"""Scratch databases for the benchmark workers, and what the machine is.

``scratch_database(kind, workdir)`` yields the environment a worker needs
(``DATABASE_URL``, ``VAR_DIR``) for a new empty database: a SQLite file in
a temporary directory, or a PostgreSQL database created on 127.0.0.1:5432
(user postgres, trust authentication) and dropped afterwards, also on
failure.
"""

import contextlib
import datetime as dt
import os
import platform
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

PG_HOST = os.environ.get("BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("BENCH_PG_USER", "postgres")
PG_TIMEOUT = 3


class DatabaseUnavailable(Exception):
    pass


def _pg_connect(dbname="postgres"):
    import psycopg

    return psycopg.connect(
        host=PG_HOST,
        port=PG_PORT,
        user=PG_USER,
        dbname=dbname,
        connect_timeout=PG_TIMEOUT,
        autocommit=True,
    )


def postgres_version():
    """The server's version string, or None when it is unreachable."""
    try:
        with _pg_connect() as conn:
            return conn.execute("SHOW server_version").fetchone()[0]
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return None


def _base_env(workdir):
    var_dir = Path(workdir) / "var"
    var_dir.mkdir(parents=True, exist_ok=True)
    static_root = Path(workdir) / "static"
    static_root.mkdir(exist_ok=True)
    return {
        "VAR_DIR": str(var_dir),
        "LOG_LEVEL": "WARNING",
        # Nothing is queued for real: the benchmarks run the sync in the
        # foreground, and the connect flow's first-sync task goes nowhere.
        "CELERY_BROKER_URL": "memory://",
        "DEBUG": "True",
        "STATIC_ROOT": str(static_root),
    }


@contextlib.contextmanager
def scratch_database(kind, workdir=None):
    """Environment variables of a new empty database of ``kind``
    (``sqlite`` or ``postgresql``); the database is removed on exit."""
    own_dir = workdir is None
    workdir = Path(workdir or tempfile.mkdtemp(prefix=f"bench-{kind}-"))
    env = _base_env(workdir)
    try:
        if kind == "sqlite":
            env["DATABASE_URL"] = f"sqlite:///{workdir / 'portal.sqlite3'}"
            yield env
        elif kind == "postgresql":
            with _postgres_database() as url:
                env["DATABASE_URL"] = url
                yield env
        else:
            raise ValueError(f"unknown database kind {kind!r}")
    finally:
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def _postgres_database():
    name = f"cinc_bench_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        with _pg_connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001 - reported, then skipped
        raise DatabaseUnavailable(
            f"PostgreSQL on {PG_HOST}:{PG_PORT} is not usable: {type(exc).__name__}"
        ) from None
    try:
        yield f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with _pg_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _git_commit(root):
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def _memory_gb():
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        return None
    return None


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def machine(root):
    """What the figures were measured on."""
    load = os.getloadavg()
    return {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "commit": _git_commit(root),
        "host": platform.platform(),
        "cpu": _cpu_model(),
        "nproc": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version(),
        "load_at_start": [round(value, 2) for value in load],
    }
