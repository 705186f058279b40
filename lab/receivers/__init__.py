"""Local stand-ins for third-party services the lab cannot reach.

Each receiver speaks just enough of the real protocol to accept what our
software sends, and records it for tests and drills. ``sentry`` stands in
for Sentry's ingestion API; ``slack``, ``pagerduty`` and ``smtp`` for the
alert receivers (Slack incoming webhooks, PagerDuty Events API v2, an SMTP
smarthost), sharing ``recording`` for their /api/received endpoints;
``grafana_api`` for the Grafana HTTP API the backup job calls. All of them
run on ``serving`` (cheroot's HTTP/1.1 server: keep-alive, chunked and
compressed bodies, as real clients send them).
"""
