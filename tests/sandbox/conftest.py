"""Fixtures for the sandbox's own tests.

Each test module starts one sandbox subprocess on a loopback port (its own
SQLite file); ``sb`` re-seeds it with a small data set before each test.
"""

import pytest
import requests

from sandbox.process import start_sandbox

SMALL = {
    "agents": 12,
    "leads": 40,
    "seed": 7,
    "second_site_agents": 4,
    "second_site_leads": 15,
}
BROKER = "buum@cu.com"
AGENT = "agent@demo.test"
SECOND_BROKER = "broker@second.test"
PASSWORD = "sandbox"


@pytest.fixture(scope="module")
def module_sandbox(tmp_path_factory):
    db = tmp_path_factory.mktemp("sandbox") / "sandbox.sqlite3"
    server = start_sandbox(db, **SMALL)
    yield server
    server.stop()


@pytest.fixture
def sb(module_sandbox):
    """The module's sandbox, freshly re-seeded with startup knobs."""
    module_sandbox.control.reset(**SMALL)
    return module_sandbox


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


@pytest.fixture
def authorize_url(sb):
    """Build an authorize URL for the registered client (override any param)."""

    def build(**params):
        query = {
            "client_id": sb.client_id,
            "response_type": "code",
            "redirect_uri": sb.redirect_uri,
            "scope": "api:read api:create",
            "state": "state-123",
        }
        query.update(params)
        query = {k: v for k, v in query.items() if v is not None}
        return requests.Request("GET", sb.authorize_url, params=query).prepare().url

    return build


def query_of(url):
    from urllib.parse import parse_qs, urlsplit

    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.fixture
def exchange(sb, http):
    """POST the token endpoint with the client's credentials in the form."""

    def post(timeout=10, **form):
        data = {"client_id": sb.client_id, "client_secret": sb.client_secret}
        data.update(form)
        data = {k: v for k, v in data.items() if v is not None}
        return http.post(sb.token_url, data=data, timeout=timeout)

    return post


@pytest.fixture
def code_for(sb, authorize_url):
    """Run the consent form; returns the code from the callback."""

    def get(username=BROKER, scopes=None, **params):
        callback = sb.control.approve(
            authorize_url(**params), username, PASSWORD, scopes
        )
        return query_of(callback)["code"]

    return get


@pytest.fixture
def tokens(sb, code_for, exchange):
    """The real OAuth dance; returns the token endpoint's JSON answer."""

    def get(username=BROKER, scopes=None):
        code = code_for(username, scopes)
        answer = exchange(
            grant_type="authorization_code", code=code, redirect_uri=sb.redirect_uri
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    return get


@pytest.fixture
def api(sb, http):
    """Call the API: api("GET", "leads", token, params=...)."""

    def call(method, path, token=None, *, documented_header=False, **kwargs):
        headers = kwargs.pop("headers", {})
        if token and documented_header:
            headers["Bearer"] = token
        elif token:
            headers["Authorization"] = f"Bearer {token}"
        kwargs.setdefault("timeout", 10)
        return http.request(method, f"{sb.api_url}/{path}", headers=headers, **kwargs)

    return call


@pytest.fixture
def broker_token(sb):
    """An access token of the demo broker (issued via the control API)."""
    return sb.control.issue_tokens(BROKER)["access_token"]
