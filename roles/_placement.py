"""The placement table: which component runs on which hosts, what it listens on, which
secrets it needs and which release it installs.

One row per component. `runs(host)` says whether a host of the environment runs it
(from its groups and its own settings); `listeners(settings)` publishes the
component's listeners from the component's own settings block; `secrets(settings)`
names the secrets it reads; `artifact` is its entry in files/versions.yml. Nothing
else in the toolkit decides where a component runs, which port it holds or which
secret it needs: the topology (roles/_topology.py) assembles these rows, deploy.py
reads `runs`, the secrets preflight (roles/_secrets.py) reads `secrets`, the
versions check reads `artifact`, and the firewall, the binds, the scrape jobs, the
peers' URLs and docs/architecture.md's port table are derived from the same rows.

Adding a role: the role, its templates, its tests, one row here and one entry in
deploy.py's ROLES (the role function and its settings block).

A listener's scope says where it binds:
- ``host``: the host's own IP (`ip`), reached by the peers the flows name;
- ``local``: 127.0.0.1, for health checks, admin ports and what only the host itself uses;
- ``any``: every address; only sshd, which the toolkit does not configure (the firewall
  still lets only the admin networks and declared flows in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal

if TYPE_CHECKING:  # rows read the validated settings; this module imports no aggregate
    from roles._environment import EnvHost
    from roles._settings import Settings

Scope = Literal["host", "local", "any"]


@dataclass(frozen=True)
class ListenerSpec:
    """What a component listens on, as its settings say (the topology adds the host and the bind address)."""

    name: str  # unique per host: "<component>.<what>", e.g. "prometheus.web"
    port: int
    scope: Scope
    purpose: str
    protocols: tuple[str, ...] = ("tcp",)
    # A name every instance answers to, beside its host's (a pool's: the gateways'); their certificates carry it.
    pool_name: str | None = None


@dataclass(frozen=True)
class SecretUse:
    """A secret a component reads: the settings key that names it (relative to the host), its kind, and
    whether an unset secret is an error. roles/_secrets.py checks the value's shape by `kind`."""

    key: str
    name: str
    kind: str
    required: bool
    what: str


@dataclass(frozen=True)
class Component:
    """A row of the placement table."""

    name: str
    groups: tuple[str, ...]  # the host must be in one of these groups
    listeners: Callable[["Settings"], tuple[ListenerSpec, ...]] = lambda s: ()
    # Beyond the groups: the component's own switches (the chosen store, a binary installed).
    when: Callable[["Settings"], bool] = lambda s: True
    secrets: Callable[["Settings"], tuple[SecretUse, ...]] = lambda s: ()
    artifact: str | None = None  # its release in files/versions.yml (the building block's ServiceSpec name)
    condition: str = ""  # `when` in words, for the docs
    # The systemd units it installs or runs from, without ".service"; unset = its artifact's unit
    # (the building block names the unit after the release). node_exporter watches all of them.
    units: Callable[["Settings"], tuple[str, ...]] | None = None
    # A store: on the one telemetry host `stores.host` names (all of them when unset: preflight
    # allows that with a single telemetry host only, roles/_topology.py).
    store: bool = False
    # A store that scales out: with `stores.mode: scalable` it runs on every host of its groups.
    scales: bool = False

    def runs(self, host: "EnvHost") -> bool:
        stores = host.settings.stores
        scaled_out = self.scales and stores.mode == "scalable"
        if self.store and not scaled_out and stores.host not in (None, host.name):
            return False
        return any(g in host.groups for g in self.groups) and self.when(host.settings)

    def unit_names(self, settings: "Settings") -> tuple[str, ...]:
        if self.units is not None:
            return self.units(settings)
        return (self.artifact,) if self.artifact else ()


ALL = ("monitoring", "telemetry", "app")


def _node_exporter(s: "Settings"):
    return (ListenerSpec("node_exporter.metrics", s.node_exporter.listen_port, "host", "host metrics, scraped by Prometheus"),)


def _prometheus(s: "Settings"):
    return (ListenerSpec("prometheus.web", s.prometheus.listen_port, "host", "query API, /metrics, remote-write receiver"),)


def _alertmanager(s: "Settings"):
    return (ListenerSpec("alertmanager.web", s.alerting.listen_port, "host", "alerts from Prometheus, silences, /metrics"),)


def _alertmanager_cluster(s: "Settings"):
    return (ListenerSpec("alertmanager.cluster", s.alerting.cluster_port, "host", "gossip between Alertmanagers", ("tcp", "udp")),)


