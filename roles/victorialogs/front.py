"""VictoriaLogs' authenticating front (roles/_front.py): who may call which of the store's paths.

Why: the pinned VictoriaLogs (1.52.2, open source) serves TLS (`-tls`) but cannot ask for a client
certificate (`-mtls` is enterprise-only: its help names it, the open-source build does not register
it), has one Basic Auth user for every path (`-httpAuth.*`) and no key of its own for /delete/*
(only /metrics, /flags, /debug/pprof and /internal/* have `*AuthKey` flags). Nothing in it can say
"the gateway may write, the erasure command may delete".

The front holds `victorialogs.http` (the host's IP) and passes to VictoriaLogs on
`victorialogs.local` (127.0.0.1). Every /delete/* call goes to the journal (syslog tag
`victorialogs_front`) with the client's subject, besides every refusal.

With stores.mode scalable (`front(True)`, roles/victorialogs/cluster.py) `victorialogs.http` passes to the
host's access tier (`victorialogs.access_local`), and a second listener, `victorialogs.storage`, passes to the
storage node: the access tiers of every telemetry host call its /internal/* paths there, Prometheus its /metrics.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from roles import _front
from roles._front import Front, FrontRoute
from roles._pki import OPERATOR
from roles._tls import ERASURE

if TYPE_CHECKING:
    from roles._topology import Topology

NAME = "victorialogs-front"
LISTENER = "victorialogs.http"
UPSTREAM = "victorialogs.local"
# stores.mode scalable: the storage node's listener, and the access tier the first listener passes to.
STORAGE_LISTENER = "victorialogs.storage"
ACCESS_UPSTREAM = "victorialogs.access_local"
# The store's own identity (its front's certificate; its readiness check).
SELF = "victorialogs"
# The retention job on the store's host (roles/victorialogs: victorialogs-retention.service).
RETENTION = "victorialogs-retention"

# What each identity may call, by component: a prefix ends in "/", anything else is one exact path.
# Which hosts hold each identity comes from the topology (`identities`); a client of a new flow to
# victorialogs.http without a row here stops the render.
ACCESS: dict[str, tuple[str, ...]] = {
    "gateway": ("/insert/",),  # every log line (OTLP); the lab's tests push lines as the gateway
    "grafana": ("/select/",),  # the datasource
    "prometheus": ("/metrics",),  # the scrape
    OPERATOR: ("/select/", "/metrics", "/flags", "/health", "/internal/force_flush"),
    # The erasure command: counts, deletes, waits for its task, and copies its audit entry in.
    ERASURE: ("/select/logsql/", "/delete/", "/insert/jsonline"),
    # The retention job: counts and deletes each shorter class's expired lines.
    RETENTION: ("/select/logsql/", "/delete/"),
    SELF: ("/health",),  # the front's readiness check on the host
}
# stores.mode scalable: who may call the storage node. Each host's gateway writes its lines here (the storage node
# acknowledges what it holds; roles/otel_collector CLUSTER_WRITES). The access tier (identity `victorialogs`, the
# store's own, on every telemetry host) sends the queries and the deletes it fans out, the lines written through it
# (the erasure command's audit entries), and flushes for the tests' and the operator's reads (/internal/force_flush);
# Prometheus scrapes it.
STORAGE_ACCESS: dict[str, tuple[str, ...]] = {
    "gateway": ("/insert/",),
    SELF: ("/internal/insert", "/internal/select/", "/internal/delete/", "/internal/force_flush", "/health"),
    "prometheus": ("/metrics",),
    OPERATOR: ("/metrics", "/flags", "/health", "/internal/force_flush"),
}
FRONT = Front(
    name=NAME,
    component=SELF,
    routes=(FrontRoute(LISTENER, UPSTREAM, ACCESS),),
    ready_path="/health",
    owner="roles/victorialogs/front.py ACCESS",
    host_identities=(RETENTION,),
    journaled=("/delete/", "/internal/delete/"),
    max_body="64m",  # VictoriaLogs' own request limit (and -internalinsert.maxRequestSize's default)
    timeout_s=300,
)
# The cluster's front: the same rows before the access tier, and the storage node's listener.
CLUSTER_FRONT = replace(
    FRONT,
    routes=(FrontRoute(LISTENER, ACCESS_UPSTREAM, ACCESS), FrontRoute(STORAGE_LISTENER, UPSTREAM, STORAGE_ACCESS, down_closes=True)),
    owner="roles/victorialogs/front.py ACCESS and STORAGE_ACCESS",
)


def front(scalable: bool) -> Front:
    """The front of a single node, or of a cluster member (stores.mode scalable)."""
    return CLUSTER_FRONT if scalable else FRONT


def identities(topology: "Topology", host: str) -> list[tuple[str, str]]:
    """(subject CN, component) of every identity the front on `host` admits, sorted."""
    return front(_scalable(topology, host)).identities(topology, host)


def _scalable(topology: "Topology", host: str) -> bool:
    return topology.hosts[host].settings.stores.mode == "scalable"


def render_config(topology: "Topology", host: str, bind: str, upstream: str, front: Front = FRONT) -> str:
    """nginx.conf of the single node's front on `host`: listen on `bind` (victorialogs.http), pass to `upstream`
    (victorialogs.local)."""
    return _front.render_config(front, topology, host, {LISTENER: bind, UPSTREAM: upstream})


def service_spec(config: str, bind: str, tls=()):
    return _front.service_spec(FRONT, config, bind, tls)
