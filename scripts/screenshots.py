"""Render screenshots of the portal's main pages into docs/screenshots/.

Run with `make screenshots`. Everything runs on 127.0.0.1 and is stopped at
the end: the bundled CINC sandbox (a subprocess), the portal (a server thread
of this process, on a temporary SQLite database) and a Celery worker (a
thread, in-memory broker). The portal gets its data the way a broker's does:
sign-in, the sandbox's consent page, and a real first sync. Debian's
Chromium (/usr/bin/chromium, or CHROMIUM_PATH) takes the pictures.

The sandbox's seed dates count back from a fixed day, so some leads are
moved into the last weeks first: the dashboard's weekly chart has something
to show whenever the script runs.
"""

import datetime as dt
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}
SEED = {"agents": 25, "leads": 1200, "seed": 42}
RECENT_WEEKS = 12
RECENT_LEADS = 150
USERNAME = "rebecca"
PASSWORD = "screenshots only"
SYNC_DEADLINE = 120.0
TIMEOUT_MS = 15_000


def step(message):
    print(f"==> {message}", flush=True)


def configure(tmp):
    """Environment for a throwaway portal, set before Django reads it."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "cinc_portal.settings"
    os.environ["DATABASE_URL"] = f"sqlite:///{tmp / 'portal.sqlite3'}"
    os.environ["CELERY_BROKER_URL"] = "memory://"
    os.environ["DEBUG"] = "True"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))


def start_portal():
    """The portal in a server thread on a free loopback port."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.test.testcases import LiveServerThread

    server = LiveServerThread("127.0.0.1", StaticFilesHandler, port=0)
    server.daemon = True
    server.start()
    server.is_ready.wait()
    if server.error:
        raise server.error
    return server, f"http://127.0.0.1:{server.port}"


def point_at_sandbox(settings, sandbox, portal_url):
    settings.CINC_AUTHORIZE_URL = sandbox.authorize_url
    settings.CINC_TOKEN_URL = sandbox.token_url
    settings.CINC_API_URL = sandbox.api_url
    settings.CINC_CLIENT_ID = sandbox.client_id
    settings.CINC_CLIENT_SECRET = sandbox.client_secret
    settings.CINC_REDIRECT_URI = f"{portal_url}/cinc/callback/"
    # The Connect form redirects to the consent page on the sandbox's port.
    settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"].append(
        sandbox.base_url
    )


def freshen_dates(control):
    """Move some leads' registration into the last RECENT_WEEKS weeks, more
    of them in recent weeks, as a growing site would have."""
    rng = random.Random(SEED["seed"])
    now = dt.datetime.now(dt.UTC)
    leads = control.leads("demo")
    for lead in rng.sample(leads, RECENT_LEADS):
        days_ago = RECENT_WEEKS * 7 * (1 - rng.random() ** 0.6)
        moment = now - dt.timedelta(days=days_ago, seconds=rng.randrange(86400))
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        control.update_lead("demo", lead["id"], registered_date=stamp)


def wait_for_first_sync(broker):
    from leads.models import SyncRun

    deadline = time.monotonic() + SYNC_DEADLINE
    while time.monotonic() < deadline:
        run = SyncRun.objects.filter(connection__broker=broker).order_by("-pk").first()
        if run is not None and not run.is_active:
            if run.status != SyncRun.Status.SUCCEEDED:
                raise SystemExit(f"the first sync ended {run.status}: {run.error}")
            return run
        time.sleep(0.2)
    raise SystemExit(f"the first sync did not finish within {SYNC_DEADLINE} s")


def shoot(page, name, *, full_page=False):
    path = OUT / f"{name}.png"
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    step(f"{path.relative_to(ROOT)} ({path.stat().st_size // 1024} KiB)")


