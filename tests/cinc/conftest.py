"""Fixtures for the CINC client tests.

``stub`` is a tiny stdlib HTTP server on 127.0.0.1 (ephemeral port) that
answers with scripted replies, for shapes the sandbox does not produce
(envelopes, odd headers, bodies that are not JSON, stalls). Everything else
runs against the real sandbox.
"""

import json
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest


class Reply:
    def __init__(self, status=200, body=None, headers=None, delay=0.0, drop=False):
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.delay = delay
        self.drop = drop

    def encoded(self):
        if self.body is None:
            return b"", None
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json"


class Stub:
    """Scripted replies, handed out in order; records what it was sent."""

    def __init__(self):
        self.replies = deque()
        self.requests = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        host, port = self.server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.02,), daemon=True
        )

    def reply(self, status=200, body=None, headers=None, **kwargs):
        self.replies.append(Reply(status, body, headers, **kwargs))
        return self

    def _next(self, record):
        with self._lock:
            self.requests.append(record)
            if self.replies:
                return self.replies.popleft()
        return Reply(599, {"error": "stub has no reply scripted"})

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                record = {
                    "method": self.command,
                    "path": parts.path,
                    "query": parse_qs(parts.query),
                    "headers": dict(self.headers.items()),
                    "body": self.rfile.read(length) if length else b"",
                }
                reply = stub._next(record)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                data, content_type = reply.encoded()
                self.send_response(reply.status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                for name, value in reply.headers.items():
                    self.send_header(name, str(value))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _safe(self):
                try:
                    self._serve()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first (a timeout test)

            do_GET = do_POST = _safe

        return Handler


@pytest.fixture
def stub():
    server = Stub()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()
    server.thread.join(timeout=5)


@pytest.fixture
def closed_port():
    """A loopback port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
