"""What every alert-receiver stand-in shares: record, list, clear.

A stand-in subclasses `RecordingHandler` and implements `receive(path, body)`
(the body with its Content-Encoding undone); what it returns is recorded and
answered. Tests and drills read the records:

- ``GET /api/received`` lists them (``?<field>=<value>`` keeps matching ones);
- ``DELETE /api/received`` clears them;
- ``GET /health``.

The HTTP side (keep-alive, chunked and compressed bodies) is lab/receivers/serving.py.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .serving import BodyError, Reply, RequestHandler, StandinServer, read_secret_file, serve, start_in_thread
from .store import JsonLinesStore

__all__ = ["RecordingHandler", "RecordingServer", "Reply", "read_secret_file", "serve", "start_in_thread"]


class RecordingServer(StandinServer):
    """A stand-in's server with the store its handlers record to (``self.server.store``, ``.config``)."""

    def __init__(self, address: tuple[str, int], handler: type[RequestHandler], store: JsonLinesStore, **config: Any) -> None:
        self.store = store
        super().__init__(address, handler, **config)


class RecordingHandler(RequestHandler):
    """GET/DELETE /api/received and /health; POSTs go to `receive`."""

    records_path = "/api/received"  # where the records are listed and cleared
    records_key = "received"  # the listing's key for them
    server: RecordingServer

    def receive(self, path: str, body: bytes) -> tuple[Reply, dict[str, Any] | None]:
        """Handle one POST: the reply, and the record to keep (None keeps nothing)."""
        raise NotImplementedError

    def do_POST(self) -> Reply:  # noqa: N802 (http.server naming)
        try:
            body = self.body()
        except BodyError as exc:
            return self._send(self.refuse_body(exc))
        reply, record = self.receive(urlsplit(self.path).path, body)
        if record is not None:
            self.record(record)
        return self._send(reply)

    def refuse_body(self, error: BodyError) -> Reply:
        """The answer to a body that cannot be decoded (415 unknown encoding, 413 too large, 400 broken)."""
        return Reply(error.status, {"error": str(error)})

    def record(self, record: dict[str, Any]) -> None:
        self.server.store.append({"received_at": datetime.now(timezone.utc).isoformat(), **record})

    def do_GET(self) -> Reply:  # noqa: N802
        url = urlsplit(self.path)
        if url.path == "/health":
            return self._send(Reply(200, {"status": "ok", "service": self.service}))
        if url.path.rstrip("/") == self.records_path:
            wanted = {k: v[0] for k, v in parse_qs(url.query).items()}
            records = self.server.store.read_all(lambda r: all(str(r.get(k)) == v for k, v in wanted.items()))
            return self._send(Reply(200, {self.records_key: records, "count": len(records)}))
        return self._send(Reply(404, {"error": "not found"}))

    def do_DELETE(self) -> Reply:  # noqa: N802
        if urlsplit(self.path).path.rstrip("/") == self.records_path:
            return self._send(Reply(200, {"deleted": self.server.store.clear()}))
        return self._send(Reply(404, {"error": "not found"}))
