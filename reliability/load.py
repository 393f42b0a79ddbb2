"""The load test of issue 5: the broker's pages with 100,000 mirrored leads
while a sync runs, on loopback, bounded in time and in requests.

    python -m reliability.load [--leads 100000] [--seconds 60] [--threads 8]
                               [--max-requests 5000] [--database-url URL]

prints the figures as one JSON object; ``run()`` returns them as a dict
whose keys are ``FIGURES``.

Every process runs on 127.0.0.1 and is stopped by its pid at the end, also
on failure:

1. A scratch folder holds the database (a SQLite file; or ``database_url``
   names an empty PostgreSQL database), the static files and the logs. The
   database is migrated and the static files collected, as a deployment
   does.
2. A sandbox (its own SQLite file, a free port) serves the demo site the
   sync reads. Its rate limit and the portal's are raised, so the sync writes
   page after page for the whole test: a harsher load than CINC's 15
   requests per 20 seconds allows.
3. Seed (a child process): a broker, a connection holding ``leads`` leads
   made by the sandbox's seed generator and written by
   ``leads.sync.upsert_leads`` 500 a page, as a sync writes them; and a
   second connection, to the sandbox's demo site (tokens from the sandbox's
   control API).
4. gunicorn with production settings (DEBUG off), ``WORKERS`` processes of
   ``WORKER_THREADS`` threads, on a free port.
5. The sync (a child process) runs ``leads.sync.sync_connection`` of the
   second connection again and again, adding and changing leads in the
   sandbox before each run, until the load ends.
6. ``threads`` threads, signed in through the login form (a
   ``requests.Session``, the CSRF token read from the page), request in turn
   the leads list (a random page), a search, a filtered and sorted list and
   a lead's page, until ``seconds`` have passed or ``max_requests`` requests
   were made.

The figures (a flat dict; times in milliseconds, measured by the client):

- ``leads``: leads of the mirrored connection (the sync's connection adds
  its own: ``SYNC_LEADS``, and ``ADDED_PER_RUN`` more per run);
  ``database``: ``sqlite`` or ``postgresql``; ``server``: e.g. ``gunicorn
  2x4``; ``threads``; ``seed_seconds``: time to write the mirror;
  ``load_at_start``: the machine's 1-minute load average when the load
  started (other work on the machine slows every figure);
- ``seconds``: how long the load ran; ``requests``; ``errors``: answers
  other than 200 and requests that failed; ``first_error``: the first of
  them (page kind and status or exception), or ``""``;
  ``throughput_rps``: requests per second, all pages together;
- per page kind (``list``, ``search``, ``filtered``, ``lead``):
  ``<kind>_requests``, ``<kind>_errors``, ``<kind>_p50_ms``,
  ``<kind>_p95_ms``, ``<kind>_max_ms``;
- the sync beside the load (the load starts once its first run has ended):
  ``sync_runs`` (runs that ended after the load started), ``sync_failed`` (of those, runs that did not succeed),
  ``sync_written`` (leads they created or updated), ``sync_alive`` (the
  sync process was still syncing when the load ended).
"""

import argparse
import json
import logging
import math
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("list", "search", "filtered", "lead")
# The keys of run()'s answer, in the order the docstring explains them.
FIGURES = (
    "leads",
    "database",
    "server",
    "threads",
    "seed_seconds",
    "load_at_start",
    "seconds",
    "requests",
    "errors",
    "first_error",
    "throughput_rps",
    *(
        f"{kind}_{figure}"
        for kind in KINDS
        for figure in ("requests", "errors", "p50_ms", "p95_ms", "max_ms")
    ),
    "sync_runs",
    "sync_failed",
    "sync_written",
    "sync_alive",
)
WORKERS = 2
WORKER_THREADS = 4
# The sandbox's demo site, which the sync reads: its first size, and what is
# added and changed before each run so that every run writes.
SYNC_AGENTS = 25
SYNC_LEADS = 2000
ADDED_PER_RUN = 300
CHANGED_PER_RUN = 30
# The mirror's records come from the sandbox's generator with this seed.
MIRROR_SEED = 42
MIRROR_AGENTS = 25
PAGE = 500
LEAD_PAGE_SIZE = 50
SAMPLES = 200
# Bounds of every wait.
STEP_TIMEOUT = 3600
START_TIMEOUT = 60
REQUEST_TIMEOUT = 30
SYNC_STOP_TIMEOUT = 120
STOP_TIMEOUT = 10
BROKER = "load"
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