def take_screenshots(browser, portal_url, sandbox, broker):
    from leads.models import Agent, Lead

    context = browser.new_context(viewport=DESKTOP, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()

    page.goto(f"{portal_url}/accounts/login/")
    page.get_by_label("Username").fill(USERNAME)
    shoot(page, "login")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{portal_url}/")

    step("Connecting through the sandbox's consent page")
    page.click("#connect-button")
    page.wait_for_selector("form#consent")
    page.fill("#username", "buum@cu.com")
    page.fill("#password", "sandbox")
    page.click("#approve")
    page.wait_for_url(f"{portal_url}/")
    run = wait_for_first_sync(broker)
    step(f"First sync: {run.records_seen} records")

    page.goto(f"{portal_url}/")
    page.wait_for_selector("#weekly-leads.chart-ready")
    shoot(page, "dashboard", full_page=True)

    page.goto(f"{portal_url}/leads/?status=inprogress&buyer=yes&sort=-registered")
    shoot(page, "leads-filtered")

    lead = (
        Lead.objects.filter(
            connection__broker=broker,
            is_buyer=True,
            primary_agent__isnull=False,
            street__gt="",
        )
        .order_by("-registered_at")
        .first()
    )
    page.goto(f"{portal_url}/leads/{lead.uuid}/")
    shoot(page, "lead")

    page.goto(f"{portal_url}/agents/")
    shoot(page, "agents")

    agent = Agent.objects.get(connection__broker=broker, cinc_id="AGENT_MDID0")
    page.goto(f"{portal_url}/agents/{agent.uuid}/")
    shoot(page, "agent")

    page.goto(f"{portal_url}/leads/new/")
    page.get_by_label("First name").fill("Jordan")
    page.get_by_label("Last name").fill("Avery")
    page.get_by_label("Email").fill("jordan.avery@example.com")
    page.get_by_label("Cell phone").fill("(610) 555-0142")
    page.get_by_label("This lead wants to buy").check()
    page.get_by_label("Median price").fill("$425,000")
    shoot(page, "new-lead", full_page=True)

    existing = (
        Lead.objects.filter(connection__broker=broker, first_name__gt="")
        .exclude(email="")
        .order_by("registered_at")
        .first()
    )
    page.goto(f"{portal_url}/leads/new/")
    page.get_by_label("First name").fill(existing.first_name)
    page.get_by_label("Last name").fill(existing.last_name + "-Smith")
    page.get_by_label("Email").fill(existing.email)
    page.get_by_label("Cell phone").fill("215 555 0187")
    page.click("#create-lead-submit")
    page.wait_for_selector("#lead-exists")
    shoot(page, "duplicate-email")
    cookies = context.cookies()
    context.close()

    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    phone.set_default_timeout(TIMEOUT_MS)
    phone.add_cookies(cookies)
    phone_page = phone.new_page()
    phone_page.goto(f"{portal_url}/")
    phone_page.wait_for_selector("#weekly-leads.chart-ready")
    shoot(phone_page, "dashboard-phone")
    phone.close()


def main():
    if not os.access(CHROMIUM, os.X_OK):
        raise SystemExit(
            f"No Chromium at {CHROMIUM}: apt-get install chromium (or set "
            "CHROMIUM_PATH)."
        )
    tmp = Path(tempfile.mkdtemp(prefix="cinc-screenshots-"))
    configure(tmp)

    import django

    django.setup()

    from celery.contrib.testing.worker import start_worker
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from playwright.sync_api import sync_playwright

    from cinc_portal.celery import app
    from sandbox.process import start_sandbox

    server = sandbox = None
    try:
        step(f"Portal database in {tmp}")
        call_command("migrate", verbosity=0)
        broker = get_user_model().objects.create_user(
            username=USERNAME,
            password=PASSWORD,
            first_name="Rebecca",
            last_name="Lejeune",
        )
        server, portal_url = start_portal()
        step(f"Portal on {portal_url}")
        sandbox = start_sandbox(
            tmp / "sandbox.sqlite3",
            redirect_uris=[f"{portal_url}/cinc/callback/"],
            **SEED,
        )
        step(f"Sandbox on {sandbox.base_url}")
        freshen_dates(sandbox.control)
        point_at_sandbox(settings, sandbox, portal_url)
        OUT.mkdir(parents=True, exist_ok=True)

        # Playwright's synchronous API marks an asyncio loop as running in
        # this thread; the script's own queries are plain synchronous code.
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        with start_worker(app, pool="solo", perform_ping_check=False):
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS
                )
                try:
                    take_screenshots(browser, portal_url, sandbox, broker)
                finally:
                    browser.close()
    finally:
        if sandbox is not None:
            sandbox.stop()
        if server is not None:
            server.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
    step(f"Screenshots in {OUT.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
