"""First steps of `make run`: a development .env, the database, the sandbox
seed and the demo broker. Safe to run again: each step skips work already
done."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = ROOT / ".env"
VAR = ROOT / "var"
PYTHON = sys.executable


def step(message):
    print(f"==> {message}", flush=True)


def write_env():
    if ENV_FILE.exists():
        step(".env exists; keeping it")
        return
    step("Writing a development .env (random keys, CINC pointed at the sandbox)")
    ENV_FILE.write_text(
        "\n".join(
            [
                "# Development settings written by `make run`. See README.md.",
                "DEBUG=True",
                f"SECRET_KEY={secrets.token_urlsafe(50)}",
                f"TOKEN_ENCRYPTION_KEY={Fernet.generate_key().decode()}",
                "CINC_CLIENT_ID=cinc-portal-dev",
                "CINC_CLIENT_SECRET=cinc-portal-dev-secret",
                "CINC_AUTHORIZE_URL=http://127.0.0.1:8001/integrator/authorize",
                "CINC_TOKEN_URL=http://127.0.0.1:8001/integrator/token",
                "CINC_API_URL=http://127.0.0.1:8001/v2/site",
                "CINC_REDIRECT_URI=http://127.0.0.1:8000/cinc/callback/",
                f"DEMO_BROKER_PASSWORD={secrets.token_urlsafe(9)}",
                "",
            ]
        )
    )
    ENV_FILE.chmod(0o600)


def read_env_value(name):
    for line in ENV_FILE.read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1]
    return ""


def run(*args):
    subprocess.run([PYTHON, *args], cwd=ROOT, check=True)


def main():
    os.chdir(ROOT)
    for folder in ("celery/queue", "celery/processed", "celery/control", "ratelimit"):
        (VAR / folder).mkdir(parents=True, exist_ok=True)
    write_env()

    step("Applying database migrations")
    run("manage.py", "migrate", "--no-input", "-v", "0")

    step("Seeding the CINC sandbox (first run only)")
    run("-m", "sandbox", "seed", "--db", str(VAR / "sandbox.sqlite3"))

    step("Creating the demo broker login")
    password = read_env_value("DEMO_BROKER_PASSWORD") or secrets.token_urlsafe(9)
    run("manage.py", "demo_broker", "--password", password)

    print(
        "\n"
        "  Portal:   http://127.0.0.1:8000/  sign in as  demo / " + password + "\n"
        "  Sandbox:  http://127.0.0.1:8001/  on its consent page sign in as\n"
        "            buum@cu.com / sandbox  (a broker of the demo site)\n"
        "  Ctrl-C stops the web server, the worker, beat and the sandbox.\n",
        flush=True,
    )


if __name__ == "__main__":
    main()
