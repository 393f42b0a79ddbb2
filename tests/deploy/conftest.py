"""Fixtures for the deployment tests: a production environment for
subprocesses (DEBUG=False, fresh secrets, SQLite and the filesystem broker
under a temporary folder) and a runner for the project's Python."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
BIN = Path(PYTHON).parent


def read_env_file(path):
    """``{NAME: value}`` of the ``NAME=value`` lines of an env file."""
    values = {}
    for line in Path(path).read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            values[match[1]] = match[2]
    return values


def production_env(folder, **overrides):
    """A clean environment for a production process rooted in ``folder``."""
    var = Path(folder) / "var"
    for sub in ("celery/queue", "celery/processed"):
        (var / sub).mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(folder),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "DJANGO_SETTINGS_MODULE": "cinc_portal.settings",
        "DEBUG": "False",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "portal.test",
        "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "VAR_DIR": str(var),
        "DATABASE_URL": f"sqlite:///{var / 'db.sqlite3'}",
        "CELERY_BROKER_URL": "filesystem://",
        "REDIS_URL": "",
        "STATIC_ROOT": str(Path(folder) / "static"),
    }
    env.update(overrides)
    return env


def run_python(args, env, timeout=60):
    return subprocess.run(
        [PYTHON, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def make_production_env():
    return production_env


@pytest.fixture(scope="session")
def python():
    return run_python


@pytest.fixture(scope="session")
def env_file_values():
    return read_env_file
