import pytest
import requests

from sandbox.control import SandboxError
from sandbox.process import start_sandbox


def test_start_sandbox_applies_knobs_and_stop_ends_the_process(tmp_path):
    db = tmp_path / "sb.sqlite3"

    with start_sandbox(db, agents=3, leads=5, limit=7, envelope=True) as sandbox:
        assert sandbox.control.config()["limit"] == 7
        assert sandbox.control.config()["envelope"] is True
        assert len(sandbox.control.leads("demo")) == 5
        assert sandbox.api_url == f"http://127.0.0.1:{sandbox.port}/v2/site"
        assert sandbox.running()

    assert not sandbox.running()
    with pytest.raises(requests.ConnectionError):
        requests.get(sandbox.base_url + "/_sandbox/health", timeout=2)


def test_registered_client_can_be_chosen(tmp_path):
    with start_sandbox(
        tmp_path / "sb.sqlite3",
        agents=3,
        leads=5,
        client_id="other-app",
        client_secret="other-secret",
        redirect_uris=["http://127.0.0.1:9999/cb"],
    ) as sandbox:
        url = (
            requests.Request(
                "GET",
                sandbox.authorize_url,
                params={
                    "client_id": "other-app",
                    "response_type": "code",
                    "redirect_uri": "http://127.0.0.1:9999/cb",
                    "scope": "api:read",
                },
            )
            .prepare()
            .url
        )

        callback = sandbox.control.approve(url, "buum@cu.com", "sandbox")

    assert callback.startswith("http://127.0.0.1:9999/cb?code=")
    assert sandbox.client_secret == "other-secret"
    assert "other-secret" not in repr(sandbox)


def test_start_sandbox_reports_a_server_that_cannot_start(tmp_path):
    with pytest.raises(SandboxError):
        start_sandbox(tmp_path / "sb.sqlite3", startup_timeout=10, limit=0)


def test_unknown_knob_is_refused_before_starting(tmp_path):
    with pytest.raises(TypeError):
        start_sandbox(tmp_path / "sb.sqlite3", no_such_knob=1)
