"""Slack stand-in: a local receiver for Slack incoming webhooks (NOT Slack).

The lab cannot reach Slack. Alertmanager's slack_configs POST a JSON message to
the webhook URL, ``/services/<team>/<bot>/<token>``; this server answers like
Slack: ``200 ok`` for a known webhook with a message, ``404 no_service`` for an
unknown webhook, ``400 invalid_payload`` / ``no_text`` for a bad body. Each
accepted message is recorded with its webhook path and channel.

    python -m lab.receivers.slack --host 127.0.0.1 --port 9101 --store /tmp/slack.jsonl \
        [--webhook-url-file FILE ...]

Without --webhook-url-file every /services/... path is accepted.

Like a webhook revoked in Slack's app settings, ``POST /api/revoke`` with
``{"webhook": "<bot id>"}`` makes that webhook answer ``404 no_service`` until
``POST /api/restore`` with the same body (the lab's drills of a dead webhook).
"""

from __future__ import annotations

import argparse
import json
import sys
from urllib.parse import urlsplit

from .recording import RecordingHandler, RecordingServer, Reply, read_secret_file, serve
from .store import JsonLinesStore


class SlackStandinHandler(RecordingHandler):
    service = "slack-standin"

    def receive(self, path, body):
        if path in ("/api/revoke", "/api/restore"):
            return self._revocation(path, body)
        known = self.server.config["webhook_paths"]
        if not path.startswith("/services/") or (known and path not in known):
            return Reply(404, b"no_service", "text/plain"), None
        if path.split("/")[3:4] and path.split("/")[3] in self.server.config["revoked"]:
            return Reply(404, b"no_service", "text/plain"), {"webhook": path.split("/")[3], "refused": "revoked"}
        try:
            message = json.loads(body)
        except ValueError:
            return Reply(400, b"invalid_payload", "text/plain"), None
        if not isinstance(message, dict):
            return Reply(400, b"invalid_payload", "text/plain"), None
        if not (message.get("text") or message.get("attachments") or message.get("blocks")):
            return Reply(400, b"no_text", "text/plain"), None
        # The bot id names the webhook (one per channel) without its secret token.
        webhook = path.split("/")[3] if path.count("/") >= 4 else path
        return Reply(200, b"ok", "text/plain"), {"webhook": webhook, "channel": message.get("channel"), "message": message}

    def log_path(self):
        # The webhook's last segment is its secret token.
        path = super().log_path()
        return path.rsplit("/", 1)[0] + "/<token>" if path.startswith("/services/") else path


    def _revocation(self, path, body):
        try:
            webhook = json.loads(body)["webhook"]
        except (ValueError, KeyError, TypeError):
            return Reply(400, {"error": 'send {"webhook": "<bot id>"}'}), None
        revoked = self.server.config["revoked"]
        (revoked.add if path == "/api/revoke" else revoked.discard)(webhook)
        return Reply(200, {"revoked": sorted(revoked)}), None


def make_server(host: str, port: int, store_path: str, webhook_urls: list[str] = ()) -> RecordingServer:
    """Build (bind, not start) a receiver; port 0 picks a free port."""
    paths = {urlsplit(url).path for url in webhook_urls}
    return RecordingServer((host, port), SlackStandinHandler, JsonLinesStore(store_path), webhook_paths=paths, revoked=set())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.receivers.slack", description="Slack incoming-webhook stand-in (not Slack).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9101)
    parser.add_argument("--store", required=True, help="JSON lines file for received messages")
    parser.add_argument("--webhook-url-file", action="append", default=[], help="file holding a webhook URL to accept (repeatable)")
    args = parser.parse_args(argv)
    urls = [read_secret_file(path) for path in args.webhook_url_file]
    server = make_server(args.host, args.port, args.store, [u for u in urls if u])
    host, port = server.server_address[:2]
    return serve(server, f"slack-standin: listening on http://{host}:{port}/services/..., {len(urls)} known webhooks, store {args.store}")


if __name__ == "__main__":
    sys.exit(main())
