"""PagerDuty stand-in: a local receiver for the Events API v2 (NOT PagerDuty).

The lab cannot reach PagerDuty. Alertmanager's pagerduty_configs POST events
to ``/v2/enqueue``; this server checks them as PagerDuty documents and answers
like it: ``202`` with ``{"status": "success", "dedup_key": ...}``, or ``400``
``{"status": "invalid event", "errors": [...]}`` for a wrong routing key, an
unknown event_action or a trigger without summary, source or a valid severity.
Accepted events are recorded.

    python -m lab.receivers.pagerduty --host 127.0.0.1 --port 9102 --store /tmp/pd.jsonl \
        [--routing-key-file FILE]

Without --routing-key-file any 32-character routing key is accepted.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid

from .recording import RecordingHandler, RecordingServer, Reply, read_secret_file, serve
from .store import JsonLinesStore

EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")


def event_errors(event, routing_key: str | None) -> list[str]:
    """What PagerDuty would reject in an Events API v2 event; empty when it is valid."""
    if not isinstance(event, dict):
        return ["Event object is not a JSON object"]
    errors = []
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32 or (routing_key is not None and key != routing_key):
        errors.append("Invalid routing key")
    action = event.get("event_action")
    if action not in EVENT_ACTIONS:
        errors.append(f"'event_action' must be one of {', '.join(EVENT_ACTIONS)}")
    if action in ("acknowledge", "resolve") and not event.get("dedup_key"):
        errors.append("'dedup_key' is required for acknowledge and resolve")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or not an object")
        else:
            for field in ("summary", "source"):
                if not payload.get(field):
                    errors.append(f"'payload.{field}' is missing or blank")
            if payload.get("severity") not in SEVERITIES:
                errors.append(f"'payload.severity' must be one of {', '.join(SEVERITIES)}")
    return errors


class PagerDutyStandinHandler(RecordingHandler):
    service = "pagerduty-standin"

    def receive(self, path, body):
        if path.rstrip("/") != "/v2/enqueue":
            return Reply(404, {"status": "not found"}), None
        try:
            event = json.loads(body)
        except ValueError:
            return Reply(400, {"status": "invalid event", "message": "Event object is invalid", "errors": ["Invalid JSON"]}), None
        errors = event_errors(event, self.server.config["routing_key"])
        if errors:
            return Reply(400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}), None
        dedup_key = event.get("dedup_key") or uuid.uuid4().hex
        # The routing key is a secret: only whether it matched is recorded.
        recorded = {k: v for k, v in event.items() if k != "routing_key"}
        record = {"event_action": event["event_action"], "dedup_key": dedup_key, "event": recorded}
        return Reply(202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key}), record


def make_server(host: str, port: int, store_path: str, routing_key: str | None = None) -> RecordingServer:
    """Build (bind, not start) a receiver; port 0 picks a free port."""
    return RecordingServer((host, port), PagerDutyStandinHandler, JsonLinesStore(store_path), routing_key=routing_key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.receivers.pagerduty", description="PagerDuty Events API v2 stand-in (not PagerDuty).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9102)
    parser.add_argument("--store", required=True, help="JSON lines file for accepted events")
    parser.add_argument("--routing-key-file", help="file holding the one routing key to accept")
    args = parser.parse_args(argv)
    server = make_server(args.host, args.port, args.store, read_secret_file(args.routing_key_file))
    host, port = server.server_address[:2]
    return serve(server, f"pagerduty-standin: listening on http://{host}:{port}/v2/enqueue, store {args.store}")


if __name__ == "__main__":
    sys.exit(main())
