"""ApiClient's answers are freed by reference counting (issue 8, bot/channels/http.py `_untied`)."""

from __future__ import annotations

import gc
import http.server
import threading
import weakref
from collections.abc import Iterator

import pytest

from bot.channels.http import ApiClient


class _Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client's connection goes back to its pool

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_answer_and_its_request_body_go_without_the_cycle_collector(url: str) -> None:
    api = ApiClient("test", url)
    enabled = gc.isenabled()
    gc.disable()
    try:
        gone = []
        for _ in range(2):
            answer = api.request("PUT", "/feed", content=b"x" * 1_000_000)
            assert (answer.status_code, answer.content, answer.read()) == (200, b"hello", b"hello")
            assert b"".join(answer.iter_bytes()) == b"hello" and answer.elapsed.total_seconds() >= 0
            watched = weakref.ref(answer.request)
            del answer
            gone.append(watched() is None)
        assert gone == [True, True]
        assert len(api._http._transport._pool.connections) == 1  # type: ignore[attr-defined]
    finally:
        if enabled:
            gc.enable()
        api.close()
