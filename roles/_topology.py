"""Who listens where and who may talk to whom: one topology per environment.

Built once from the validated `Environment` (roles/_environment.py):

- **listeners**: every component on every host publishes its listeners from its own
  settings (the placement table, roles/_placement.py); the topology gives each its
  bind address (the host's `ip`, or 127.0.0.1 for a local one);
- **flows**: the `FLOWS` table below says which component may connect to which
  listener; a flow covers every host that runs the client and every host that has
  the listener, so a second host of a group takes part without another rule;
- **openings**: per host, the inbound traffic the firewall lets through: the flows'
  sources, SSH from the admin networks, and the operators' own `firewall.allow`.

Consumers ask for endpoints by listener name (`url`, `urls`, `bind`); no port number
or "first host of the group" rule is written anywhere else. Preflight builds the
topology, so a port used twice on a host, a flow that needs a component that runs
nowhere, or an allowed source aimed at a local listener stops the run before any
host is contacted.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Collection
from typing import TYPE_CHECKING, Callable

from roles._model import SettingsError, SettingsErrors
from roles._net import host_port
from roles._placement import COMPONENTS, PEER_LISTENERS, ListenerSpec

if TYPE_CHECKING:
    from roles._environment import EnvHost, Environment
    from roles._settings import Settings

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Listener:
    """A listener on one host, with the address it binds."""

    host: str
    component: str
    spec: ListenerSpec
    ip: str  # the host's IP (for the firewall and URLs of host-scoped listeners)
    address: str  # the name other hosts reach the host at

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def port(self) -> int:
        return self.spec.port

    @property
    def bind_ip(self) -> str:
        return {"host": self.ip, "local": LOOPBACK, "any": "0.0.0.0"}[self.spec.scope]

    @property
    def bind(self) -> str:
        """host:port to bind, e.g. ``10.213.0.11:9090`` or ``127.0.0.1:13133``."""
        return host_port(self.bind_ip, self.port)

    def reach(self, from_host: str) -> str:
        """host:port a client on `from_host` connects to."""
        if self.spec.scope == "local":
            if from_host != self.host:
                raise ValueError(f"{self.name} on {self.host} is local: {from_host} cannot reach it")
            return host_port(LOOPBACK, self.port)
        return host_port(self.address, self.port)


@dataclass(frozen=True)
class Flow:
    """`client` (a component of the placement table) may connect to `listener` wherever it runs."""

    client: str
    listener: str
    purpose: str
    # A flow the client cannot work without: preflight refuses an environment where the
    # client runs and no host has the listener (settings of the client's host decide).
    required: Callable[["Settings"], bool] = lambda s: False


def _store(kind: str, name: str) -> Callable[["Settings"], bool]:
    def chosen(s: "Settings") -> bool:
        store = s.traces if kind == "traces" else s.logs
        return store.store == name and not store.endpoint

    return chosen


# Every flow of the stack. A new listener that no row names is reachable by nobody
# but its own host (and the topology test says so).
FLOWS: tuple[Flow, ...] = (
    Flow("prometheus", "node_exporter.metrics", "scrape"),
    Flow("prometheus", "prometheus.web", "scrape the Prometheus servers"),
    Flow("prometheus", "alertmanager.web", "send alerts, scrape"),
    Flow("prometheus", "otelcol.metrics", "scrape"),
    Flow("prometheus", "jaeger.metrics", "scrape"),
    Flow("prometheus", "tempo.http", "scrape"),
    Flow("prometheus", "victorialogs.http", "scrape"),
    Flow("prometheus", "loki.http", "scrape"),
    Flow("prometheus", "backend.http", "scrape the backend's /metrics"),
    Flow("prometheus", "grafana.http", "scrape"),
    Flow("alertmanager", "alertmanager.cluster", "gossip silences and notification state"),
    Flow("gateway", "jaeger.otlp_http", "export spans", required=_store("traces", "jaeger")),
    Flow("gateway", "tempo.otlp_http", "export spans", required=_store("traces", "tempo")),
    Flow("gateway", "victorialogs.http", "export logs", required=_store("logs", "victorialogs")),
    Flow("gateway", "loki.http", "export logs", required=_store("logs", "loki")),
    Flow("gateway", "prometheus.web", "remote-write span metrics", required=lambda s: True),
    # The backend exports to its host's agent (agent.otlp_http, on the loopback); each agent balances the
    # backend's spans and its log lines over every gateway of the pool (docs/architecture.md "The gateway pool").
    Flow("agent", "gateway.otlp_grpc", "ship the backend's spans and log lines (balanced over the pool)", required=lambda s: True),
    Flow("grafana", "prometheus.web", "datasource"),
    Flow("grafana", "alertmanager.web", "datasource"),
    Flow("grafana", "jaeger.query", "datasource"),
    Flow("grafana", "tempo.http", "datasource"),
    Flow("grafana", "victorialogs.http", "datasource"),
    Flow("grafana", "loki.http", "datasource"),
    Flow("grafana", "grafana.ha", "gossip alert notification state (unified alerting HA)"),
    Flow("grafana_backup", "grafana.http", "export dashboards"),
    Flow("tempo", "object_store.s3", "blocks"),
    Flow("loki", "object_store.s3", "chunks"),
    # stores.mode scalable (roles/_placement.py `scales`): the telemetry hosts' Lokis and Tempos are one ring each.
    Flow("loki", "loki.grpc", "Loki to Loki: pushes to the ingesters, queries, the query scheduler (scalable, mTLS)"),
    Flow("loki", "loki.memberlist", "Loki's ring gossip (scalable, TLS)"),
    Flow("tempo", "tempo.grpc", "Tempo to Tempo: pushes to the ingesters, queries (scalable)"),
    Flow("tempo", "tempo.memberlist", "Tempo's ring gossip (scalable)"),
    # The VictoriaLogs cluster (scalable): every host's access tier writes to and queries every storage node.
    Flow("victorialogs", "victorialogs.storage", "the access tier to every storage node: /internal/select, /internal/delete (scalable, mTLS)"),
    Flow("gateway", "victorialogs.storage", "export logs to its own host's storage node (scalable, mTLS)"),
    Flow("prometheus", "victorialogs.storage", "scrape the storage nodes (scalable)"),
)


@dataclass(frozen=True)
class Opening:
    """Inbound traffic one host lets through: `sources` (IPs or CIDRs) to port/protocol."""

    listener: str
    port: int
    protocol: str
    sources: tuple[str, ...]
    why: str


def _check_hosts(hosts: "list[EnvHost]") -> list[SettingsError]:
    """Every host has an IP (binds, firewalls) and, behind a firewall, admin networks to keep SSH."""
    problems = []
    for host in hosts:
        s = host.settings
        if s.ip is None:
            problems.append(SettingsError(
                f"host {host.name}.ip",
                f"address {s.address!r} is a name, and binds and the firewalls need the host's IP",
                'set ip (e.g. "ip": "10.20.0.11") in the host\'s inventory data',
            ))
        if s.firewall.enabled and not s.firewall.admin_networks:
            problems.append(SettingsError(
                f"host {host.name}.firewall.admin_networks",
                "is empty while the firewall is on: no one could reach SSH, the controller included",
                'list the networks the controller and the operators connect from, e.g. ["10.20.0.0/24"]',
            ))
    return problems


class Topology:
    """The listeners and flows of one environment (see the module's docstring)."""

    def __init__(self, environment: "Environment", unchecked: "Collection[str]" = ()):
        """`unchecked`: hosts whose settings failed and hold defaults (preflight's partial pass). The checks of
        one host then run on the other hosts, the checks across hosts wait; every problem found is raised at once."""
        self.environment = environment
        self.hosts = {h.name: h for h in environment.hosts}
        self.runs: dict[str, tuple[str, ...]] = {
            c.name: tuple(h.name for h in environment.hosts if c.runs(h)) for c in COMPONENTS
        }
        listeners: list[Listener] = []
        for host in environment.hosts:
            for c in COMPONENTS:
                if host.name in self.runs[c.name]:
                    listeners += [self._listener(host, c.name, spec) for spec in c.listeners(host.settings)]
        for peers in PEER_LISTENERS:  # gossip ports: only with more than one member
            members = [h for h in environment.hosts if h.name in self.runs[peers.component] and peers.member(h.settings)]
            if len(members) > 1:
                listeners += [self._listener(h, peers.component, spec) for h in members for spec in peers.listeners(h.settings)]
        self.listeners = tuple(listeners)
        valid = [h for h in environment.hosts if h.name not in unchecked]
        problems = _check_hosts(valid) + self._check_ports([h.name for h in valid]) + self._check_stores_host([h.name for h in valid]) + self._check_pools()
        if not unchecked:
            problems += self._check_required_flows() + self._check_allow() + self._check_destinations() + self._check_scalable()
        SettingsErrors.raise_if_any(problems)

    @staticmethod
    def _listener(host: "EnvHost", component: str, spec: ListenerSpec) -> Listener:
        return Listener(host.name, component, spec, host.settings.ip, host.settings.address)

    # --- lookups --------------------------------------------------------------------

    def on(self, host: str) -> tuple[Listener, ...]:
        """The listeners of one host."""
        return tuple(l for l in self.listeners if l.host == host)

    def instances(self, name: str) -> tuple[Listener, ...]:
        """Every host's listener `name`, sorted by host."""
        return tuple(sorted((l for l in self.listeners if l.name == name), key=lambda l: l.host))

    def listener(self, host: str, name: str) -> Listener:
        for l in self.listeners:
            if l.host == host and l.name == name:
                return l
        raise KeyError(f"{host} has no listener {name}")

    def bind(self, host: str, name: str) -> str:
        """host:port that `name` binds on `host`."""
        return self.listener(host, name).bind

    def reach(self, name: str, from_host: str) -> str:
        """host:port of the one `name` a client on `from_host` uses: its own host's, else the only one."""
        mine = [l for l in self.instances(name) if l.host == from_host]
        if mine:
            return mine[0].reach(from_host)
        others = self.instances(name)
        if len(others) != 1:
            raise LookupError(f"{from_host}: {len(others)} hosts have {name}; ask for all of them (urls)")
        return others[0].reach(from_host)

    def primary(self, name: str, from_host: str) -> str:
        """host:port of `name` for a client that takes one address (Grafana's datasource): its own host's, else the one
        on `stores.host` when a scaled-out store runs on every telemetry host, else the only one."""
        found = self.instances(name)
        if len(found) > 1 and not any(l.host == from_host for l in found):
            chosen = self.hosts[from_host].settings.stores.host
            for l in found:
                if l.host == chosen:
                    return l.reach(from_host)
        return self.reach(name, from_host)

    def url(self, name: str, from_host: str, path: str = "", scheme: str = "http") -> str:
        return f"{scheme}://{self.reach(name, from_host)}{path}"

    def urls(self, name: str, from_host: str, path: str = "", scheme: str = "http") -> list[str]:
        """Every instance of `name`, as URLs for a client on `from_host`."""
        return [f"{scheme}://{l.reach(from_host)}{path}" for l in self.instances(name)]

    def pool(self, name: str) -> tuple[str, list[str]] | None:
        """(pool name, every instance's IP) of a pooled listener (the gateways'), None when `name` has no pool."""
        found = self.instances(name)
        if not found or not found[0].spec.pool_name:
            return None
        return found[0].spec.pool_name, [l.ip for l in found]

    def addresses(self, name: str) -> list[tuple[str, str]]:
        """(host, host:port) of every instance of `name`, for clients that list them all (scrape targets)."""
        return [(l.host, host_port(l.address, l.port)) for l in self.instances(name)]

    # --- flows and the firewall -------------------------------------------------------

    def clients(self, listener: str) -> list[tuple[str, Flow]]:
        """(client host, flow) of every declared flow to `listener`."""
        return [(h, f) for f in FLOWS if f.listener == listener for h in self.runs.get(f.client, ())]

    def openings(self, host: str) -> list[Opening]:
        """What the firewall of `host` lets in beyond SSH from the admin networks."""
        me = self.hosts[host]
        found: list[Opening] = []
        for l in self.on(host):
            if l.spec.scope == "local":
                continue  # bound to the loopback; the firewall opens nothing for it
            peers = sorted({h for h, _ in self.clients(l.name) if h != host})
            sources = [self.hosts[h].settings.ip for h in peers]
            why = ", ".join(sorted({f.client for h, f in self.clients(l.name) if h != host}))
            for rule in me.settings.firewall.allow:
                if rule.listener == l.name:
                    sources += list(rule.sources)
                    why = ", ".join(filter(None, [why, rule.reason]))
            if l.name == "ssh":
                sources += self._ssh_peers(host)
                why = "declared flows" if sources else ""
            if not sources:
                continue
            for protocol in l.spec.protocols:
                found.append(Opening(l.name, l.port, protocol, tuple(sorted(set(sources))), why))
        return found

    def _ssh_peers(self, host: str) -> list[str]:
        """The Grafana backup job pushes over SSH to its git host when that host is in the environment."""
        me = self.hosts[host]
        peers = []
        for client in self.runs["grafana_backup"]:
            remote = self.hosts[client].settings.grafana_backup.remote_url or ""
            git_host = remote.split("@", 1)[-1].split(":", 1)[0]
            if git_host in (me.name, me.settings.address, me.settings.ip) and client != host:
                peers.append(self.hosts[client].settings.ip)
        return peers

    # --- checks (preflight) -----------------------------------------------------------

    def _check_ports(self, hosts: list[str]) -> list[SettingsError]:
        problems = []
        for host in hosts:
            seen: dict[tuple[int, str], str] = {}
            for l in self.on(host):
                for protocol in l.spec.protocols:
                    key = (l.port, protocol)
                    if key in seen:
                        problems.append(SettingsError(
                            f"host {host}",
                            f"port {l.port}/{protocol} is used by both {seen[key]} and {l.name}",
                            f"give one of them another port in group data ({_setting_hint(seen[key])} or {_setting_hint(l.name)})",
                        ))
                    else:
                        seen[key] = l.name
        return problems

    def _check_required_flows(self) -> list[SettingsError]:
        problems = []
        for flow in FLOWS:
            for client in self.runs.get(flow.client, ()):
                if flow.required(self.hosts[client].settings) and not self.instances(flow.listener):
                    owner = flow.listener.split(".")[0]
                    problems.append(SettingsError(
                        f"host {client}",
                        f"its {flow.client} needs {flow.listener} ({flow.purpose}), but no host of the inventory runs {owner}",
                        f"add a host to the group that runs {owner} ({_group_hint(owner)}), or change the store choice",
                    ))
        return problems

    def _check_allow(self) -> list[SettingsError]:
        names = {l.name for l in self.listeners}
        problems = []
        for host in self.hosts.values():
            for i, rule in enumerate(host.settings.firewall.allow):
                key = f"host {host.name}.firewall.allow[{i}].listener"
                mine = [l for l in self.on(host.name) if l.name == rule.listener]
                if rule.listener not in _all_spec_names():
                    problems.append(SettingsError(key, f"{rule.listener!r} is not a listener of the stack", f"use one of {', '.join(sorted(_all_spec_names()))}"))
                elif rule.listener not in names:
                    problems.append(SettingsError(
                        key, f"{rule.listener} runs on no host of this inventory, so the rule would open nothing",
                        "remove the rule, or name a listener that runs here (docs/architecture.md)",
                    ))
                elif mine and mine[0].spec.scope == "local":
                    problems.append(SettingsError(
                        key, f"{rule.listener} is internal-only (bound to 127.0.0.1)", "remove the rule: no other host may reach it"
                    ))
                elif rule.listener == "ssh":
                    problems.append(SettingsError(key, "SSH is opened by firewall.admin_networks", "list the network in firewall.admin_networks instead"))
        return problems

    def _check_destinations(self) -> list[SettingsError]:
        """Where a secret goes to a host of this inventory, it goes to the topology's listener there."""
        return self._check_token_destinations() + self._check_git_destinations()

    def _check_git_destinations(self) -> list[SettingsError]:
        """The backup job pushes with its deploy key over SSH: to a host of the inventory, at that host's sshd port."""
        from roles.grafana_backup.settings import remote_host

        problems = []
        for name in self.runs["grafana_backup"]:
            remote = self.hosts[name].settings.grafana_backup.remote_url
            if not remote:
                continue
            git_host, port = remote_host(remote)
            for host in self.hosts.values():
                ssh = host.settings.firewall.ssh_port
                if git_host in (host.name, host.settings.address, host.settings.ip) and port != ssh:
                    problems.append(SettingsError(
                        f"host {name}.grafana_backup.remote_url",
                        f"pushes to {host_port(git_host, port)}, but sshd on {host.name} listens on {ssh} (firewall.ssh_port): "
                        "the firewall opens only that port to the job",
                        f"write the URL as ssh://<user>@{git_host}:{ssh}/<path>, or set firewall.ssh_port of {host.name}",
                    ))
        return problems

    def _check_token_destinations(self) -> list[SettingsError]:
        """The backup job sends its Grafana token to grafana_url: where Grafana runs in this inventory, only there."""
        from urllib.parse import urlsplit

        problems = []
        grafanas = self.instances("grafana.http")
        for name in self.runs["grafana_backup"]:
            url = self.hosts[name].settings.grafana_backup.grafana_url
            if not url or not grafanas:
                continue
            parts = urlsplit(url)
            target = host_port(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
            known = {host_port(h, l.port) for l in grafanas for h in (l.address, l.ip, l.host) if h}
            if target not in known:
                problems.append(SettingsError(
                    f"host {name}.grafana_backup.grafana_url",
                    f"points at {target}, but Grafana runs at {', '.join(sorted(l.reach(name) if l.host == name else host_port(l.address, l.port) for l in grafanas))} "
                    "in this inventory: the job would send its token elsewhere every night",
                    "remove grafana_backup.grafana_url (the topology's Grafana is used), or point it at that Grafana",
                ))
        return problems

    def _check_pools(self) -> list[SettingsError]:
        """Every instance of a pooled listener answers to the same name on the same port: the agents reach
        all of them as one (`dns:///<name>:<port>`), and a gateway named otherwise would fail their TLS check."""
        problems = []
        for name in sorted({l.name for l in self.listeners if l.spec.pool_name}):
            found = self.instances(name)
            shapes = {(l.spec.pool_name, l.port) for l in found}
            if len(shapes) > 1:
                problems.append(SettingsError(
                    f"{_setting_hint(name)} / otel_collector.gateway_pool_name",
                    f"{name} differs between hosts ({', '.join(f'{l.host}: {l.spec.pool_name}:{l.port}' for l in found)}): "
                    "the agents reach every gateway by one name and port",
                    "set the pool's name and ports once, in the telemetry group's data",
                ))
        return problems

    def _check_scalable(self) -> list[SettingsError]:
        """stores.mode scalable: Loki's and Tempo's rings make sense only on a bucket every host shares, and with no more
        copies than there are hosts to hold them."""
        scaled = [h for h in self.hosts.values() if h.settings.stores.mode == "scalable"]
        if not scaled:
            return []
        problems = []
        telemetry = sorted(h for h in self.hosts if "telemetry" in self.hosts[h].groups)
        factors = {h.settings.stores.replication_factor for h in scaled}
        if len(factors) > 1:
            return [SettingsError(
                "stores.replication_factor",
                f"differs between hosts ({', '.join(sorted(str(f) for f in factors))}): one ring would be told two numbers of copies",
                "set it once, in group_data/all.py or the environment's group data",
            )]
        wanted = scaled[0].settings.stores.replication_factor
        if wanted is not None and wanted > len(telemetry):
            problems.append(SettingsError(
                "stores.replication_factor",
                f"is {wanted}, but the inventory has {len(telemetry)} telemetry host(s) ({', '.join(telemetry) or 'none'}): "
                "the ring cannot place that many copies, and Loki's and Tempo's writes would wait for ingesters that do not exist",
                f"set it to at most {len(telemetry)}, or leave it out (the host count, at most 3)",
            ))
        tempos = [h for h in self.runs["tempo"] if self.hosts[h].settings.traces.tempo.backend != "s3"]
        if tempos and len(self.runs["tempo"]) > 1:
            problems.append(SettingsError(
                "traces.tempo.backend",
                f"is local on {', '.join(tempos)} with stores.mode scalable: each Tempo would keep its blocks on its own disk, "
                "and a query on one host would not find the traces the others flushed",
                'set traces.tempo.backend to "s3" (the object store\'s `tempo` bucket), or stores.mode to "single"',
            ))
        return problems

    def _check_stores_host(self, hosts: list[str]) -> list[SettingsError]:
        """The stores run once: on the telemetry host every host's `stores.host` names (roles/_stores_settings.py).
        `hosts`: those whose settings validated (a defaulted host's choice is not its own)."""
        telemetry = sorted(h for h in self.hosts if "telemetry" in self.hosts[h].groups)
        modes = {self.hosts[h].settings.stores.mode for h in hosts}
        if len(modes) > 1:
            return [SettingsError(
                "stores.mode",
                f"differs between hosts ({', '.join(sorted(modes))}): a store would run scaled out on some hosts and once on another",
                "set stores.mode once, in group_data/all.py or the environment's group data",
            )]
        chosen = {self.hosts[h].settings.stores.host for h in hosts} or {None}
        if len(chosen) > 1:
            return [SettingsError(
                "stores.host",
                f"differs between hosts ({', '.join(sorted(str(c) for c in chosen))}): the gateways would export to one "
                "host while the stores run on another",
                "set stores.host once, in group_data/all.py or the environment's group data",
            )]
        (host,) = chosen
        if host is None:
            if len(telemetry) <= 1:
                return []
            return [SettingsError(
                "stores.host",
                f"is unset and the inventory has {len(telemetry)} telemetry hosts ({', '.join(telemetry)}): the stores run "
                "on one of them, every one runs a gateway",
                f'name the stores\' host in group data, e.g. stores = {{"mode": "single", "host": "{telemetry[0]}"}}',
            )]
        if host not in telemetry:
            return [SettingsError(
                "stores.host",
                f"{host!r} is not a telemetry host of this inventory ({', '.join(telemetry) or 'none'})",
                "name one of the inventory's telemetry hosts",
            )]
        return []

def flow_table() -> list[tuple[str, str, int, str, str, str]]:
    """(listener, protocols, default port, bind, clients, purpose) of every listener of the placement table."""
    rows = []
    for c in COMPONENTS:
        for spec in _specs_of(c):
            clients = sorted({f.client for f in FLOWS if f.listener == spec.name})
            if spec.name == "ssh":
                clients = ["firewall.admin_networks", "grafana_backup (when its git host is in the inventory)"]
            elif spec.scope != "local":
                clients.append("firewall.allow")
            where = {"host": "the host's IP", "local": "127.0.0.1", "any": "all addresses (sshd's own config)"}[spec.scope]
            rows.append((spec.name, "/".join(spec.protocols), spec.port, where, ", ".join(clients) or "this host only", spec.purpose))
    return rows


def _specs_of(component) -> tuple[ListenerSpec, ...]:
    """A component's listeners with the default settings (the docs' table, the names `allow` may use), then those
    only `stores.mode: scalable` adds (its memberlist ports)."""
    specs = component.listeners(_default_settings())
    names = {spec.name for spec in specs}
    specs += tuple(spec for spec in component.listeners(_default_settings(scalable=True)) if spec.name not in names)
    for peers in PEER_LISTENERS:
        if peers.component == component.name:
            specs += peers.listeners(_default_settings())
    return specs


def _default_settings(scalable: bool = False):
    from types import SimpleNamespace

    from pydantic import BaseModel

    from roles._settings import Settings

    defaults = {k: f.default for k, f in Settings.model_fields.items() if isinstance(f.default, BaseModel)}
    if scalable:
        defaults["stores"] = defaults["stores"].model_copy(update={"mode": "scalable"})
    return SimpleNamespace(**defaults)


def _all_spec_names() -> set[str]:
    return {spec.name for c in COMPONENTS for spec in _specs_of(c)}


_HINTS = {
    "node_exporter": "node_exporter.listen_port",
    "prometheus": "prometheus.listen_port",
    "alertmanager": "alerting.listen_port / alerting.cluster_port",
    "grafana": "grafana.http_port / grafana.ha_port",
    "object_store": "object_store.listen_port",
    "jaeger": "traces.otlp_*_port / traces.jaeger.*_port",
    "tempo": "traces.otlp_*_port / traces.tempo.*_port",
    "victorialogs": "victorialogs.port / victorialogs.local_port",
    "loki": "loki.http_port / loki.grpc_port / loki.memberlist_port",
    "otelcol": "otel_collector.metrics_port / health_port",
    "gateway": "otel_collector.grpc_port / http_port",
    "backend": "backend.port",
    "ssh": "firewall.ssh_port",
}


def _setting_hint(listener: str) -> str:
    return _HINTS.get(listener.split(".")[0], listener)


def _group_hint(component: str) -> str:
    for c in COMPONENTS:
        if c.name == component:
            return " or ".join(c.groups)
    return component
