"""Production logs: one JSON object per line on stdout, with the ids passed in
``extra``, and never a token, whatever path it takes into a record."""

import json
import logging
import textwrap

import pytest
from django.conf import settings

from cinc_portal.logging import JsonFormatter, RedactSecretsFilter, redact

SECRET = "tok-SECRET-0123456789"

# Logs one event of each kind a token could hide in.
SCRIPT = textwrap.dedent(
    f"""
    import logging
    import django

    django.setup()
    log = logging.getLogger("leads.sync")
    log.info(
        "Sync run %s of connection %s finished: %s leads",
        9, 5, 120, extra={{"connection_id": 5, "sync_run_id": 9}},
    )
    log.warning("CINC refused access_token=%s", "{SECRET}")
    log.warning("Sent Authorization: Bearer %s", "{SECRET}")
    log.warning("Sent headers %s", {{"Authorization": "Bearer {SECRET}"}})
    log.info("Callback /cinc/callback/?code={SECRET}&state={SECRET}")
    log.info("Refreshed", extra={{"connection_id": 5, "refresh_token": "{SECRET}"}})
    try:
        raise RuntimeError("token endpoint said refresh_token={SECRET}")
    except RuntimeError:
        log.exception("Refresh of connection %s failed", 5)
    """
)


@pytest.fixture(scope="module")
def log_output(tmp_path_factory, make_production_env, python):
    """stdout and stderr of a production process that logs SCRIPT, by format
    (None: the default with DEBUG=False)."""
    outputs = {}
    for log_format in (None, "text"):
        folder = tmp_path_factory.mktemp("logs")
        overrides = {"LOG_FORMAT": log_format} if log_format else {}
        result = python(["-c", SCRIPT], make_production_env(folder, **overrides))
        assert result.returncode == 0, result.stderr
        outputs[log_format] = (result.stdout, result.stderr)
    return outputs


def test_production_logs_one_json_object_per_line_on_stdout(log_output):
    stdout, stderr = log_output[None]

    events = [json.loads(line) for line in stdout.splitlines()]

    assert stderr == ""
    assert len(events) == 7
    assert {event["logger"] for event in events} == {"leads.sync"}
    assert all({"time", "level", "message"} <= event.keys() for event in events)


def test_json_lines_carry_the_ids_passed_in_extra(log_output):
    first = json.loads(log_output[None][0].splitlines()[0])

    assert first["message"] == "Sync run 9 of connection 5 finished: 120 leads"
    assert first["level"] == "INFO"
    assert (first["connection_id"], first["sync_run_id"]) == (5, 9)


@pytest.mark.parametrize("log_format", [None, "text"])
def test_no_token_reaches_the_log_in_either_format(log_output, log_format):
    stdout, stderr = log_output[log_format]

    assert SECRET not in stdout + stderr
    assert stdout.count("[redacted]") >= 6  # events kept, not dropped


def test_json_traceback_is_kept_and_redacted(log_output):
    last = json.loads(log_output[None][0].splitlines()[-1])

    assert last["level"] == "ERROR"
    assert (
        "RuntimeError: token endpoint said refresh_token=[redacted]"
        in (last["exc_info"])
    )


def test_text_format_is_plain_lines(log_output):
    lines = log_output["text"][0].splitlines()

    assert lines[0].endswith(
        "INFO leads.sync Sync run 9 of connection 5 finished: 120 leads"
    )
    assert not lines[0].startswith("{")


def test_every_configured_handler_redacts():
    handlers = settings.LOGGING["handlers"]

    assert handlers
    for name, handler in handlers.items():
        assert "redact" in handler.get("filters", []), name


@pytest.mark.parametrize(
    "text",
    [
        "access_token=abc.DEF-123",
        '{"access_token": "abc.DEF-123"}',
        "refresh_token=abc.DEF-123&grant_type=refresh_token",
        "Authorization: Bearer abc.DEF-123",
        "Bearer: abc.DEF-123",
        "Authorization: Basic YWJjLkRFRi0xMjM6cw==",
        "client_secret=abc.DEF-123",
        "GET /cinc/callback/?code=abc.DEF-123&state=xyz",
    ],
)
def test_redact_masks_token_shapes(text):
    assert "abc.DEF-123" not in redact(text)
    assert "YWJjLkRFRi0xMjM6cw" not in redact(text)
    assert "[redacted]" in redact(text)


def test_redact_leaves_ordinary_text_alone():
    text = "Synced 120 leads for connection 5 (basic plan, zip code 02134)"

    assert redact(text) == text


def test_json_formatter_redacts_nested_extra_fields():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "call", None, None)
    record.request = {"headers": {"Authorization": "Bearer abc.DEF-123"}}
    record.token = "abc.DEF-123"
    RedactSecretsFilter().filter(record)

    event = json.loads(JsonFormatter().format(record))

    assert event["request"] == {"headers": {"Authorization": "[redacted]"}}
    assert event["token"] == "[redacted]"
