"""Constants and steps shared by the browser tests (fixtures are in
conftest.py)."""

import os
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# What this machine needs: no sandboxing as root, no GPU, and no background
# connections (the network is closed; Chromium would keep trying).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}
# Small enough that the first sync takes one page of agents and one of leads.
SEED = {"agents": 25, "leads": 300, "seed": 11}
DEMO_BROKER = "buum@cu.com"
SANDBOX_PASSWORD = "sandbox"
BROKER_USERNAME = "rebecca"
BROKER_PASSWORD = "a long browser password"
SYNC_DEADLINE = 30.0
TIMEOUT_MS = 10_000


class PageProblems:
    """Console errors and warnings, uncaught exceptions, CSP violations and
    failed requests seen by one page while it shows the portal (``origin``),
    with the address they happened on. The sandbox's consent page is not
    the portal's to answer for."""

    def __init__(self, page, origin):
        self.seen = []
        self._page = page
        self._origin = origin.rstrip("/") + "/"
        page.on("console", self._console)
        page.on("pageerror", lambda error: self._add("uncaught exception", error))
        page.on("requestfailed", self._request_failed)
        # Chromium logs enforced CSP violations as console errors; the event
        # also catches report-only ones and names the directive.
        page.add_init_script(
            "document.addEventListener('securitypolicyviolation', function (e) {"
            " console.error('CSP violation: ' + e.violatedDirective + ' blocked '"
            " + (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':'"
            " + e.lineNumber); });"
        )

    def _add(self, kind, text):
        if not self._page.url.startswith(self._origin):
            return
        self.seen.append(f"{kind} on {self._page.url}: {text}")

    def _console(self, message):
        if message.type in ("error", "warning"):
            self._add(f"console {message.type}", message.text)

    def _request_failed(self, request):
        # A request the page itself dropped (a navigation moving on, a
        # download) is not a fault of the page.
        if request.failure != "net::ERR_ABORTED":
            self._add("failed request", f"{request.url} ({request.failure})")

    def assert_clean(self, where):
        seen, self.seen = self.seen, []
        assert not seen, f"browser problems on {where}:\n" + "\n".join(seen)


class Worker:
    """The real Celery worker's door: tasks wait there while it is closed.

    Counts tasks from receipt to end, so a test can wait until the worker
    has nothing left before its database is emptied.
    """

    GATE_TIMEOUT = 30.0

    def __init__(self):
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self._in_flight = 0

    def hold(self):
        self._open.clear()

    def release(self):
        self._open.set()

    def on_received(self, **kwargs):
        with self._lock:
            self._in_flight += 1

    def on_prerun(self, **kwargs):
        self._open.wait(timeout=self.GATE_TIMEOUT)

    def on_postrun(self, **kwargs):
        with self._lock:
            self._in_flight -= 1

    def drain(self, deadline=SYNC_DEADLINE):
        """Open the door and wait until every received task has ended."""
        self.release()
        stop = time.monotonic() + deadline
        while time.monotonic() < stop:
            with self._lock:
                if self._in_flight <= 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"the worker was still busy after {deadline} s")


def sign_in(page, base_url, *, username=BROKER_USERNAME, password=BROKER_PASSWORD):
    """Through the real sign-in form; ends on the dashboard."""
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/")


def approve_on_sandbox(page, *, username=DEMO_BROKER, password=SANDBOX_PASSWORD):
    """On the sandbox's consent page: sign in and approve."""
    page.wait_for_selector("form#consent")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#approve")


def connect_demo_site(client, sandbox):
    """The connect flow through the portal's views and the sandbox's consent
    form, without a browser; returns the callback's response."""
    from django.urls import reverse

    authorize_url = client.post(reverse("accounts:cinc-connect"))["Location"]
    callback_url = sandbox.control.approve(authorize_url, DEMO_BROKER, SANDBOX_PASSWORD)
    parts = urlsplit(callback_url)
    return client.get(f"{parts.path}?{parts.query}")


def wait_for_sync(connection, deadline=SYNC_DEADLINE):
    """The connection's latest run, once it has ended."""
    from leads.models import SyncRun

    stop = time.monotonic() + deadline
    run = None
    while time.monotonic() < stop:
        run = SyncRun.objects.filter(connection=connection).order_by("-pk").first()
        if run is not None and not run.is_active:
            return run
        time.sleep(0.1)
    raise AssertionError(f"the sync did not end within {deadline} s: {run!r}")


def horizontal_overflow(page):
    """How many CSS pixels the page is wider than the viewport."""
    return page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


def tab_order(page, presses):
    """The ids (or tag and text) of the elements Tab focuses, in order,
    starting from the top of the page."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    reached = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        reached.append(
            page.evaluate(
                "(() => { const e = document.activeElement;"
                " return e.id || (e.tagName + ':' + e.textContent.trim()); })()"
            )
        )
    return reached
