"""The load test (``reliability.load``) run tiny: every step of the full run
(sandbox, migrated scratch database, seeded mirror, gunicorn, a sync beside
the load, signed-in threads) on a few hundred leads for a few seconds."""

import pytest

from reliability import load


@pytest.mark.slow
def test_tiny_load_run_answers_every_page_and_reports_every_figure(tmp_path):
    figures = load.run(leads=300, seconds=3, threads=2, workdir=tmp_path / "load")

    assert tuple(figures) == load.FIGURES
    assert figures["errors"] == 0, figures["first_error"]
    assert figures["leads"] == 300
    assert figures["requests"] > 0
    for kind in load.KINDS:
        assert figures[f"{kind}_requests"] > 0, kind
        assert figures[f"{kind}_errors"] == 0, kind
    assert figures["sync_failed"] == 0
    assert figures["sync_alive"] is True
