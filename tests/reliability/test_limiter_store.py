"""The rate limiter's store down (Redis, in production): a CINC call stops
before anything is sent, with the client's typed error, so the pages that
catch ``CincError`` show a message instead of a 500."""

import contextlib
import logging

import pytest

from cinc.client import CincClient
from cinc.errors import CincError
from cinc.ratelimit import MemoryStore, RateLimiter


class StoreDown:
    @contextlib.contextmanager
    def locked(self, key):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:1.")
        yield {}


class StoreDownAfterReserve(MemoryStore):
    """Lets the reservation through, fails when the answer is fed back."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    @contextlib.contextmanager
    def locked(self, key):
        self.calls += 1
        if self.calls > 1:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:1.")
        with super().locked(key) as state:
            yield state


@pytest.fixture
def client_log(caplog):
    """caplog for the client's logger, whatever logging set-up an earlier
    test in this process ran (a Celery worker start can disable loggers)."""
    logger = logging.getLogger("cinc.client")
    logger.disabled = False
    caplog.set_level(logging.DEBUG, logger="cinc.client")
    return caplog


def client_for(sandbox, store):
    token = sandbox.control.issue_tokens("buum@cu.com")["access_token"]
    return CincClient(
        sandbox.api_url,
        token=lambda: token,
        limiter=RateLimiter(store),
        limiter_prefix="site",
    )


def test_a_call_is_not_sent_when_the_limiter_store_is_down(sandbox, client_log):
    client = client_for(sandbox, StoreDown())
    sandbox.control.reset_stats()

    with pytest.raises(CincError, match="rate-limit store did not answer") as error:
        client.lead("LEAD_MDID0")

    assert error.value.endpoint == "lead"
    assert sandbox.control.stats()["requests"]["lead"] == 0
    assert "rate-limit store failed (ConnectionError); not sent" in client_log.text


def test_an_answer_is_kept_when_the_store_fails_after_it(sandbox, client_log):
    client = client_for(sandbox, StoreDownAfterReserve())

    record = client.lead("LEAD_MDID0")

    assert record["id"] == "LEAD_MDID0"
    assert (
        "rate-limit store failed (ConnectionError) after the answer" in client_log.text
    )
