"""Sentry stand-in: a local receiver for Sentry's ingestion API (NOT Sentry).

The lab has no Sentry. This server accepts what Sentry SDKs send to a DSN
``http://<key>@<host>:<port>/<project_id>``:

- ``POST /api/<project_id>/envelope/``: the envelope format (a JSON header
  line, then item-header line + payload per item; payloads with a ``length``
  header are read by length), body optionally gzip/deflate (br when the
  brotli module is installed) per Content-Encoding, sent with a length or
  chunked, on keep-alive connections (lab/receivers/serving.py);
- ``POST /api/<project_id>/store/``: the legacy single-event JSON endpoint.

It checks the public key (X-Sentry-Auth ``sentry_key=``, the ``sentry_key``
query parameter, or the envelope's ``dsn`` header) and answers 401 when it
is wrong, records each ``event`` and ``transaction`` item as one JSON line in
the store file, and lets tests read and clear them:

- ``GET /api/events[?type=event|transaction]`` lists what was recorded;
- ``DELETE /api/events`` clears it;
- ``GET /health``.

With ``--rate-limit`` every ingestion request is answered 429 with
Retry-After, as Sentry does when a quota is used up.

    python -m lab.receivers.sentry --host 127.0.0.1 --port 9000 --key K --store /tmp/sentry-events.jsonl
    python -m lab.receivers.sentry --key-file /path/to/key --store /tmp/sentry-events.jsonl   # key not in ps
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .recording import RecordingHandler, RecordingServer, Reply, serve
from .serving import BodyError, decode_body, start_in_thread
from .store import JsonLinesStore

__all__ = ["EnvelopeError", "decode_body", "make_server", "parse_envelope", "start_in_thread"]

MAX_BODY_BYTES = 20 * 1024 * 1024
RECORDED_ITEM_TYPES = ("event", "transaction")
_INGEST_PATH = re.compile(r"^/api/(?P<project>\d+)/(?P<endpoint>envelope|store)/?$")


class EnvelopeError(BodyError):
    """The body is not a well-formed Sentry envelope."""


def parse_envelope(body: bytes) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    """Split an envelope into its headers and (item headers, payload) pairs."""

    def read_line(pos: int) -> tuple[bytes, int]:
        end = body.find(b"\n", pos)
        return (body[pos:], len(body)) if end < 0 else (body[pos:end], end + 1)

    def read_json(line: bytes, what: str) -> dict[str, Any]:
        try:
            doc = json.loads(line)
        except ValueError as exc:
            raise EnvelopeError(f"{what} is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise EnvelopeError(f"{what} is not a JSON object")
        return doc

    line, pos = read_line(0)
    headers = read_json(line, "envelope header") if line.strip() else {}
    items = []
    while pos < len(body):
        line, pos = read_line(pos)
        if not line.strip():  # trailing newline(s)
            continue
        item_headers = read_json(line, "item header")
        if "type" not in item_headers:
            raise EnvelopeError("item header has no type")
        length = item_headers.get("length")
        if length is not None:
            if not isinstance(length, int) or length < 0 or pos + length > len(body):
                raise EnvelopeError(f"item length {length!r} does not fit the envelope")
            payload, pos = body[pos : pos + length], pos + length
            if body[pos : pos + 1] == b"\n":
                pos += 1
        else:
            payload, pos = read_line(pos)
        items.append((item_headers, payload))
    return headers, items


def auth_key(headers: Any, query: str, envelope_headers: dict[str, Any] | None = None) -> str | None:
    """The public key the client presented, from X-Sentry-Auth, ?sentry_key= or the envelope's dsn."""
    auth = headers.get("X-Sentry-Auth") or ""
    if auth.lower().startswith("sentry "):
        for part in auth[len("sentry ") :].split(","):
            name, _, value = part.strip().partition("=")
            if name == "sentry_key":
                return value.strip()
    from_query = parse_qs(query).get("sentry_key")
    if from_query:
        return from_query[0]
    dsn = (envelope_headers or {}).get("dsn")
    if isinstance(dsn, str):
        return urlsplit(dsn).username
    return None


