"""Tempo's authenticating front (roles/_front.py): who may call which of Tempo's paths (rendered; Tempo is never
run here, nginx checks the config in the unit tests and on the host).

Why: dskit's `http_tls_config` and configtls (`client_ca_file`) check a client certificate's chain, not its
name: any certificate of the CA that the firewall lets through could write spans or read traces. Behind the
front the gateway alone writes spans, Grafana and the operators read, Prometheus scrapes (issue 22).

The front holds `tempo.http` and `tempo.otlp_http` (the host's IP) and passes each to Tempo's own on
127.0.0.1 (`*_local`). Refusals go to the journal (`journalctl -t tempo_front`). It speaks HTTP/1.1 to
Tempo: gRPC streaming over the HTTP port (`stream_over_http_enabled`) is not set and would not pass.
"""

from __future__ import annotations

from roles._front import Front, FrontRoute
from roles._pki import OPERATOR

NAME = "tempo-front"
SELF = "tempo"  # the store's identity: the front's certificate, its readiness check

# What each identity may call on each listener: a prefix ends in "/", anything else is one exact path.
# A client of a new flow to one of these listeners without its row stops the render.
ROUTES = (
    # The HTTP API first: it answers the readiness check.
    FrontRoute("tempo.http", "tempo.http_local", {
        "grafana": ("/api/",),  # the datasource: traces by id, search, tags
        "prometheus": ("/metrics",),  # the scrape
        OPERATOR: ("/api/", "/metrics", "/ready", "/status"),
        SELF: ("/ready",),
    }),
    FrontRoute("tempo.otlp_http", "tempo.otlp_http_local", {
        "gateway": ("/v1/traces",),  # the only writer
    }),
)
FRONT = Front(
    name=NAME,
    component=SELF,
    routes=ROUTES,
    ready_path="/ready",
    owner="roles/tempo/front.py ROUTES",
    controller_identities=(OPERATOR,),
    # Never the tighter limit (a 413 is final for the gateway's exporter): Tempo's own receiver limit applies behind it.
    max_body="64m",
    timeout_s=300,
)
