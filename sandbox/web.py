"""Small request/response values shared by the sandbox's endpoints."""

import dataclasses
import json
import urllib.parse

JSON_TYPE = "application/json"
HTML_TYPE = "text/html; charset=utf-8"


@dataclasses.dataclass
class Request:
    method: str
    path: str
    query: dict  # name -> list of values
    headers: object  # email.message.Message (case-insensitive get)
    body: bytes
    client_ip: str

    def arg(self, name, default=None):
        values = self.query.get(name)
        return values[0] if values else default

    def form(self):
        """The body as a form: name -> list of values."""
        text = self.body.decode("utf-8", errors="replace")
        return urllib.parse.parse_qs(text, keep_blank_values=True)

    def json(self):
        """The body parsed as JSON; raises ValueError when it is not."""
        return json.loads(self.body.decode("utf-8"))


@dataclasses.dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: dict = dataclasses.field(default_factory=dict)


def to_json(data):
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def json_response(status, data, headers=None):
    return Response(status, to_json(data).encode("utf-8"), JSON_TYPE, headers or {})


def raw_json_response(status, text, headers=None):
    return Response(status, text.encode("utf-8"), JSON_TYPE, headers or {})


def html_response(status, html, headers=None):
    return Response(status, html.encode("utf-8"), HTML_TYPE, headers or {})


def redirect(location):
    return Response(302, b"", "text/plain", {"Location": location})


def add_query(url, params):
    """``url`` with ``params`` appended to its query string."""
    query = urllib.parse.urlencode(
        [(k, v) for k, v in params.items() if v is not None],
        quote_via=urllib.parse.quote,
        safe=":",
    )
    separator = "&" if urllib.parse.urlsplit(url).query else "?"
    return f"{url}{separator}{query}" if query else url
