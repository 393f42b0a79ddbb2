"""A dedicated sandbox for the reliability scenarios: 1,000 leads, a rate
window of 50 requests per second (the portal is told so by the scenarios),
started once for the session on 127.0.0.1 and stopped by its pid."""

import pytest

from reliability import faults, harness
from sandbox.process import start_sandbox

LEADS = 1000
# 1,000 leads in pages of 100: as many pages as 5,000 leads in the sync's 500.
PAGES = 100
# A shorter client timeout than the command's, so slow answers cost less.
TIMEOUT = 0.5


@pytest.fixture(scope="session")
def fault_server(tmp_path_factory):
    server = start_sandbox(
        tmp_path_factory.mktemp("reliability") / "sandbox.sqlite3",
        leads=LEADS,
        agents=faults.AGENTS,
        seed=faults.SEED,
        window=harness.WINDOW,
        limit=harness.LIMIT,
        startup_timeout=60,
    )
    yield server
    server.stop()
