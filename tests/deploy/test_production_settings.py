"""Production settings, checked in fresh processes (settings are read once per
process): Django's deployment checklist passes with .env.example's values,
and DEBUG=False without the required secrets refuses to start."""

import secrets
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]


def test_deploy_check_passes_with_the_example_env_file(
    tmp_path, make_production_env, env_file_values, python
):
    example = env_file_values(ROOT / ".env.example")
    env = make_production_env(tmp_path, **example)
    env.update(
        SECRET_KEY=secrets.token_urlsafe(50),
        TOKEN_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        # The stack's PostgreSQL and Redis are not here; the check does not
        # connect to either.
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        CELERY_BROKER_URL="filesystem://",
    )

    result = python(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    "missing",
    [
        ("SECRET_KEY", "ALLOWED_HOSTS", "TOKEN_ENCRYPTION_KEY"),
        ("TOKEN_ENCRYPTION_KEY",),
    ],
)
def test_debug_off_refuses_to_start_naming_missing_settings(
    tmp_path, missing, make_production_env, python
):
    # Empty values, so that a developer's .env cannot fill them in.
    env = make_production_env(tmp_path, **dict.fromkeys(missing, ""))

    result = python(["manage.py", "check"], env)

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "DEBUG is False" in last_line
    for name in ("SECRET_KEY", "ALLOWED_HOSTS", "TOKEN_ENCRYPTION_KEY"):
        assert (name in last_line) == (name in missing), last_line


def test_unknown_log_format_refuses_to_start(tmp_path, make_production_env, python):
    env = make_production_env(tmp_path, LOG_FORMAT="xml")

    result = python(["manage.py", "check"], env)

    assert result.returncode != 0
    assert "LOG_FORMAT must be json or text" in result.stderr
