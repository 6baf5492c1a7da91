"""Loopback stand-ins for the signed storage a Shopify bulk export is downloaded from.

The review tests serve the export's JSONL in ways the Shopify stand-in does not (cut short,
chunked oddly, gzip-encoded, made up on the fly); each is a `StorageServer` that answers a GET
its own way (`answer`).
"""

from __future__ import annotations

import json
import socket
import threading

__all__ = ["StorageServer", "request_head", "synthetic_export"]


def request_head(conn: socket.socket) -> list[str]:
    """The request line and header lines a client sent on `conn` (a GET has no body)."""
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = conn.recv(65536)
        if not chunk:
            break
        request += chunk
    return request.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")


def synthetic_export(start: int, stop: int) -> bytes:
    """JSONL lines of variants BIG-<start> up to BIG-<stop - 1>, as an export of them reads."""
    return "".join(
        json.dumps(
            {
                "sku": f"BIG-{i:06d}",
                "inventoryItem": {
                    "id": f"gid://shopify/InventoryItem/{10**7 + i}",
                    "inventoryLevel": {"quantities": [{"name": "available", "quantity": i % 9}]},
                },
            }
        )
        + "\n"
        for i in range(start, stop)
    ).encode()


class StorageServer:
    """A one-connection-at-a-time HTTP server on loopback: each GET is read to the end of its
    headers and handed to `answer` with the connection, which is closed after it."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def answer(self, conn: socket.socket, head: list[str]) -> None:
        raise NotImplementedError

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with conn:
                self.answer(conn, request_head(conn))

    def close(self) -> None:
        self._sock.close()