# Processes -------------------------------------------------------------------


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path, lines=30):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop(process):
    """Terminate a child by its pid; kill it when it does not stop."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)


def _portal_env(workdir, database_url):
    """The environment of every portal process: production settings on
    loopback over plain HTTP, the scratch database and folders."""
    from cryptography.fernet import Fernet

    var = workdir / "var"
    var.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "cinc_portal.settings",
            "PYTHONPATH": os.pathsep.join(
                filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))
            ),
            "DEBUG": "False",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "TOKEN_ENCRYPTION_PREVIOUS_KEYS": "",
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "False",
            "SESSION_COOKIE_SECURE": "False",
            "CSRF_COOKIE_SECURE": "False",
            "SECURE_HSTS_SECONDS": "0",
            "USE_X_FORWARDED_PROTO": "False",
            "DATABASE_URL": database_url or f"sqlite:///{workdir / 'portal.sqlite3'}",
            "VAR_DIR": str(var),
            "STATIC_ROOT": str(workdir / "static"),
            "CELERY_BROKER_URL": "memory://",
            "REDIS_URL": "",
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "text",
            "CINC_RATE_LIMIT": "100000",
            "CINC_RATE_WINDOW": "1",
            "CINC_MAX_INLINE_WAIT": "5",
            "LOAD_BROKER_PASSWORD": secrets.token_urlsafe(16),
        }
    )
    for name in (
        "CINC_CLIENT_SECRET_FILE",
        "SECRET_KEY_FILE",
        "TOKEN_ENCRYPTION_KEY_FILE",
    ):
        env.pop(name, None)
    return env


def _sandbox_env(sandbox):
    return {
        "CINC_AUTHORIZE_URL": sandbox.authorize_url,
        "CINC_TOKEN_URL": sandbox.token_url,
        "CINC_API_URL": sandbox.api_url,
        "CINC_CLIENT_ID": sandbox.client_id,
        "CINC_CLIENT_SECRET": sandbox.client_secret,
        "CINC_REDIRECT_URI": sandbox.redirect_uri,
    }


def _python(args, env, log_path, timeout=STEP_TIMEOUT):
    """Run ``python <args>`` in the project; its output goes to ``log_path``."""
    with open(log_path, "ab") as log:
        result = subprocess.run(  # noqa: S603 - our own interpreter and code
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed:\n{_tail(log_path)}")


def _start(args, env, log_path):
    log = open(log_path, "ab")  # noqa: SIM115 - closed by the caller's process end
    try:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and code
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    finally:
        log.close()


def _wait_for(url, process, log_path):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the portal did not start:\n{_tail(log_path)}")


# Load ------------------------------------------------------------------------


def _sign_in(base_url, password):
    session = requests.Session()
    login = f"{base_url}/accounts/login/"
    page = session.get(login, timeout=REQUEST_TIMEOUT)
    token = CSRF_RE.search(page.text)
    if token is None:
        raise RuntimeError("the login page has no CSRF token")
    answer = session.post(
        login,
        data={
            "csrfmiddlewaretoken": token.group(1),
            "username": BROKER,
            "password": password,
        },
        headers={"Referer": login},
        allow_redirects=False,
        timeout=REQUEST_TIMEOUT,
    )
    if answer.status_code != 302 or "sessionid" not in session.cookies:
        raise RuntimeError(f"sign-in failed ({answer.status_code})")
    return session.cookies


def _plan(seeded):
    """A function of a request number: (page kind, path)."""
    last_page = max(1, math.ceil(seeded["leads"] / LEAD_PAGE_SIZE))
    filters = seeded["filters"]

    def pick(number):
        rng = random.Random(number)
        kind = KINDS[number % len(KINDS)]
        if kind == "list":
            return kind, f"/leads/?page={rng.randint(1, last_page)}"
        if kind == "search":
            return kind, "/leads/?" + _query({"q": rng.choice(seeded["words"])})
        if kind == "filtered":
            return kind, "/leads/?" + _query(rng.choice(filters))
        return kind, f"/leads/{rng.choice(seeded['lead_uuids'])}/"

    return pick


def _query(params):
    from urllib.parse import urlencode

    return urlencode(params)


class _Tally:
    """Results of the load threads, and the shared request budget."""

    def __init__(self, budget):
        self.lock = threading.Lock()
        self.budget = budget
        self.issued = 0
        self.results = []
        self.first_error = ""

    def take(self):
        with self.lock:
            if self.issued >= self.budget:
                return None
            self.issued += 1
            return self.issued

    def add(self, kind, ok, seconds, what):
        with self.lock:
            self.results.append((kind, ok, seconds))
            if not ok and not self.first_error:
                self.first_error = f"{kind}: {what}"


def _load_thread(base_url, cookies, plan, deadline, tally):
    session = requests.Session()
    session.cookies.update(cookies)
    try:
        while time.monotonic() < deadline:
            number = tally.take()
            if number is None:
                return
            kind, path = plan(number)
            started = time.perf_counter()
            try:
                answer = session.get(
                    base_url + path, timeout=REQUEST_TIMEOUT, allow_redirects=False
                )
                body = answer.content
                ok = answer.status_code == 200 and b"</html>" in body
                what = f"{answer.status_code} {path}"
            except requests.RequestException as exc:
                ok, what = False, f"{type(exc).__name__} {path}"
            tally.add(kind, ok, time.perf_counter() - started, what)
    finally:
        session.close()


def _percentile(values, share):
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(1, math.ceil(share * len(ordered))) - 1]


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000, 1)


def _figures(tally, elapsed):
    figures = {
        "seconds": round(elapsed, 1),
        "requests": len(tally.results),
        "errors": sum(1 for _, ok, _ in tally.results if not ok),
        "first_error": tally.first_error,
        "throughput_rps": round(len(tally.results) / elapsed, 1) if elapsed else 0.0,
    }
    for kind in KINDS:
        times = [seconds for k, _, seconds in tally.results if k == kind]
        figures[f"{kind}_requests"] = len(times)
        figures[f"{kind}_errors"] = sum(
            1 for k, ok, _ in tally.results if k == kind and not ok
        )
        figures[f"{kind}_p50_ms"] = _ms(_percentile(times, 0.5))
        figures[f"{kind}_p95_ms"] = _ms(_percentile(times, 0.95))
        figures[f"{kind}_max_ms"] = _ms(max(times) if times else None)
    return figures


def _sync_runs(path):
    try:
        return json.loads(Path(path).read_text())["runs"]
    except (OSError, ValueError, KeyError):
        return []


def _sync_figures(runs, alive):
    return {
        "sync_runs": len(runs),
        "sync_failed": sum(1 for run in runs if run["status"] != "succeeded"),
        "sync_written": sum(run["created"] + run["updated"] for run in runs),
        "sync_alive": alive,
    }


def run(
    *,
    leads=100_000,
    seconds=60,
    threads=8,
    database_url=None,
    max_requests=5000,
    workdir=None,
):
    """Run the load test; return its figures (see the module docstring).

    ``database_url`` names an empty PostgreSQL database to use instead of a
    SQLite file; ``workdir``, an empty folder, keeps the scratch files and
    logs (default: a temporary folder, removed at the end).
    """
    own_dir = workdir is None
    workdir = Path(workdir or tempfile.mkdtemp(prefix="cinc-load-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        raise ValueError(f"{workdir} is not empty")
    stop_file = workdir / "stop-sync"
    children = []
    sandbox = None
    try:
        sandbox, env = _prepare(workdir, database_url, min(SYNC_LEADS, leads))
        server, base_url = _serve(workdir, env)
        children.append(server)
        seeded = _seed(workdir, env, leads, sandbox)
        _wait_for(f"{base_url}/accounts/login/", server, workdir / "gunicorn.log")
        cookies = _sign_in(base_url, env["LOAD_BROKER_PASSWORD"])

        sync_out = workdir / "sync.json"
        syncer = _start_sync(workdir, env, seeded, sandbox, stop_file, seconds)
        children.append(syncer)
        runs_before = len(_sync_runs(sync_out))
        load_at_start = round(os.getloadavg()[0], 2)
        tally, elapsed = _hammer(
            base_url, cookies, _plan(seeded), seconds, threads, max_requests
        )
        alive = syncer.poll() is None

        stop_file.touch()
        try:
            syncer.wait(timeout=SYNC_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _stop(syncer)
        figures = {
            "leads": seeded["leads"],
            "database": "postgresql" if database_url else "sqlite",
            "server": f"gunicorn {WORKERS}x{WORKER_THREADS}",
            "threads": threads,
            "seed_seconds": seeded["seed_seconds"],
            "load_at_start": load_at_start,
            **_figures(tally, elapsed),
            **_sync_figures(_sync_runs(sync_out)[runs_before:], alive),
        }
        logger.info("load: %s", figures)
        return figures
    finally:
        stop_file.touch()
        for child in reversed(children):
            _stop(child)
        if sandbox is not None:
            sandbox.stop()
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)


def _prepare(workdir, database_url, sandbox_leads):
    """Migrate and collect static files (two processes at once) while the
    sandbox starts; return the sandbox and the portal's environment."""
    from sandbox.process import start_sandbox

    logger.info("load: migrating and collecting static files in %s", workdir)
    env = _portal_env(workdir, database_url)
    steps = [
        _start(
            ["manage.py", "migrate", "--noinput", "-v", "0"],
            env,
            workdir / "migrate.log",
        ),
        _start(
            ["manage.py", "collectstatic", "--noinput", "-v", "0"],
            env,
            workdir / "collectstatic.log",
        ),
    ]
    sandbox = None
    try:
        sandbox = start_sandbox(
            workdir / "sandbox.sqlite3",
            agents=SYNC_AGENTS,
            leads=sandbox_leads,
            second_site_agents=2,
            second_site_leads=0,
            limit=100_000,
            window=1,
        )
        for step, name in zip(steps, ("migrate", "collectstatic"), strict=True):
            if step.wait(timeout=STEP_TIMEOUT) != 0:
                raise RuntimeError(f"{name} failed:\n{_tail(workdir / f'{name}.log')}")
    except BaseException:
        for step in steps:
            _stop(step)
        if sandbox is not None:
            sandbox.stop()
        raise
    env.update(_sandbox_env(sandbox))
    return sandbox, env


