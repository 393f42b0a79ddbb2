"""The production entry point: the image's gunicorn command, with the image's
gunicorn settings and production settings, on loopback.

The server runs as behind the TLS proxy: SSL redirect on, and the proxy's
X-Forwarded-Proto header trusted. Static files are collected with the
dummy values the Dockerfile uses at build time."""

import json
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
HOST = "portal.test"  # the only name in ALLOWED_HOSTS
HTTPS = {"Host": HOST, "X-Forwarded-Proto": "https"}
START_TIMEOUT = 30  # seconds


def dockerfile_build_env():
    """The VAR=value words of the Dockerfile's collectstatic step."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    step = next(line for line in text.splitlines() if "collectstatic" in line)
    words = shlex.split(step.split("RUN", 1)[1])
    return dict(word.split("=", 1) for word in words if re.match(r"^[A-Z_]+=", word))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(url, process):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            requests.get(url, headers={"Host": HOST}, timeout=5)
        except (requests.ConnectionError, requests.Timeout):
            # Not listening yet, or still booting on a busy machine.
            time.sleep(0.1)
        else:
            return True
    return False


@pytest.fixture(scope="module")
def server(tmp_path_factory, make_production_env, python):
    folder = tmp_path_factory.mktemp("gunicorn")
    env = make_production_env(folder, USE_X_FORWARDED_PROTO="True")
    build_env = {**env, **dockerfile_build_env()}
    for args, step_env in (
        (["manage.py", "collectstatic", "--noinput", "-v", "0"], build_env),
        (["manage.py", "migrate", "--noinput", "-v", "0"], env),
    ):
        result = python(args, step_env)
        assert result.returncode == 0, result.stderr

    port = free_port()
    log_path = folder / "gunicorn.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "docker/gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "cinc_portal.wsgi",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until_serving(base_url + "/healthz", process), log_path.read_text()
        yield {
            "url": base_url,
            "log": log_path,
            "static_root": Path(env["STATIC_ROOT"]),
            "port": port,
            "env": env,
        }
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def test_login_page_is_served_with_security_headers(server):
    response = requests.get(server["url"] + "/accounts/login/", headers=HTTPS)

    assert response.status_code == 200
    assert "<form" in response.text
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "; secure" in response.headers["Set-Cookie"].lower()


def test_plain_http_is_redirected_to_https(server):
    response = requests.get(
        server["url"] + "/accounts/login/",
        headers={"Host": HOST},
        allow_redirects=False,
    )

    assert response.status_code == 301
    assert response.headers["Location"] == f"https://{HOST}/accounts/login/"


def test_unknown_host_is_refused(server):
    response = requests.get(
        server["url"] + "/accounts/login/", headers=HTTPS | {"Host": "evil.test"}
    )

    assert response.status_code == 400


def test_hashed_static_file_is_served_with_a_long_cache_lifetime(server):
    manifest = json.loads((server["static_root"] / "staticfiles.json").read_text())
    hashed = manifest["paths"]["css/portal.css"]

    response = requests.get(f"{server['url']}/static/{hashed}", headers=HTTPS)

    assert hashed != "css/portal.css"
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/css")
    assert "max-age=315360000" in response.headers["Cache-Control"]
    assert "immutable" in response.headers["Cache-Control"]


def test_healthz_answers_over_plain_http(server):
    response = requests.get(server["url"] + "/healthz", headers={"Host": HOST})

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_container_health_check_script_passes(server):
    env = server["env"] | {"PORT": str(server["port"])}

    result = subprocess.run(
        [sys.executable, "docker/healthcheck.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 0, result.stderr


def test_gunicorn_logs_json_lines_without_query_strings(server):
    requests.get(
        server["url"] + "/cinc/callback/?code=SECRETCODE123&state=abc",
        headers=HTTPS,
        allow_redirects=False,
    )

    deadline = time.monotonic() + 10
    while "/cinc/callback/" not in server["log"].read_text():
        assert time.monotonic() < deadline, server["log"].read_text()
        time.sleep(0.1)
    lines = server["log"].read_text().splitlines()
    events = [json.loads(line) for line in lines]

    assert {"gunicorn.error", "gunicorn.access"} <= {e["logger"] for e in events}
    assert "SECRETCODE123" not in server["log"].read_text()
