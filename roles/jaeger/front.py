"""Jaeger's authenticating front (roles/_front.py): who may call which of the trace store's paths.

Why: Jaeger v2's configtls (`client_ca_file`) admits any certificate of the environment CA, with no
list of names, so any host the firewall let through could write spans with whatever identity it
holds. Behind the front the gateway alone writes spans, Grafana and the operators alone read them,
and Prometheus (and the operators) alone read Jaeger's own metrics.

The front holds Jaeger's three host listeners (`jaeger.otlp_http`, `jaeger.query`,
`jaeger.metrics`, on the host's IP) and passes each to Jaeger's own on 127.0.0.1 (`*_local`).
Refusals go to the journal (syslog tag `jaeger_front`) with the client's subject.
"""

from __future__ import annotations

from roles._front import Front, FrontRoute
from roles._pki import OPERATOR

NAME = "jaeger-front"
SELF = "jaeger"  # the store's identity: the front's certificate, its readiness check

# What each identity may call on each listener: a prefix ends in "/", anything else is one exact path.
# A client of a new flow to one of these listeners without its row stops the render.
ROUTES = (
    # The query API first: it answers the readiness check (an empty service list on a fresh store).
    FrontRoute("jaeger.query", "jaeger.query_local", {
        "grafana": ("/api/",),  # the datasource: services, operations, traces, search
        OPERATOR: ("/",),  # the API and the UI; nothing on this port writes or deletes
        SELF: ("/api/services",),
    }),
    FrontRoute("jaeger.otlp_http", "jaeger.otlp_http_local", {
        "gateway": ("/v1/traces",),  # the only writer
    }),
    FrontRoute("jaeger.metrics", "jaeger.metrics_local", {
        "prometheus": ("/metrics",),  # the scrape
        OPERATOR: ("/metrics",),
    }),
)
FRONT = Front(
    name=NAME,
    component=SELF,
    routes=ROUTES,
    ready_path="/api/services",
    owner="roles/jaeger/front.py ROUTES",
    controller_identities=(OPERATOR,),
    # Never the tighter limit: a 413 is final for the gateway's exporter (it would drop the batch), so the
    # limit that counts is Jaeger's own receiver's, behind the front, as before the front.
    max_body="64m",
    timeout_s=300,
)
