"""docker-compose.yml and the Dockerfile, checked without a Docker engine:
the structure the deployment relies on, and the compose file validated by
the compose tool's own `config` command (Debian's docker-compose in CI)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LONG_RUNNING = ("web", "worker", "beat", "redis", "postgres", "sandbox")
PORTAL = ("migrate", "web", "worker", "beat", "sandbox")


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def compose_command():
    """The compose tool here: the v2 plugin, else Debian's docker-compose."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, timeout=30
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_file_passes_the_compose_tools_validation(tmp_path):
    command = compose_command()
    if command is None:
        reason = (
            "no compose tool (apt-get install docker-compose, or Docker's "
            "compose plugin); .ci/run installs it"
        )
        if os.environ.get("CI") == "true":
            pytest.fail("CI must validate docker-compose.yml: " + reason)
        pytest.skip(reason)
    # A copy beside a .env made from the example, as a deployment has it.
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")

    results = [
        subprocess.run(
            [*command, *profile, "-f", "docker-compose.yml", "config", "-q"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        for profile in ([], ["--profile", "sandbox"])
    ]

    for result in results:
        assert result.returncode == 0, result.stdout + result.stderr


def test_compose_has_the_stacks_services(compose):
    assert set(compose["services"]) == {*LONG_RUNNING, "migrate"}
    assert compose["services"]["sandbox"]["profiles"] == ["sandbox"]


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_restart_and_have_a_health_check(compose, name):
    service = compose["services"][name]

    assert service["restart"] in ("always", "unless-stopped")
    assert service["healthcheck"]["test"]
    assert not service["healthcheck"].get("disable")


@pytest.mark.parametrize("name", ["web", "worker", "beat"])
def test_portal_processes_start_after_the_migration_succeeded(compose, name):
    depends_on = compose["services"][name]["depends_on"]

    assert depends_on["migrate"]["condition"] == "service_completed_successfully"
    assert depends_on["redis"]["condition"] == "service_healthy"


def test_migration_runs_once_after_postgres_is_healthy(compose):
    migrate = compose["services"]["migrate"]

    assert migrate["command"][1:3] == ["manage.py", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("postgres", "/var/lib/postgresql/data"),
        ("sandbox", "/app/var/sandbox"),
    ],
)
def test_data_lives_in_named_volumes(compose, name, path):
    mounts = dict(
        volume.split(":", 1) for volume in compose["services"][name]["volumes"]
    )
    by_path = {target: source for source, target in mounts.items()}

    assert by_path[path] in compose["volumes"]


@pytest.mark.parametrize("name", [*PORTAL, "postgres"])
def test_configuration_comes_from_the_env_file(compose, name):
    assert compose["services"][name]["env_file"] == ".env"


def test_worker_and_beat_run_celery(compose):
    worker = compose["services"]["worker"]["command"]
    beat = compose["services"]["beat"]["command"]

    assert worker[0] == beat[0] == "celery"
    assert "worker" in worker
    assert "beat" in beat


def test_web_publishes_only_on_loopback_by_default(compose):
    (mapping,) = compose["services"]["web"]["ports"]

    assert mapping == "${WEB_PUBLISH:-127.0.0.1:8000}:8000"


def test_dockerfile_builds_a_slim_non_root_gunicorn_image():
    text = (ROOT / "Dockerfile").read_text()
    instructions = re.findall(r"^([A-Z]+) (.*)$", text, flags=re.MULTILINE)
    by_name = {}
    for name, argument in instructions:
        by_name.setdefault(name, []).append(argument)

    assert by_name["FROM"] == ["python:3.11-slim"]
    assert by_name["USER"] == ["portal"]
    assert "pip install --no-cache-dir -r requirements.txt" in text
    assert "manage.py collectstatic --noinput" in text
    assert by_name["HEALTHCHECK"]
    assert by_name["CMD"] == [
        '["gunicorn", "-c", "docker/gunicorn.conf.py", "cinc_portal.wsgi"]'
    ]


def test_dockerignore_keeps_secrets_out_and_the_runtime_in():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = {line for line in lines if line and not line.startswith("#")}

    assert {".env", ".git", ".venv", "var"} <= ignored
    for needed in ("docker", "cinc_portal", "sandbox", "static", "templates"):
        assert needed not in ignored