class SentryStandinHandler(RecordingHandler):
    """Ingestion POSTs; the records at /api/events (``?type=event|transaction``), /health."""

    service = "sentry-standin"
    max_body_bytes = MAX_BODY_BYTES
    records_path = "/api/events"
    records_key = "events"

    def do_POST(self) -> Reply:  # noqa: N802 (http.server naming)
        url = urlsplit(self.path)
        match = _INGEST_PATH.match(url.path)
        if match is None:
            return Reply(404, {"detail": "not found"})
        config = self.server.config
        envelope_headers: dict[str, Any] = {}
        items: list[tuple[dict[str, Any], bytes]] = []
        try:
            body = self.body()
            if match["endpoint"] == "envelope":
                envelope_headers, items = parse_envelope(body)
            else:
                items = [({"type": "event"}, body)]
        except BodyError as exc:
            # Auth still goes first when the key is in the HTTP headers, as in Sentry.
            if auth_key(self.headers, url.query) not in (None, config["key"]):
                return Reply(401, {"detail": "invalid api key"})
            return Reply(exc.status, {"detail": str(exc)})

        presented = auth_key(self.headers, url.query, envelope_headers)
        if presented is None:
            return Reply(401, {"detail": "missing authorization information"})
        if presented != config["key"]:
            return Reply(401, {"detail": "invalid api key"})
        if config["rate_limit"]:
            return Reply(429, {"detail": "event rejected due to rate limit"}, headers={"Retry-After": str(config["retry_after"])})

        event_id = envelope_headers.get("event_id")
        records = []
        for item_headers, payload in items:
            item_type = item_headers["type"]
            if item_type not in RECORDED_ITEM_TYPES:
                continue
            try:
                event = json.loads(payload)
            except ValueError:
                return Reply(400, {"detail": f"{item_type} item is not JSON"})
            event_id = event.get("event_id") or event_id
            records.append({"project_id": match["project"], "endpoint": match["endpoint"], "type": item_type,
                            "event_id": event_id, "event": event})
        for record in records:
            self.record(record)
        return Reply(200, {"id": event_id})


def make_server(host: str, port: int, key: str, store_path: str, *, rate_limit: bool = False, retry_after: int = 60) -> RecordingServer:
    """Build (bind, not start) a receiver; port 0 picks a free port (see ``server_address``)."""
    return RecordingServer((host, port), SentryStandinHandler, JsonLinesStore(store_path), key=key, rate_limit=rate_limit,
                           retry_after=retry_after)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m lab.receivers.sentry", description="Sentry stand-in receiver (not Sentry) for the lab and tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--key", default=os.environ.get("SENTRY_STANDIN_KEY"), help="public key clients must present (env SENTRY_STANDIN_KEY)")
    # A file keeps the key out of `ps`, and is read when the receiver starts,
    # so the lab can name its secret before generating it.
    parser.add_argument("--key-file", help="file holding the public key (instead of --key)")
    parser.add_argument("--store", default=os.environ.get("SENTRY_STANDIN_STORE"), help="JSON lines file for events (env SENTRY_STANDIN_STORE)")
    parser.add_argument("--rate-limit", action="store_true", help="answer every ingestion request 429")
    parser.add_argument("--retry-after", type=int, default=60, help="Retry-After seconds in --rate-limit mode")
    args = parser.parse_args(argv)
    if args.key_file:
        try:
            with open(args.key_file, encoding="utf-8") as key_file:
                args.key = key_file.read().strip()
        except OSError as exc:
            parser.error(f"cannot read --key-file: {exc}")
    if not args.key or not args.store:
        parser.error("--key and --store are required (or --key-file, SENTRY_STANDIN_KEY / SENTRY_STANDIN_STORE)")

    server = make_server(args.host, args.port, args.key, args.store, rate_limit=args.rate_limit, retry_after=args.retry_after)
    host, port = server.server_address[:2]
    return serve(server, f"sentry-standin: listening on http://{host}:{port} (DSN http://<key>@{host}:{port}/<project_id>), "
                         f"store {args.store}" + (", rate-limit mode" if args.rate_limit else ""))


if __name__ == "__main__":
    sys.exit(main())