def _grafana(s: "Settings"):
    # Without its binary (the lab) Grafana's files are installed and nothing listens.
    if not s.grafana.install_binary:
        return ()
    return (ListenerSpec("grafana.http", s.grafana.http_port, "host", "dashboards, HTTP API, /metrics"),)


def _grafana_ha(s: "Settings"):
    # Not Grafana's default 9094: Alertmanager's gossip holds it on the same hosts.
    return (ListenerSpec("grafana.ha", s.grafana.ha_port, "host", "gossip between Grafanas (unified alerting HA)", ("tcp", "udp")),)


def _scalable(s: "Settings") -> bool:
    return s.stores.mode == "scalable"


def _s3_shared(s: "Settings") -> bool:
    """Scaled-out stores on every telemetry host share the S3 store's buckets (Loki; Tempo on S3). The
    VictoriaLogs cluster keeps its data on each node's disk: with it alone, the S3 store stays on the loopback."""
    return _scalable(s) and (s.logs.store == "loki" or (s.traces.store == "tempo" and s.traces.tempo.backend == "s3"))


def _object_store(s: "Settings"):
    if _s3_shared(s):  # Loki and Tempo on every telemetry host share its buckets (plain HTTP, SigV4-signed: docs/architecture.md)
        return (ListenerSpec("object_store.s3", s.object_store.listen_port, "host", "S3 API for the stores (scalable: every telemetry host's Loki and Tempo)"),)
    return (ListenerSpec("object_store.s3", s.object_store.listen_port, "local", "S3 API for the stores on this host (scalable: on the host's IP, for every telemetry host's Loki and Tempo)"),)


def _jaeger(s: "Settings"):
    t, j = s.traces, s.traces.jaeger
    return (
        # Served by the authenticating front (nginx, roles/jaeger/front.py): TLS, a client certificate
        # from the environment CA, and each identity admitted to its own paths only.
        ListenerSpec("jaeger.otlp_http", t.otlp_http_port, "host", "Jaeger's front (mTLS): OTLP/HTTP spans from the gateway"),
        ListenerSpec("jaeger.query", j.query_port, "host", "Jaeger's front (mTLS): HTTP query API (Grafana, operators)"),
        ListenerSpec("jaeger.metrics", j.metrics_port, "host", "Jaeger's front (mTLS): Jaeger's own /metrics"),
        # Jaeger itself, behind the front: configtls cannot tell one certificate of the CA from another.
        ListenerSpec("jaeger.otlp_http_local", j.local_otlp_http_port, "local", "Jaeger's OTLP/HTTP receiver, behind its front"),
        ListenerSpec("jaeger.query_local", j.local_query_port, "local", "Jaeger's HTTP query API, behind its front"),
        ListenerSpec("jaeger.metrics_local", j.local_metrics_port, "local", "Jaeger's own /metrics, behind its front"),
        # Nothing sends OTLP/gRPC to the store: kept on the loopback only.
        ListenerSpec("jaeger.otlp_grpc", t.otlp_grpc_port, "local", "OTLP/gRPC receiver (unused by the flows)"),
        ListenerSpec("jaeger.query_grpc", j.query_grpc_port, "local", "gRPC query API (unused by the flows)"),
        ListenerSpec("jaeger.health", j.health_port, "local", "readiness check"),
    )


def _tempo(s: "Settings"):
    t, tempo = s.traces, s.traces.tempo
    return (
        # Served by the authenticating front (nginx, roles/tempo/front.py): each identity to its own paths.
        ListenerSpec("tempo.otlp_http", t.otlp_http_port, "host", "Tempo's front (mTLS): OTLP/HTTP spans from the gateway"),
        ListenerSpec("tempo.otlp_http_local", tempo.local_otlp_http_port, "local", "Tempo's OTLP/HTTP receiver, behind its front"),
        ListenerSpec("tempo.otlp_grpc", t.otlp_grpc_port, "local", "OTLP/gRPC receiver (unused by the flows)"),
        ListenerSpec("tempo.http", tempo.http_port, "host", "Tempo's front (mTLS): query API (Grafana), /ready, /metrics"),
        ListenerSpec("tempo.http_local", tempo.local_http_port, "local", "Tempo's own HTTP API, behind its front"),
        *((ListenerSpec("tempo.grpc", tempo.grpc_port, "host", "Tempo's internal gRPC, between the telemetry hosts (scalable)"),
           ListenerSpec("tempo.memberlist", tempo.memberlist_port, "host", "Tempo's ring gossip between the telemetry hosts (scalable only)"))
          if _scalable(s) else (ListenerSpec("tempo.grpc", tempo.grpc_port, "local", "Tempo's internal gRPC (scalable: on the host's IP, between the telemetry hosts)"),)),
    )


