"""Run the sandbox as a subprocess on 127.0.0.1 (for tests and benchmarks).

    with start_sandbox(tmp_path / "sandbox.db", leads=100) as sandbox:
        sandbox.control.config(limit=3, window=1)
        requests.get(sandbox.api_url + "/me", headers=...)

The server binds a free port (``port=0``) and reports it through a file, so
there is no race for the port; ``start_sandbox`` returns once
``/_sandbox/health`` answers.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandbox.app import client_from_env
from sandbox.control import SandboxControl, SandboxError
from sandbox.knobs import KNOB_DEFAULTS

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
SEED_OPTIONS = ("agents", "leads", "seed", "second_site_agents", "second_site_leads")


class SandboxProcess:
    """A running sandbox subprocess and its URLs."""

    def __init__(self, process, host, port, log_path, client):
        self.process = process
        self.host = host
        self.port = port
        self.log_path = log_path
        self.client_id = client.client_id
        self.client_secret = client.client_secret
        self.redirect_uris = list(client.redirect_uris)
        self.base_url = f"http://{host}:{port}"
        self.authorize_url = f"{self.base_url}/integrator/authorize"
        self.token_url = f"{self.base_url}/integrator/token"
        self.api_url = f"{self.base_url}/v2/site"
        self.control = SandboxControl(self.base_url)

    def __repr__(self):
        return f"SandboxProcess(pid={self.pid}, base_url={self.base_url!r})"

    @property
    def pid(self):
        return self.process.pid

    @property
    def redirect_uri(self):
        return self.redirect_uris[0]

    def running(self):
        return self.process.poll() is None

    def log_tail(self, lines=40):
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout=STOP_TIMEOUT):
        """Terminate the subprocess (by its pid), kill it after ``timeout``."""
        self.control.close()
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.terminate()
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def _knob_flags(knobs):
    flags = []
    for name, value in knobs.items():
        if name not in KNOB_DEFAULTS:
            raise TypeError(f"unknown sandbox knob: {name}")
        flag = "--" + name.replace("_", "-")
        if name in ("upsert", "envelope"):
            if value:
                flags.append(flag)
        elif value is not None:
            flags += [flag, str(value)]
    return flags


def _wait_for_port(process, port_file, deadline):
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None
        try:
            text = Path(port_file).read_text().strip()
        except FileNotFoundError:
            text = ""
        if text:
            return int(text)
        time.sleep(0.05)
    return None


def start_sandbox(
    db_path,
    port=0,
    *,
    host="127.0.0.1",
    client_id=None,
    client_secret=None,
    redirect_uris=None,
    log_path=None,
    startup_timeout=STARTUP_TIMEOUT,
    env=None,
    agents=None,
    leads=None,
    seed=None,
    second_site_agents=None,
    second_site_leads=None,
    **knobs,
):
    """Start ``python -m sandbox serve`` and wait until it is healthy.

    ``db_path`` is seeded first if empty (with ``agents``/``leads``/``seed``
    etc. or the defaults). ``knobs`` are startup knob values (``limit=3``,
    ``fail_rate=0.2``, ``upsert=True``...). The log goes to ``log_path``
    (default: next to the database). Raises SandboxError when the server
    does not come up within ``startup_timeout`` seconds.
    """
    db_path = Path(db_path)
    log_path = Path(log_path) if log_path else db_path.with_suffix(".log")
    client = client_from_env(client_id, client_secret, redirect_uris)
    knob_flags = _knob_flags(knobs)
    port_dir = tempfile.mkdtemp(prefix="sandbox-port-")
    port_file = os.path.join(port_dir, "port")

    command = [sys.executable, "-m", "sandbox", "serve", "--db", str(db_path)]
    command += ["--host", host, "--port", str(port), "--port-file", port_file]
    seeding = dict(
        zip(
            SEED_OPTIONS,
            (agents, leads, seed, second_site_agents, second_site_leads),
            strict=True,
        )
    )
    for name, value in seeding.items():
        if value is not None:
            command += ["--" + name.replace("_", "-"), str(int(value))]
    command += knob_flags

    child_env = dict(os.environ if env is None else env)
    # The client travels in the environment, not on the visible command line.
    child_env["SANDBOX_CLIENT_ID"] = client.client_id
    child_env["SANDBOX_CLIENT_SECRET"] = client.client_secret
    child_env["SANDBOX_REDIRECT_URIS"] = ",".join(client.redirect_uris)
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), child_env.get("PYTHONPATH")) if p
    )
    with open(log_path, "ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command,
            cwd=PROJECT_ROOT,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    deadline = time.monotonic() + startup_timeout
    bound = _wait_for_port(process, port_file, deadline)
    sandbox = SandboxProcess(process, host, bound or port, log_path, client)
    try:
        if bound is None:
            raise SandboxError("the sandbox did not start:\n" + sandbox.log_tail())
        while not sandbox.control.health():
            if not sandbox.running() or time.monotonic() > deadline:
                raise SandboxError("the sandbox is not healthy:\n" + sandbox.log_tail())
            time.sleep(0.05)
    except BaseException:
        sandbox.stop()
        raise
    finally:
        try:
            os.remove(port_file)
        except FileNotFoundError:
            pass
        os.rmdir(port_dir)
    return sandbox