def _serve(workdir, env):
    """gunicorn on a free port (it boots while the mirror is written)."""
    port = _free_port()
    server = _start(
        ["-m", "gunicorn", "-c", "docker/gunicorn.conf.py"]
        + ["--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS)]
        + ["--threads", str(WORKER_THREADS), "cinc_portal.wsgi"],
        env,
        workdir / "gunicorn.log",
    )
    return server, f"http://127.0.0.1:{port}"


def _seed(workdir, env, leads, sandbox):
    logger.info("load: writing %s leads into the mirror", leads)
    out = workdir / "seeded.json"
    _python(
        ["-m", "reliability.load", "--step", "seed", "--leads", str(leads)]
        + ["--sandbox-url", sandbox.base_url, "--out", str(out)],
        env,
        workdir / "seed.log",
    )
    return json.loads(out.read_text())


def _start_sync(workdir, env, seeded, sandbox, stop_file, seconds):
    """The sync process; returns once its first run has ended, so the load
    meets a sync that works."""
    out = workdir / "sync.json"
    syncer = _start(
        ["-m", "reliability.load", "--step", "sync"]
        + ["--connection-id", str(seeded["live_connection_id"])]
        + ["--sandbox-url", sandbox.base_url, "--out", str(out)]
        + ["--stop-file", str(stop_file), "--seconds", str(seconds + 60)],
        env,
        workdir / "sync.log",
    )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and syncer.poll() is None:
        if out.exists():
            return syncer
        time.sleep(0.1)
    _stop(syncer)
    raise RuntimeError(f"the sync did not start:\n{_tail(workdir / 'sync.log')}")


def _hammer(base_url, cookies, plan, seconds, threads, max_requests):
    """``threads`` threads requesting pages until the time or the request
    budget is spent; returns the tally and the seconds it took."""
    logger.info("load: %s threads for up to %ss", threads, seconds)
    tally = _Tally(max_requests)
    started = time.monotonic()
    deadline = started + seconds
    workers = [
        threading.Thread(
            target=_load_thread,
            args=(base_url, cookies, plan, deadline, tally),
            daemon=True,
        )
        for _ in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=seconds + REQUEST_TIMEOUT + 5)
    return tally, time.monotonic() - started


# Steps run in child processes (Django set up there) -----------------------------


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _seed_step(*, leads, sandbox_url, out):
    """The broker, the mirror of ``leads`` leads and the live connection;
    writes what the load needs to ``out``."""
    import django

    django.setup()
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.db import connection as db
    from django.utils import timezone

    from accounts.models import Connection
    from leads.models import Lead
    from leads.sync import upsert_agents, upsert_leads
    from sandbox.control import SandboxControl
    from sandbox.seed import build_sites

    broker = get_user_model().objects.create_user(
        BROKER, password=os.environ["LOAD_BROKER_PASSWORD"]
    )
    scopes = ["api:read", "api:create"]
    mirror = Connection.objects.create(
        broker=broker,
        api_url="http://127.0.0.1:9/v2/site",
        cinc_agent_id="AGENT_LOAD_MIRROR",
        cinc_username="mirror@load.test",
        cinc_agent_name="Mirrored site",
        cinc_roles=["client", "broker"],
        scopes=scopes,
        requested_scopes=scopes,
    )
    demo, _second = build_sites(
        agents=MIRROR_AGENTS,
        leads=leads,
        seed=MIRROR_SEED,
        second_site_agents=2,
        second_site_leads=0,
    )
    started = time.monotonic()
    upsert_agents(connection=mirror, records=[a["record"] for a in demo["agents"]])
    for page in _chunks(demo["leads"], PAGE):
        upsert_leads(connection=mirror, records=page)
    seed_seconds = round(time.monotonic() - started, 1)
    if db.vendor == "postgresql":
        with db.cursor() as cursor:
            cursor.execute("ANALYZE")

    tokens = SandboxControl(sandbox_url).issue_tokens("buum@cu.com")
    live = Connection(
        broker=broker,
        api_url=f"{sandbox_url}/v2/site",
        cinc_agent_id="AGENT_MDID0",
        cinc_username="buum@cu.com",
        cinc_roles=["client", "broker"],
        scopes=scopes,
        requested_scopes=scopes,
        token_expires_at=timezone.now()
        + timedelta(seconds=int(tokens.get("expires_in", 3600))),
    )
    live.access_token = tokens["access_token"]
    live.refresh_token = tokens["refresh_token"]
    live.save()

    rows = Lead.objects.filter(connection=mirror)
    pks = list(rows.values_list("pk", flat=True))
    picked = random.Random(MIRROR_SEED).sample(pks, min(SAMPLES, len(pks)))
    sample = list(rows.filter(pk__in=picked))
    count = len(pks)
    statuses = list(rows.values_list("status", flat=True).distinct()[:4]) or [""]
    cities = [lead.city for lead in sample if lead.city][:4] or [""]
    sources = list(rows.exclude(source="").values_list("source", flat=True)[:2])
    filters = [
        {"status": statuses[0], "sort": "name"},
        {"status": statuses[-1], "buyer": "yes", "sort": "-registered"},
        {"city": cities[0], "sort": "email"},
        {"registered_from": "2025-01-01", "seller": "no", "sort": "-city"},
    ]
    if sources:
        filters.append({"source": sources[0], "sort": "-name"})
    Path(out).write_text(
        json.dumps(
            {
                "leads": count,
                "seed_seconds": seed_seconds,
                "live_connection_id": live.pk,
                "lead_uuids": [str(lead.uuid) for lead in sample],
                "words": [lead.last_name for lead in sample if lead.last_name][:50]
                or ["a"],
                "filters": filters,
            }
        )
    )


def _sync_step(*, connection_id, sandbox_url, out, stop_file, seconds):
    """Sync the live connection again and again until ``stop_file`` exists
    or ``seconds`` have passed; each run's counts go to ``out``."""
    import django

    django.setup()
    from leads import sync
    from sandbox.control import SandboxControl

    control = SandboxControl(sandbox_url)
    ids = [lead["id"] for lead in control.leads("demo")]
    statuses = ("unworked", "inprogress", "closed")
    rng = random.Random(7)
    runs = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not os.path.exists(stop_file):
        ids += control.add_leads("demo", count=ADDED_PER_RUN)
        for lead_id in rng.sample(ids, min(CHANGED_PER_RUN, len(ids))):
            control.update_lead("demo", lead_id, info={"status": rng.choice(statuses)})
        outcome = sync.sync_connection(connection_id=connection_id)
        if outcome.run is None:
            time.sleep(0.5)
            continue
        if outcome.retry_in:
            time.sleep(min(outcome.retry_in, max(0.0, deadline - time.monotonic())))
            continue
        run = outcome.run
        runs.append(
            {
                "status": run.status,
                "created": run.created,
                "updated": run.updated,
                "requests": run.requests,
            }
        )
        Path(out).write_text(json.dumps({"runs": runs}))


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m reliability.load", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--max-requests", type=int, default=5000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--workdir", default=None)
    # The steps the command runs in child processes.
    parser.add_argument("--step", choices=["seed", "sync"], help=argparse.SUPPRESS)
    parser.add_argument("--sandbox-url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--connection-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--stop-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.step == "seed":
        _seed_step(leads=args.leads, sandbox_url=args.sandbox_url, out=args.out)
        return 0
    if args.step == "sync":
        _sync_step(
            connection_id=args.connection_id,
            sandbox_url=args.sandbox_url,
            out=args.out,
            stop_file=args.stop_file,
            seconds=args.seconds,
        )
        return 0
    figures = run(
        leads=args.leads,
        seconds=args.seconds,
        threads=args.threads,
        database_url=args.database_url,
        max_requests=args.max_requests,
        workdir=args.workdir,
    )
    sys.stdout.write(json.dumps(figures, indent=2) + "\n")
    return 0 if figures["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