def _victorialogs(s: "Settings"):
    v = s.victorialogs
    return (
        # Served by the authenticating front (nginx, roles/victorialogs/front.py): TLS, a client
        # certificate from the environment CA, and each identity admitted to its own paths only.
        ListenerSpec("victorialogs.http", v.port, "host", "the store's front (mTLS): OTLP logs in, queries, deletes, /metrics"),
        # VictoriaLogs itself, behind the front: it cannot require or check a client certificate.
        ListenerSpec("victorialogs.local", v.local_port, "local", "VictoriaLogs itself, behind its front (scalable: the storage node)"),
        # stores.mode scalable: a cluster of every telemetry host (roles/victorialogs/cluster.py). The front's
        # victorialogs.http passes to the host's access tier, which spreads writes over every storage node
        # and asks every one of them for a query; the storage node is reached through the front's second listener.
        *((ListenerSpec("victorialogs.storage", v.storage_port, "host", "the storage node's front (mTLS): the access tiers' /internal/*, /metrics"),
           ListenerSpec("victorialogs.access_local", v.access_local_port, "local", "the access tier (vlinsert, vlselect), behind the front"))
          if _scalable(s) else ()),
    )


def _loki(s: "Settings"):
    return (
        # Served by the authenticating front (nginx, roles/loki/front.py): the delete API to the erasure identity only.
        ListenerSpec("loki.http", s.loki.http_port, "host", "Loki's front (mTLS): OTLP logs in, queries, deletes, /metrics"),
        ListenerSpec("loki.local", s.loki.local_http_port, "local", "Loki's own HTTP API, behind its front"),
        *((ListenerSpec("loki.grpc", s.loki.grpc_port, "host", "Loki's internal gRPC between the telemetry hosts (scalable, mTLS)"),
           ListenerSpec("loki.memberlist", s.loki.memberlist_port, "host", "Loki's ring gossip between the telemetry hosts (scalable only, TLS)"))
          if _scalable(s) else (ListenerSpec("loki.grpc", s.loki.grpc_port, "local", "Loki talking to itself (scalable: on the host's IP, between the telemetry hosts, mTLS)"),)),
    )


def _collector(s: "Settings"):
    c = s.otel_collector
    return (
        ListenerSpec("otelcol.metrics", c.metrics_port, "host", "the collector's own /metrics"),
        ListenerSpec("otelcol.health", c.health_port, "local", "readiness check"),
    )


def _gateway(s: "Settings"):
    c = s.otel_collector
    return (
        ListenerSpec("gateway.otlp_grpc", c.grpc_port, "host", "OTLP/gRPC from the agents (balanced over the pool)", pool_name=c.gateway_pool_name),
        ListenerSpec("gateway.otlp_http", c.http_port, "host", "OTLP/HTTP (operators' tools; no flow of the stack)", pool_name=c.gateway_pool_name),
    )


def _agent(s: "Settings"):
    return (ListenerSpec("agent.otlp_http", s.otel_collector.agent_http_port, "local", "OTLP/HTTP from the backend on this host (mTLS)"),)


def _backend(s: "Settings"):
    return (ListenerSpec("backend.http", s.backend.port, "host", "the backend's HTTP port (users, /metrics)"),)


def _ssh(s: "Settings"):
    return (ListenerSpec("ssh", s.firewall.ssh_port, "any", "sshd (the controller, declared flows)"),)


# --- the secrets each component reads --------------------------------------------------


def _s3(block: str, owner: str):
    def uses(s: "Settings") -> tuple[SecretUse, ...]:
        settings = s
        for part in block.split("."):
            settings = getattr(settings, part)
        if block == "traces.tempo" and settings.backend != "s3":
            return ()
        return (
            SecretUse(f"{block}.access_key_secret", settings.access_key_secret, "s3_access_key", True, owner),
            SecretUse(f"{block}.secret_key_secret", settings.secret_key_secret, "s3_key", True, owner),
        )

    return uses


@dataclass(frozen=True)
class S3Account:
    """A consumer's account on the store: a versitygw `user` that owns `bucket` and nothing else.

    `key` is the settings block naming the bucket and the two secrets (e.g. "loki").
    """

    name: str
    key: str
    bucket: str
    access_key_secret: str
    secret_key_secret: str
    # During a two-phase rotation: the secret holding the previous key id, still accepted on the bucket.
    previous_access_key_secret: str = ""


