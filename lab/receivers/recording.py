"""The HTTP side every alert-receiver stand-in shares: record, list, clear.

A stand-in subclasses `RecordingHandler` and implements `receive(path, body)`;
what it returns is recorded and answered. Tests and drills read the records:

- ``GET /api/received`` lists them (``?<field>=<value>`` keeps matching ones);
- ``DELETE /api/received`` clears them;
- ``GET /health``.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .store import JsonLinesStore

MAX_BODY_BYTES = 5 * 1024 * 1024


class Reply:
    """What to answer: status, body (bytes or a JSON-able value) and content type."""

    def __init__(self, status: int, body: Any, content_type: str = "application/json") -> None:
        self.status, self.body, self.content_type = status, body, content_type

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode() + b"\n"


class RecordingServer(ThreadingHTTPServer):
    """A threaded HTTP server with the store its handlers record to."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, store: JsonLinesStore, **config: Any) -> None:
        self.store = store
        self.config = config
        super().__init__(address, handler)


class RecordingHandler(BaseHTTPRequestHandler):
    """GET/DELETE /api/received and /health; POSTs go to `receive`."""

    protocol_version = "HTTP/1.1"
    service = "standin"  # says what it is: never mistaken for the real service
    server: RecordingServer

    def receive(self, path: str, body: bytes) -> tuple[Reply, dict[str, Any] | None]:
        """Handle one POST: the reply, and the record to keep (None keeps nothing)."""
        raise NotImplementedError

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self._send(Reply(413, {"error": "missing or too large Content-Length"}))
            self.close_connection = True
            return
        body = self.rfile.read(length)
        reply, record = self.receive(urlsplit(self.path).path, body)
        if record is not None:
            self.server.store.append({"received_at": datetime.now(timezone.utc).isoformat(), **record})
        self._send(reply)

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        if url.path == "/health":
            self._send(Reply(200, {"status": "ok", "service": self.service}))
        elif url.path.rstrip("/") == "/api/received":
            wanted = {k: v[0] for k, v in parse_qs(url.query).items()}
            records = self.server.store.read_all(lambda r: all(str(r.get(k)) == v for k, v in wanted.items()))
            self._send(Reply(200, {"received": records, "count": len(records)}))
        else:
            self._send(Reply(404, {"error": "not found"}))

    def do_DELETE(self) -> None:  # noqa: N802
        if urlsplit(self.path).path.rstrip("/") == "/api/received":
            self._send(Reply(200, {"deleted": self.server.store.clear()}))
        else:
            self._send(Reply(404, {"error": "not found"}))

    def _send(self, reply: Reply) -> None:
        payload = reply.payload()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        sys.stderr.write(f"{self.service}: {format % args}\n")


def start_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Serve in a daemon thread (for tests); stop with ``server.shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    return thread


def read_secret_file(path: str | None) -> str | None:
    """A secret's value from its file (so it is not on the command line), or None."""
    if not path:
        return None
    with open(path, encoding="utf-8") as f:
        return f.read().strip() or None


def serve(server: ThreadingHTTPServer, banner: str) -> int:
    """Serve until interrupted; the CLI entry points end here."""
    print(banner, file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
