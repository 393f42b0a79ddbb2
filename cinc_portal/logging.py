"""Logging helpers.

``RedactSecretsFilter`` is a last line of defence: code never logs tokens,
but should a token-looking value reach a log record anyway (an upstream error
message quoting a request, say), the filter masks it before any handler
writes the line.
"""

import logging
import re

_PATTERNS = [
    # key=value and "key": "value" forms of OAuth secrets.
    re.compile(
        r"(?i)((?:access_token|refresh_token|client_secret|code_verifier|"
        r"password)[\"']?\s*[:=]\s*[\"']?)([^\s\"'&,}]+)"
    ),
    # Authorization: Bearer <token> and the documentation's `Bearer: <token>`.
    re.compile(r"(?i)(bearer[\s:]+)([A-Za-z0-9\-._~+/]{8,}=*)"),
]


def redact(text):
    for pattern in _PATTERNS:
        text = pattern.sub(r"\1[redacted]", text)
    return text


class RedactSecretsFilter(logging.Filter):
    def filter(self, record):
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True