def s3_accounts(settings: "Settings") -> tuple[S3Account, ...]:
    """One account per consumer whose bucket the store creates, whether or not the consumer runs here.

    A bucket the store creates gets its owner: the consumer whose settings name it (the lab
    creates the buckets, and so their accounts, without running Loki or Tempo). A bucket no
    consumer names stays the root's.
    """
    buckets = settings.object_store.buckets
    found = []
    for name, key, block in (("loki", "loki", settings.loki), ("tempo", "traces.tempo", settings.traces.tempo)):
        if block.bucket in buckets:
            found.append(S3Account(name, key, block.bucket, block.access_key_secret, block.secret_key_secret,
                                   block.previous_access_key_secret))
    return tuple(found)


def _object_store_secrets(s: "Settings"):
    # The root key, and the key of every consumer whose account the store creates (its bucket is one of
    # object_store.buckets), whether or not the consumer runs on this host.
    store = s.object_store
    found = [
        SecretUse("object_store.access_key_secret", store.access_key_secret, "s3_key", True, "the store credential"),
        SecretUse("object_store.secret_key_secret", store.secret_key_secret, "s3_key", True, "the store credential"),
    ]
    for account in s3_accounts(s):
        what = f"the object store creates {account.name}'s account, owner of bucket {account.bucket!r}, but its"
        found += [
            SecretUse(f"{account.key}.access_key_secret", account.access_key_secret, "s3_access_key", True, f"{what} access key"),
            SecretUse(f"{account.key}.secret_key_secret", account.secret_key_secret, "s3_key", True, f"{what} secret key"),
            # Optional: set only between the two phases of a rotation.
            SecretUse(f"{account.key}.previous_access_key_secret", account.previous_access_key_secret, "s3_access_key", False,
                      f"{what} previous access key id (a rotation's first phase)"),
        ]
    return tuple(found)


def _alerting_secrets(s: "Settings"):
    alerting, found = s.alerting, []
    if alerting.pagerduty.enabled:
        found.append(SecretUse("alerting.pagerduty.routing_key_secret", alerting.pagerduty.routing_key_secret, "pagerduty_key", True,
                               f"PagerDuty is enabled in {s.environment} but its Events API v2 routing key"))
    for key in ("slack_critical", "slack_warning"):
        receiver = getattr(alerting, key)
        found.append(SecretUse(f"alerting.{key}.webhook_url_secret", receiver.webhook_url_secret, "slack_webhook", True,
                               f"the Slack webhook URL for {receiver.channel}"))
    if alerting.heartbeat.enabled:
        found.append(SecretUse("alerting.heartbeat.url_secret", alerting.heartbeat.url_secret, "heartbeat_url", True,
                               'the ping URL of the dead man\'s switch (or, with a reason, alerting.heartbeat.waived = "<why>"):'))
    if alerting.email.auth_username:
        found.append(SecretUse("alerting.email.auth_password_secret", alerting.email.auth_password_secret, "smtp_password", True,
                               f"the SMTP password of {alerting.email.auth_username}"))
    return tuple(found)


def _grafana_secrets(s: "Settings"):
    grafana = s.grafana
    found = [SecretUse("grafana.admin_password_secret", grafana.admin_password_secret, "grafana_admin_password", True, "Grafana's admin password"),
             SecretUse("grafana.admin_previous_password_secret", grafana.admin_previous_password_secret, "grafana_admin_password", False,
                       "the admin password Grafana has (a rotation's one converge)")]
    if grafana.database.is_postgres:
        found.append(SecretUse("grafana.database.password_secret", grafana.database.password_secret, "db_password", True,
                               "Grafana's PostgreSQL password"))
    if grafana.public_certificate:  # the settings hold both names or neither
        found.append(SecretUse("grafana.public_certificate_secret", grafana.public_certificate_secret, "pem_certificate_chain", True,
                               "Grafana's public certificate chain"))
        found.append(SecretUse("grafana.public_key_secret", grafana.public_key_secret, "pem_private_key", True,
                               "the key of Grafana's public certificate"))
    return tuple(found)


def _backup_secrets(s: "Settings"):
    backup = s.grafana_backup
    found = [SecretUse("grafana_backup.deploy_key_secret", backup.deploy_key_secret, "ssh_private_key", True,
                       "the Grafana backup is enabled but its git deploy key")]
    if backup.write_token:
        # Elsewhere the Grafana role creates the token and writes the file itself.
        found.append(SecretUse("grafana_backup.token_secret", backup.token_secret, "grafana_token", True,
                               "grafana_backup.write_token is on but the service-account token"))
    return tuple(found)


