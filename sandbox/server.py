"""HTTP plumbing: a ThreadingHTTPServer that hands requests to ``Sandbox``.

HTTP/1.1 with keep-alive; every answer has a Content-Length. One log line per
request (method, path without query, status, duration); never a header value
or a body, so no token reaches the log.
"""

import http.server
import logging
import socket
import time
import urllib.parse

from sandbox.web import Request, json_response

logger = logging.getLogger(__name__)

MAX_BODY = 2 * 1024 * 1024


class SandboxServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, app):
        self.app = app
        super().__init__(address, Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "CINCSandbox/1.0"

    def version_string(self):
        return self.server_version

    timeout = 120  # idle keep-alive connections are closed after this

    def setup(self):
        super().setup()
        # Headers and body go out in two writes; without TCP_NODELAY, Nagle
        # and delayed ACKs add ~40 ms to every keep-alive answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_request(self, code="-", size="-"):
        pass  # one line per request is written by _dispatch

    def log_message(self, format, *args):  # noqa: A002 - base class signature
        logger.info("%s %s", self.address_string(), format % args)

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return None, 411
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None, 400
        if length < 0:
            return None, 400
        if length > MAX_BODY:
            return None, 413
        return self.rfile.read(length), None

    def _dispatch(self):
        started = time.perf_counter()
        # Not urlsplit: a path starting with "//" would be read as a host.
        path, _, query = self.path.partition("#")[0].partition("?")
        body, problem = self._read_body()
        if problem is not None:
            self.close_connection = True
            response = json_response(problem, {"error": "invalid_request"})
        else:
            request = Request(
                method=self.command,
                path=path,
                query=urllib.parse.parse_qs(query, keep_blank_values=True),
                headers=self.headers,
                body=body,
                client_ip=self.client_address[0],
            )
            try:
                response = self.server.app.handle(request)
            except Exception:
                logger.exception("unhandled error: %s %s", self.command, path)
                response = json_response(500, {"error": "internal_error"})
        self._send(response)
        logger.info(
            "%s %s %s %.1fms",
            self.command,
            path,
            response.status,
            (time.perf_counter() - started) * 1000,
        )

    def _send(self, response):
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            # The client gave up (e.g. its timeout was shorter than a slow
            # answer); nothing left to tell it.
            self.close_connection = True


def make_server(app, host="127.0.0.1", port=8001):
    return SandboxServer((host, port), app)
