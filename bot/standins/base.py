"""The small HTTP server every stand-in is built on: routing, recording, faults, latency.

A stand-in registers routes (method + regular expression on the path) whose handlers take a
`Request` and return a `Response`. Every request is recorded (`requests`) so tests can assert
on what a client really sent. Knobs, settable from Python or over HTTP on `/_control/...`
(so a stand-in in another process can be steered too):

- `latency`: seconds to wait before answering each request;
- `fail(status, times=1, match="", retry_after=None, body=None)`: answer the next `times`
  requests whose path contains `match` with that status (429, 500, 503...);
- `drop(times=1, match="", after=False)`: close the connection without answering (a reset);
  with `after`, the request is carried out first and only the answer is lost.

Only loopback addresses are allowed: a stand-in is never reachable from outside the machine.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["Fault", "Request", "Response", "StandIn", "json_response"]


@dataclass
class Request:
    """A request as the stand-in received it."""

    method: str
    path: str  # percent-decoded
    raw_path: str  # as sent, with the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # keys lower-cased
    body: bytes
    match: re.Match[str] | None = None

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, list[str]]:
        """The body parsed as application/x-www-form-urlencoded."""
        return parse_qs(self.body.decode(), keep_blank_values=True)

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Response:
    """What a handler answers."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer."""
    return Response(
        status,
        json.dumps(data, ensure_ascii=False).encode(),
        {"Content-Type": "application/json; charset=UTF-8", **(headers or {})},
    )


@dataclass
class Fault:
    """An injected failure for the next `times` matching requests."""

    status: int
    times: int = 1
    match: str = ""
    retry_after: float | None = None
    body: bytes | None = None
    drop: bool = False
    after: bool = False  # with drop: handle the request, then lose the answer


Handler = Callable[[Request], Response]


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up (a killed bot, a timeout) is normal here, not worth a traceback."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class StandIn:
    """A threaded loopback HTTP server with routes, recording and fault knobs."""

    name = "standin"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("stand-ins listen on loopback only")
        self.host = host
        self.port = port
        self.latency = 0.0
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.lock = threading.RLock()
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.route("POST", r"/_control/faults", self._control_faults)
        self.route("POST", r"/_control/latency", self._control_latency)
        self.route("GET", r"/_control/requests", self._control_requests)

    # -- setup -------------------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Answer `method` requests whose whole path matches `pattern` with `handler`."""
        self._routes.append((method, re.compile(pattern + r"\Z"), handler))

    @property
    def url(self) -> str:
        """The root URL, e.g. http://127.0.0.1:41234."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> StandIn:
        """Start serving in a daemon thread."""
        stand_in = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without this each answer waits ~40 ms.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                stand_in._dispatch(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self._server = _QuietServer((self.host, self.port), _Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- knobs -------------------------------------------------------------------------
    def fail(
        self,
        status: int,
        times: int = 1,
        match: str = "",
        retry_after: float | None = None,
        body: bytes | None = None,
    ) -> None:
        """Answer the next `times` requests whose path contains `match` with `status`."""
        with self.lock:
            self.faults.append(Fault(status, times, match, retry_after, body))

    def drop(self, times: int = 1, match: str = "", after: bool = False) -> None:
        """Close the connection of the next `times` matching requests without answering.

        With `after`, each request is carried out before its answer is lost.
        """
        with self.lock:
            self.faults.append(Fault(0, times, match, drop=True, after=after))

    def requests_to(self, pattern: str, method: str | None = None) -> list[Request]:
        """The recorded requests whose path matches `pattern` (a regular expression)."""
        with self.lock:
            return [
                r
                for r in self.requests
                if re.search(pattern, r.path) and (method is None or r.method == method)
            ]

    def fault_response(self, fault: Fault) -> Response:
        """The body of an injected failure; stand-ins override it with their API's error shape."""
        return json_response(
            {"error": {"code": fault.status, "message": "injected fault"}}, fault.status
        )

    # -- serving -----------------------------------------------------------------------
    def _take_fault(self, path: str) -> Fault | None:
        if path.startswith("/_control/"):
            return None
        with self.lock:
            for fault in self.faults:
                if fault.times > 0 and fault.match in path:
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        parts = urlsplit(h.path)
        request = Request(
            method=h.command,
            path=unquote(parts.path),
            raw_path=h.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in h.headers.items()},
            body=body,
        )
        if not parts.path.startswith("/_control/"):
            with self.lock:
                self.requests.append(request)
        if self.latency and not parts.path.startswith("/_control/"):
            time.sleep(self.latency)
        fault = self._take_fault(request.path)
        if fault is not None and fault.drop and fault.after:
            self._route(request)
        if fault is not None and fault.drop:
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None:
            response = self.fault_response(fault)
            response.status = fault.status
            if fault.body is not None:
                response.body = fault.body
            if fault.retry_after is not None:
                response.headers["Retry-After"] = f"{fault.retry_after:g}"
        else:
            response = self._route(request)
        h.send_response(response.status)
        for key, value in response.headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(response.body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(response.body)

    def _route(self, request: Request) -> Response:
        allowed = False
        for method, pattern, handler in self._routes:
            m = pattern.match(request.path)
            if m is None:
                continue
            allowed = True
            if method != request.method:
                continue
            request.match = m
            try:
                with self.lock:
                    return handler(request)
            except Exception as exc:  # a stand-in bug must show, not hang the client
                return json_response({"error": {"code": 500, "message": repr(exc)}}, 500)
        status = 405 if allowed else 404
        return json_response({"error": {"code": status, "message": "no such route"}}, status)

    # -- control over HTTP -------------------------------------------------------------
    def _control_faults(self, request: Request) -> Response:
        spec = request.json() or {}
        if spec.get("drop"):
            self.drop(
                int(spec.get("times", 1)), str(spec.get("match", "")), bool(spec.get("after"))
            )
        else:
            self.fail(
                int(spec["status"]),
                int(spec.get("times", 1)),
                str(spec.get("match", "")),
                spec.get("retry_after"),
            )
        return json_response({"ok": True})

    def _control_latency(self, request: Request) -> Response:
        self.latency = float((request.json() or {}).get("seconds", 0))
        return json_response({"ok": True})

    def _control_requests(self, request: Request) -> Response:
        with self.lock:
            rows = [{"method": r.method, "path": r.path} for r in self.requests]
        return json_response({"requests": rows})