def _backend_secrets(s: "Settings"):
    backend = s.backend
    found = [SecretUse("backend.sentry_dsn_secret", backend.sentry_dsn_secret, "sentry_dsn", False, "the Sentry DSN")]
    if backend.sourcemaps_dir:
        found.append(SecretUse("backend.sentry_auth_token_secret", backend.sentry_auth_token_secret, "sentry_token", True,
                               f"source maps in {backend.sourcemaps_dir} are to be uploaded but the Sentry auth token (project:releases)"))
    return tuple(found)


# The placement table. Order is the deploy order within a host.
COMPONENTS: tuple[Component, ...] = (
    Component("sshd", ALL, _ssh),
    Component("firewall", ALL, when=lambda s: s.firewall.enabled, condition="firewall.enabled", units=lambda s: ("sentinel-firewall",)),
    Component("node_exporter", ALL, _node_exporter, artifact="node_exporter"),
    Component("object_store", ("telemetry",), _object_store, secrets=_object_store_secrets, artifact="versitygw", store=True, condition="on stores.host"),
    Component("jaeger", ("telemetry",), _jaeger, when=lambda s: s.traces.store == "jaeger", condition="traces.store: jaeger, on stores.host", artifact="jaeger",
              units=lambda s: ("jaeger", "jaeger-front"), store=True),
    Component("tempo", ("telemetry",), _tempo, when=lambda s: s.traces.store == "tempo", condition="traces.store: tempo, on stores.host (scalable: every telemetry host)",
              secrets=_s3("traces.tempo", "Tempo's S3 credential"), artifact="tempo", units=lambda s: ("tempo", "tempo-front"), store=True, scales=True),
    Component("victorialogs", ("telemetry",), _victorialogs, when=lambda s: s.logs.store == "victorialogs",
              condition="logs.store: victorialogs, on stores.host (scalable: every telemetry host, a cluster)", artifact="victorialogs",
              # victorialogs-access: the cluster's access tier (scalable); watched in every mode, as a unit that
              # does not exist gives node_exporter no series.
              units=lambda s: ("victorialogs", "victorialogs-retention", "victorialogs-front", "victorialogs-access"),
              store=True, scales=True),
    Component("loki", ("telemetry",), _loki, when=lambda s: s.logs.store == "loki", condition="logs.store: loki, on stores.host (scalable: every telemetry host)",
              secrets=_s3("loki", "Loki's S3 credential"), artifact="loki", units=lambda s: ("loki", "loki-front"), store=True, scales=True),
    Component("otelcol", ("telemetry", "app"), _collector, artifact="otelcol"),
    Component("gateway", ("telemetry",), _gateway),
    Component("agent", ("app",), _agent),
    Component("prometheus", ("monitoring",), _prometheus, artifact="prometheus"),
    Component("alertmanager", ("monitoring",), _alertmanager, secrets=_alerting_secrets, artifact="alertmanager"),
    # Before Grafana: the backup job's user and /etc/grafana-backup exist when the Grafana
    # role writes the job's service-account token there (0640 root:grafana-backup).
    # The job runs from cron (cron.service).
    Component("grafana_backup", ("monitoring",), when=lambda s: s.grafana_backup.enabled, condition="grafana_backup.enabled", secrets=_backup_secrets,
              units=lambda s: ("cron",)),
    # Grafana's files on every monitoring host; its binary (and listener) where grafana.install_binary is on.
    Component("grafana", ("monitoring",), _grafana, secrets=_grafana_secrets, artifact="grafana"),
    Component("backend", ("app",), _backend, secrets=_backend_secrets, units=lambda s: (s.backend.unit.removesuffix(".service"),)),
)

@dataclass(frozen=True)
class PeerListeners:
    """A component's gossip listeners, which exist only with peers: the topology adds them on
    every member when the environment has more than one (`member`: the host runs the process)."""

    component: str
    listeners: Callable[["Settings"], tuple[ListenerSpec, ...]]
    member: Callable[["Settings"], bool] = lambda s: True


PEER_LISTENERS = (
    PeerListeners("alertmanager", _alertmanager_cluster),
    # Grafana's unified alerting HA (ha_peers); only where its binary runs.
    PeerListeners("grafana", _grafana_ha, member=lambda s: s.grafana.install_binary),
)


def component(name: str) -> Component:
    return next(c for c in COMPONENTS if c.name == name)
