"""Loki's authenticating front (roles/_front.py): who may call which of Loki's paths (rendered; Loki is never
run here, nginx checks the config in the unit tests and on the host).

Why: Loki has no authorization of its own ("authorization is not part of the Loki API", its HTTP API
reference for 3.7.8, which points at a proxy such as nginx), and dskit's `http_tls_config` checks a
client certificate's chain, not its name: any certificate of the CA that the firewall lets through
could delete logs. Behind the front the erasure command alone calls the delete API (issue 22).

The front holds `loki.http` (the host's IP) and passes to Loki's own HTTP server on `loki.local`
(127.0.0.1). Refusals and every admitted delete go to the journal (`journalctl -t loki_front`).
"""

from __future__ import annotations

from roles._front import Front, FrontRoute
from roles._pki import OPERATOR
from roles._tls import ERASURE

NAME = "loki-front"
SELF = "loki"  # the store's identity: the front's certificate, its readiness check
LISTENER = "loki.http"
UPSTREAM = "loki.local"
# The log deletion endpoints of Loki 3.7.8's HTTP API reference (POST, GET and DELETE on the first; the
# second is the older alias): under Grafana's and the operator's /loki/api/v1/, yet the erasure command's alone.
DELETE = "/loki/api/v1/delete"
ADMIN = "/loki/api/admin/"

# What each identity may call: a prefix ends in "/", anything else is one exact path. A client of a new
# flow to loki.http without its row stops the render.
ACCESS: dict[str, tuple[str, ...]] = {
    "gateway": ("/otlp/v1/logs",),  # the collector's otlphttp exporter (roles/otel_collector)
    "grafana": ("/loki/api/v1/",),  # the datasource: queries, labels, series, tail, index stats and volume
    "prometheus": ("/metrics",),  # the scrape
    OPERATOR: ("/loki/api/v1/", "/metrics", "/ready", "/config", "/services"),
    # The erasure command (roles/retention/erase.py): counts, deletes, and copies its audit entry in.
    ERASURE: (DELETE, "/loki/api/v1/query", "/loki/api/v1/query_range", "/loki/api/v1/push"),
    SELF: ("/ready",),  # the front's readiness check on the host
}
FRONT = Front(
    name=NAME,
    component=SELF,
    # websocket: Grafana's live tailing (/loki/api/v1/tail) is a WebSocket.
    routes=(FrontRoute(LISTENER, UPSTREAM, ACCESS, reserved=(DELETE, ADMIN), websocket=True),),
    ready_path="/ready",
    owner="roles/loki/front.py ACCESS",
    journaled=(DELETE,),
    # Never the tighter limit (a 413 is final for the gateway's exporter): Loki's own limits apply behind it.
    max_body="64m",
    timeout_s=300,
)
