"""Logging helpers: redaction of secrets, and the two line formats.

Code never logs tokens. Should a token-looking value reach a log record anyway
(an upstream error message quoting a request, an exception's text, a field
passed in ``extra``), it is masked before a line is written:

- ``RedactSecretsFilter`` sits on every handler and cleans the message and
  the string fields of ``extra``;
- ``TextFormatter`` and ``JsonFormatter`` clean what they produce, traceback
  included.

``settings.LOG_FORMAT`` chooses the format: ``json`` (one JSON object per
line, the production default) or ``text`` (development).
"""

import datetime
import logging
import re
import uuid

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

REDACTED = "[redacted]"

_PATTERNS = [
    # key=value and "key": "value" forms of OAuth secrets.
    re.compile(
        r"(?i)((?:access_token|refresh_token|id_token|client_secret|"
        r"code_verifier|password)[\"']?\s*[:=]\s*[\"']?)([^\s\"'&,}]+)"
    ),
    # Authorization: Bearer <token> and the documentation's `Bearer: <token>`.
    re.compile(r"(?i)(bearer[\s:]+)([A-Za-z0-9\-._~+/]{8,}=*)"),
    # Authorization: Basic <client id and secret>.
    re.compile(
        r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?basic\s+)([A-Za-z0-9+/]{4,}=*)"
    ),
    # The OAuth callback's query string: ?code=...&state=...
    re.compile(r"([?&](?:code|state)=)([^&\s\"'#]+)"),
]

# Fields of `extra` whose whole value is a secret, whatever it looks like.
_SECRET_FIELDS = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "code_verifier",
        "password",
        "authorization",
        "token",
    }
)

# Attributes every LogRecord has; anything else came from `extra`.
_RECORD_ATTRS = frozenset(
    [*logging.LogRecord("", 0, "", 0, "", None, None).__dict__, "message", "asctime"]
)

_PLAIN_TYPES = (int, float, bool, type(None), datetime.date, datetime.time, uuid.UUID)


def redact(text):
    """``text`` with token-looking values replaced by ``[redacted]``."""
    for pattern in _PATTERNS:
        text = pattern.sub(r"\1" + REDACTED, text)
    return text


def redact_value(key, value, depth=0):
    """A field's value made safe to log: secrets masked, nested values too."""
    if isinstance(key, str) and key.lower() in _SECRET_FIELDS and value:
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, _PLAIN_TYPES):
        return value
    if depth < 4 and isinstance(value, dict):
        return {k: redact_value(k, v, depth + 1) for k, v in value.items()}
    if depth < 4 and isinstance(value, list | tuple):
        return [redact_value(None, v, depth + 1) for v in value]
    return redact(str(value))


class RedactSecretsFilter(logging.Filter):
    """Masks secrets in a record's message and in its `extra` fields."""

    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: the formatter reports it
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None

        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_ATTRS and not isinstance(value, _PLAIN_TYPES):
                record.__dict__[key] = redact_value(key, value)
        return True


class TextFormatter(logging.Formatter):
    """A plain line (with any traceback), redacted as a whole."""

    def format(self, record):
        return redact(super().format(record))


class JsonFormatter(_BaseJsonFormatter):
    """One JSON object per line: time, level, logger, message, then every
    field given in ``extra`` (``connection_id``, ``sync_run_id``, ...) and any
    traceback as ``exc_info``; every value redacted."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("fmt", ["levelname", "name", "message"])
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", "time")
        super().__init__(*args, **kwargs)

    def process_log_record(self, log_data):
        ordered = {"time": log_data.pop("time", None), **log_data}
        return {key: redact_value(key, value) for key, value in ordered.items()}
