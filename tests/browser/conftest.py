"""Fixtures of the real-browser tests.

Debian's Chromium (``/usr/bin/chromium``; Playwright's own browser download
cannot work here) is driven by Playwright against a live portal and a live
sandbox:

- the portal is pytest-django's ``live_server`` (a thread of this process on
  127.0.0.1, on the test database; the tests are ``transaction=True`` so the
  server, the worker and the test see each other's writes);
- the sandbox is a subprocess on a free loopback port whose registered
  redirect URI is the live server's callback;
- syncs run in a real Celery worker (a thread, ``pool="solo"``) fed by the
  suite's broker: ``memory://`` on a laptop, Redis in CI's second pass. A
  test can hold tasks at the worker's door to see a queued sync on the page.

The browser, the sandbox and the worker live as long as this package's tests
(``scope="package"``), and are gone before the rest of the suite runs.

Without Chromium the tests skip and say why; with ``CI_REQUIRE_BROWSER=1``
(set by ``.ci/run``) a missing browser fails them instead. A failing test
leaves a screenshot of its page in ``test-artifacts/``.
"""

import copy
import os
import re
import shutil

import pytest

from .support import (
    ARTIFACTS,
    BROKER_PASSWORD,
    BROKER_USERNAME,
    CHROMIUM,
    CHROMIUM_ARGS,
    SEED,
    TIMEOUT_MS,
    VIEWPORT,
    PageProblems,
    Worker,
    connect_demo_site,
    wait_for_sync,
)

# The live server on the loopback address, not "localhost" (which may be
# ::1): the sandbox's registered redirect URI names the same host.
os.environ.setdefault("DJANGO_LIVE_TEST_SERVER_ADDRESS", "127.0.0.1")

ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"
_failed = pytest.StashKey[bool]()


def _browser_missing():
    """Why the browser cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -r requirements-dev.txt)"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        other = shutil.which("chromium")
        hint = f"; another chromium is at {other}, set CHROMIUM_PATH" if other else ""
        return (
            f"Debian's Chromium is not at {CHROMIUM} (apt-get install chromium{hint})"
        )
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember a failed setup or call (not an expected failure), for the
    screenshot in ``page``."""
    report = yield
    if report.when in ("setup", "call") and report.failed:
        item.stash[_failed] = True
    return report


# The browser ------------------------------------------------------------------


@pytest.fixture(scope="package")
def chromium():
    reason = _browser_missing()
    if reason:
        if os.environ.get("CI_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CI_REQUIRE_BROWSER=1 and no browser: {reason}")
        pytest.skip(f"browser tests need Chromium: {reason}")

    from playwright.sync_api import sync_playwright

    # Playwright's synchronous API leaves an asyncio loop marked as running
    # in this thread, so Django would refuse the tests' own (synchronous)
    # queries. Allowed only while the browser runs, that is for this package.
    previous = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = previous


@pytest.fixture
def page(chromium, live_server, request):
    """A page in a fresh browser context (1280×800), with ``page.problems``
    collecting what its console says. On failure, a screenshot goes to
    test-artifacts/."""
    context = chromium.new_context(viewport=VIEWPORT, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.problems = PageProblems(page, live_server.url)
    yield page
    if request.node.stash.get(_failed, False):
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-150:]
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        except Exception as exc:  # keep the test's own error in front
            print(f"no failure screenshot for {request.node.nodeid}: {exc}")
    context.close()


# The portal, the sandbox and the worker ---------------------------------------


@pytest.fixture(scope="package")
def browser_sandbox(chromium, live_server, tmp_path_factory):
    """The sandbox, with the live portal's callback as its redirect URI."""
    from sandbox.process import start_sandbox

    server = start_sandbox(
        tmp_path_factory.mktemp("browser-sandbox") / "sandbox.sqlite3",
        redirect_uris=[f"{live_server.url}/cinc/callback/"],
        **SEED,
    )
    yield server
    server.stop()


@pytest.fixture(scope="package")
def celery_worker(chromium, django_db_setup):
    """One real worker for the package: stopping one takes seconds. It
    touches the database only while a task runs, inside a test that has it."""
    from celery.contrib.testing.worker import start_worker
    from celery.signals import task_postrun, task_prerun, task_received

    from cinc_portal.celery import app

    worker = Worker()
    signals = (
        (task_received, worker.on_received),
        (task_prerun, worker.on_prerun),
        (task_postrun, worker.on_postrun),
    )
    for signal, handler in signals:
        signal.connect(handler, weak=False)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False):
            yield worker
    finally:
        for signal, handler in signals:
            signal.disconnect(handler)


@pytest.fixture
def portal(live_server, browser_sandbox, celery_worker, settings, transactional_db):
    """The live portal on a freshly seeded sandbox; ``portal.worker`` is the
    worker's door. The worker has finished every task before the test's
    database is emptied."""
    browser_sandbox.control.reset(**SEED)
    settings.CINC_AUTHORIZE_URL = browser_sandbox.authorize_url
    settings.CINC_TOKEN_URL = browser_sandbox.token_url
    settings.CINC_API_URL = browser_sandbox.api_url
    settings.CINC_CLIENT_ID = browser_sandbox.client_id
    settings.CINC_CLIENT_SECRET = browser_sandbox.client_secret
    settings.CINC_REDIRECT_URI = f"{live_server.url}/cinc/callback/"
    settings.CINC_SCOPES = ["api:read", "api:create"]
    settings.CINC_TIMEOUT = 5.0
    settings.CINC_CONNECT_TIMEOUT = 2.0
    # Connect redirects to the consent page: its origin (a free port, known
    # only now) must be allowed by form-action.
    policy = copy.deepcopy(settings.CONTENT_SECURITY_POLICY)
    policy["DIRECTIVES"]["form-action"].append(browser_sandbox.base_url)
    settings.CONTENT_SECURITY_POLICY = policy

    live_server.sandbox = browser_sandbox
    live_server.worker = celery_worker
    yield live_server
    celery_worker.drain()


@pytest.fixture
def broker_user(transactional_db, django_user_model):
    return django_user_model.objects.create_user(
        username=BROKER_USERNAME,
        password=BROKER_PASSWORD,
        first_name="Rebecca",
        last_name="Broker",
    )


@pytest.fixture
def signed_in_page(page, portal, broker_user):
    """The page, signed in as the broker (a session made by Django's test
    client, handed to the browser as its cookie; the sign-in form itself is
    the journey's). ``page.client`` is that test client."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(broker_user, backend="django.contrib.auth.backends.ModelBackend")
    page.context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": portal.url,
            }
        ]
    )
    page.client = client
    return page


@pytest.fixture
def synced_page(signed_in_page, portal, broker_user):
    """A signed-in broker whose CINC site is connected and synced by the
    worker; the page shows the dashboard. ``page.connection`` is the
    connection."""
    page = signed_in_page
    connect_demo_site(page.client, portal.sandbox)
    connection = broker_user.cinc_connections.get()
    run = wait_for_sync(connection)
    assert run.status == "succeeded", run.error

    page.goto(f"{portal.url}/")
    page.connection = connection
    return page
