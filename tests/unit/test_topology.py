"""The topology: every listener from the placement table, every flow declared once, and the
binds, peers, scrape targets and firewall openings derived from them. Bad input is refused
before any host is touched, with the key and the fix."""

from __future__ import annotations

import pytest

from roles import docs
from roles._environment import REPO, load_environment
from roles._model import SettingsError, SettingsErrors
from roles._topology import FLOWS, Topology
from roles.firewall import FirewallLockout, openings_of, refuse_lockout
from tests.environments import context_of, environment as environment_of

pytestmark = pytest.mark.topology

LAB_BODY = """
monitoring = [("mon1", {"address": "10.213.0.11"})]
telemetry = [("tel1", {"address": "10.213.0.12"})]
app = [("app1", {"address": "10.213.0.13"})]
"""
INTRUDER = "10.213.0.66"


ADDRESSES = {"mon1": "10.213.0.11", "tel1": "10.213.0.12", "app1": "10.213.0.13"}
GROUPS = {"mon1": "monitoring", "tel1": "telemetry", "app1": "app"}


def body_with(env: str = "lab", **host_data) -> str:
    """The lab's three hosts; `host_data` adds host data per host (host data wins over group data)."""
    lines = []
    for name, address in ADDRESSES.items():
        if env != "lab":
            address = address.replace("10.213", "10.20")
        lines.append(f"{GROUPS[name]} = [({name!r}, {{'address': {address!r}, **{host_data.get(name, {})!r}}})]")
    return "\n".join(lines) + "\n"


def lab(tmp_path, body: str = LAB_BODY, **host_data):
    return environment_of(tmp_path, "lab", body_with(**host_data) if host_data else body)


def firewall_with(rule: dict | None = None, networks=("10.213.0.1/32",)) -> dict:
    return {"firewall": {"admin_networks": list(networks), "allow": [rule] if rule else []}}


def refused(tmp_path, body: str, env: str = "lab") -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        environment_of(tmp_path, env, body).topology
    return caught.value


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_no_listener_of_ours_binds_every_address(env):
    topology = load_environment(REPO / "inventory" / f"{env}.py").topology
    for listener in topology.listeners:
        if listener.name == "ssh":
            continue  # sshd: not the toolkit's to configure; the firewall still guards it
        host_ip = topology.hosts[listener.host].settings.ip
        assert listener.bind_ip in (host_ip, "127.0.0.1"), listener


# What `ss -ltnup` showed on each lab host (sshd aside: it binds every address, and is not the
# toolkit's to configure), as ip:port and protocols; the lab's hosts are lab/paths.py's.
SEEN_LISTENING = {
    "mon1": ["10.213.0.11:9090", "10.213.0.11:9093", "10.213.0.11:9094 tcp udp", "10.213.0.11:9100"],  # Grafana: files only in the lab
    "mon2": ["10.213.0.14:9090", "10.213.0.14:9093", "10.213.0.14:9094 tcp udp", "10.213.0.14:9100"],
    "tel1": [  # the stores (group_data/lab.py stores.host), a member of the VictoriaLogs cluster and a gateway
        "10.213.0.12:16686", "10.213.0.12:4317", "10.213.0.12:4318", "10.213.0.12:4418", "10.213.0.12:8888",
        "10.213.0.12:8889", "10.213.0.12:9100", "10.213.0.12:9428", "127.0.0.1:13133", "127.0.0.1:13134",
        "127.0.0.1:16685", "127.0.0.1:4417", "127.0.0.1:7070", "127.0.0.1:9429",
        "127.0.0.1:14418", "127.0.0.1:16687", "127.0.0.1:18888",  # Jaeger itself, behind its front (which holds 4418, 16686, 8888)
        "10.213.0.12:9430", "127.0.0.1:9431",  # the storage node's front, the access tier (stores.mode scalable)
    ],
    # a gateway and a member of the VictoriaLogs cluster (seen with `ss -ltn` on 2026-12-07)
    "tel2": ["10.213.0.15:4317", "10.213.0.15:4318", "10.213.0.15:8889", "10.213.0.15:9100", "127.0.0.1:13133",
             "10.213.0.15:9428", "10.213.0.15:9430", "127.0.0.1:9429", "127.0.0.1:9431"],
    "app1": ["10.213.0.13:3000", "10.213.0.13:8889", "10.213.0.13:9100", "127.0.0.1:13133", "127.0.0.1:4319"],  # 4319: the agent, for the backend
}


def lab_hosts_body() -> str:
    """The lab's own hosts (lab/paths.py), with their addresses."""
    from lab.paths import HOSTS

    groups: dict[str, list] = {}
    for name, host in HOSTS.items():
        for group in host.groups:
            groups.setdefault(group, []).append((name, {"address": host.address}))
    return "".join(f"{group} = {entries!r}\n" for group, entries in groups.items())


def test_the_lab_binds_exactly_what_the_hosts_were_seen_listening_on(tmp_path):
    topology = lab(tmp_path, body=lab_hosts_body()).topology

    def seen(listener) -> str:
        return listener.bind + ("" if listener.spec.protocols == ("tcp",) else " " + " ".join(listener.spec.protocols))

    binds = {host: sorted(seen(l) for l in topology.on(host) if l.name != "ssh") for host in topology.hosts}
    assert binds == {host: sorted(seen) for host, seen in SEEN_LISTENING.items()}


def test_every_flow_names_a_listener_and_a_client_of_the_placement_table():
    from roles._placement import COMPONENTS

    components = {c.name for c in COMPONENTS}
    listeners = {row[0] for row in docs_rows()}
    for flow in FLOWS:
        assert flow.client in components, flow
        assert flow.listener in listeners, flow


def docs_rows():
    from roles._topology import flow_table

    return flow_table()


def test_openings_follow_the_flows_and_never_name_the_intruder(tmp_path):
    environment = lab(tmp_path)
    topology = environment.topology
    tel = {o.listener: o.sources for o in topology.openings("tel1")}
    # The agent on app1 reaches the gateway over OTLP/gRPC; Prometheus scrapes from mon1; the controller is allowed by group data.
    assert tel["gateway.otlp_grpc"] == ("10.213.0.1/32", "10.213.0.13")
    assert tel["gateway.otlp_http"] == ("10.213.0.1/32",)  # no flow of the stack: the operators' tools only
    # The backend sends to its host's agent on the loopback: nothing opened for it.
    assert "agent.otlp_http" not in {o.listener for o in topology.openings("app1")}
    assert tel["victorialogs.http"] == ("10.213.0.1/32", "10.213.0.11")  # Prometheus (and Grafana) on mon1
    assert "object_store.s3" not in tel and "jaeger.health" not in tel  # local listeners open nothing
    mon = {o.listener: o.sources for o in topology.openings("mon1")}
    assert mon["prometheus.web"] == ("10.213.0.1/32", "10.213.0.12")  # remote write from the gateway
    for host in ("mon1", "tel1", "app1"):
        for opening in topology.openings(host):
            assert INTRUDER not in opening.sources
    # The firewall role gets the same openings, commented with the listener's name.
    firewall_openings = openings_of(context_of(environment, "tel1"))
    assert {o.comment for o in firewall_openings} == set(tel) - {"ssh"} | ({"ssh"} if tel.get("ssh") else set())


def test_the_backup_job_reaches_ssh_on_its_git_host_only(tmp_path):
    topology = lab(tmp_path).topology
    assert {o.listener: o.sources for o in topology.openings("tel1")}["ssh"] == ("10.213.0.11",)  # git@10.213.0.12
    assert "ssh" not in {o.listener for o in topology.openings("app1")}


def test_a_changed_store_port_reaches_every_consumer(tmp_path):
    """victorialogs.port and .storage_port move the store's binds, the gateway's exporter (the lab's cluster: the
    storage node's port), Prometheus's targets and the firewall openings."""
    from roles.otel_collector import collector_wiring
    from roles.prometheus import scrape_jobs

    environment = lab(tmp_path, tel1={"victorialogs": {"port": 9500, "storage_port": 9501}})
    tel, mon = context_of(environment, "tel1"), context_of(environment, "mon1")
    assert tel.bind("victorialogs.http") == "10.213.0.12:9500" and tel.bind("victorialogs.storage") == "10.213.0.12:9501"
    assert collector_wiring(tel).log_endpoint == "https://10.213.0.12:9501/insert/opentelemetry/v1/logs"
    jobs = {j.name: [t.address for t in j.targets] for j in scrape_jobs(mon.topology, mon.settings)}
    assert jobs["victorialogs"] == ["10.213.0.12:9500"] and jobs["victorialogs-storage"] == ["10.213.0.12:9501"]
    assert {9500, 9501} <= {o.port for o in environment.topology.openings("tel1")}
    assert not {9428, 9430} & {o.port for o in environment.topology.openings("tel1")}


def test_a_changed_grafana_port_reaches_the_alert_links(tmp_path):
    from roles.prometheus import grafana_url

    environment = lab(tmp_path, mon1={"grafana": {"install_binary": False, "http_port": 3300}})
    assert grafana_url(context_of(environment, "mon1")) == "https://10.213.0.11:3300"  # Grafana serves https only


def test_the_alert_links_follow_grafanas_public_root_url_unless_set_themselves(tmp_path):
    from roles.prometheus import grafana_url

    public = {"grafana": {"install_binary": False, "root_url": "https://grafana.example.test/"}}
    (tmp_path / "own").mkdir()
    environment = lab(tmp_path, mon1=public)
    assert grafana_url(context_of(environment, "mon1")) == "https://grafana.example.test"
    environment = lab(tmp_path / "own", mon1={**public, "alerting": {"grafana_url": "https://dash.example.test/"}})
    assert grafana_url(context_of(environment, "mon1")).rstrip("/") == "https://dash.example.test"


# --- bad input, refused before any host is touched ---------------------------------------


def test_a_port_used_twice_on_one_host_is_refused(tmp_path):
    err = refused(tmp_path, body_with(tel1={"victorialogs": {"port": 9100}}))
    assert err.key == "host tel1" and "9100/tcp" in err.problem
    assert "node_exporter.metrics" in err.problem and "victorialogs.http" in err.problem
    assert "victorialogs.port" in err.fix


def test_a_flow_to_a_component_that_runs_nowhere_is_refused(tmp_path):
    # No telemetry host, and so no stores' host (the lab's group data names tel1).
    no_stores = {"stores": {"mode": "single"}}
    body = (f'monitoring = [("mon1", {{"address": "10.213.0.11", **{no_stores!r}}})]\n'
            f'app = [("app1", {{"address": "10.213.0.13", **{no_stores!r}}})]\n')
    err = refused(tmp_path, body)
    assert err.key == "host app1" and "gateway.otlp_grpc" in err.problem and "telemetry" in err.fix


def test_an_allowed_source_for_a_listener_that_runs_nowhere_is_refused(tmp_path):
    rule = {"listener": "tempo.http", "sources": ["10.213.0.1/32"], "reason": "x"}
    err = refused(tmp_path, body_with(tel1=firewall_with(rule)))
    assert err.key.endswith("firewall.allow[0].listener") and "runs on no host" in err.problem


def test_an_allowed_source_may_not_open_an_internal_listener(tmp_path):
    rule = {"listener": "object_store.s3", "sources": ["10.0.0.0/8"], "reason": "office"}
    err = refused(tmp_path, body_with(tel1=firewall_with(rule)))
    assert err.key == "host tel1.firewall.allow[0].listener" and "127.0.0.1" in err.problem


def test_an_unknown_listener_in_allow_is_refused(tmp_path):
    rule = {"listener": "grafana.htp", "sources": ["10.0.0.0/8"], "reason": "office"}
    err = refused(tmp_path, body_with(mon1=firewall_with(rule)))
    assert "not a listener" in err.problem and "grafana.http" in err.fix


@pytest.mark.parametrize(
    "networks, env, problem",
    [
        (["10.213.0.1"], "lab", None),  # one address is a /32: accepted
        (["10.213.0.0/33"], "lab", "not an IP network"),
        (["10.213.0.1/24"], "lab", "host bits"),
        (["office"], "lab", "not an IP network"),
        (["0.0.0.0/0"], "prod", "whole internet"),
        ([], "lab", "is empty"),
    ],
)
def test_admin_networks(tmp_path, networks, env, problem, monkeypatch):
    from tests.environments import GOOD_SECRETS

    for name, value in GOOD_SECRETS.items():
        monkeypatch.setenv(name, value)
    text = body_with(env, mon1=firewall_with(networks=networks))
    if problem is None:
        environment_of(tmp_path, env, text).topology
        return
    with pytest.raises(SettingsError) as caught:
        environment_of(tmp_path, env, text).topology
    assert "firewall.admin_networks" in caught.value.key and problem in caught.value.problem + caught.value.fix


def test_a_name_without_an_ip_is_refused(tmp_path):
    err = refused(tmp_path, LAB_BODY.replace('"address": "10.213.0.13"', '"address": "app1.internal"'))
    assert err.key == "host app1.ip" and '"ip"' in err.fix


TWO_TELEMETRY = LAB_BODY.replace(
    'telemetry = [("tel1", {"address": "10.213.0.12"})]',
    'telemetry = [("tel1", {"address": "10.213.0.12"}), ("tel2", {"address": "10.213.0.15"})]',
)


def with_stores(body: str, **stores_by_host) -> str:
    """`body` with host data `stores` on the named hosts (host data wins over group data)."""
    for name, stores in stores_by_host.items():
        body = body.replace(f'("{name}", {{', f'("{name}", {{"stores": {stores!r}, ', 1)
    return body


UNSET = {"mode": "single"}  # stores.host left out (the lab's group data names tel1)
# The stores once, on tel1 (the lab's group data runs the VictoriaLogs cluster: stores.mode scalable).
SINGLE = {"mode": "single", "host": "tel1"}


def single_but(**stores_by_host) -> str:
    """TWO_TELEMETRY in stores.mode single on tel1, but for the hosts named."""
    return with_stores(TWO_TELEMETRY, **{name: SINGLE for name in ("mon1", "tel1", "tel2", "app1")} | stores_by_host)


def test_two_telemetry_hosts_without_the_stores_host_are_refused(tmp_path):
    err = refused(tmp_path, with_stores(TWO_TELEMETRY, mon1=UNSET, tel1=UNSET, tel2=UNSET, app1=UNSET))
    assert [e.key for e in SettingsErrors.of(err)] == ["stores.host"]
    assert "unset" in err.problem and "tel1, tel2" in err.problem
    assert '"host": "tel1"' in err.fix


def test_one_telemetry_host_needs_no_stores_host(tmp_path):
    environment = environment_of(tmp_path, "lab", with_stores(LAB_BODY, mon1=UNSET, tel1=UNSET, app1=UNSET))
    assert environment.topology.runs["jaeger"] == ("tel1",) and environment.topology.runs["gateway"] == ("tel1",)


@pytest.mark.parametrize("named", ["app1", "mon1", "tel3"])
def test_a_stores_host_that_is_not_a_telemetry_host_is_refused(tmp_path, named):
    stores = {"mode": "single", "host": named}
    err = refused(tmp_path, with_stores(TWO_TELEMETRY, mon1=stores, tel1=stores, tel2=stores, app1=stores))
    # First (the stores then run nowhere, so the gateways' flows to them are refused after it).
    assert err.key == "stores.host"
    assert repr(named) in err.problem and "not a telemetry host" in err.problem and "tel1, tel2" in err.problem
    assert "telemetry hosts" in err.fix


def test_differing_stores_hosts_are_refused(tmp_path):
    err = refused(tmp_path, single_but(tel2={"mode": "single", "host": "tel2"}))
    assert [e.key for e in SettingsErrors.of(err)] == ["stores.host"]
    assert "differs" in err.problem and "tel1" in err.problem and "tel2" in err.problem
    assert "once" in err.fix


@pytest.mark.parametrize("collector", [{"gateway_pool_name": "gw.elsewhere.internal"}, {"grpc_port": 14317}])
def test_gateways_that_answer_to_another_pool_name_or_port_are_refused(tmp_path, collector):
    """The agents reach every gateway as dns:///<pool name>:<port>: a gateway named or bound otherwise would fail their TLS
    check or never be reached."""
    body = TWO_TELEMETRY.replace('("tel2", {', f'("tel2", {{"otel_collector": {collector!r}, ', 1)
    err = refused(tmp_path, body)
    assert "gateway_pool_name" in err.key and "differs between hosts" in err.problem and "tel2" in err.problem
    assert "once" in err.fix


def test_the_stores_run_on_the_stores_host_only_and_every_telemetry_host_runs_a_gateway(tmp_path):
    """stores.mode single, stores.host tel1: tel2 runs a gateway that exports to tel1's stores."""
    from roles.otel_collector import collector_wiring

    environment = lab(tmp_path, body=single_but())
    topology = environment.topology
    for store in ("jaeger", "victorialogs", "object_store"):
        assert topology.runs[store] == ("tel1",), store
    assert topology.runs["gateway"] == ("tel1", "tel2") and topology.runs["otelcol"] == ("tel1", "tel2", "app1")
    assert not {l.component for l in topology.on("tel2")} & {"jaeger", "victorialogs", "object_store"}
    for name in ("tel1", "tel2"):  # both gateways export to tel1's stores and label their span metrics
        wiring = collector_wiring(context_of(environment, name))
        assert wiring.trace_endpoint == "https://10.213.0.12:4418"
        assert wiring.log_endpoint.startswith("https://10.213.0.12:9428/")
        assert wiring.gateway_label == name
    # tel2's gateway reaches tel1's stores through tel1's firewall.
    tel1 = {o.listener: o.sources for o in topology.openings("tel1")}
    assert "10.213.0.15" in tel1["jaeger.otlp_http"] and "10.213.0.15" in tel1["victorialogs.http"]
    # The agent balances over both gateways: the pool's name, every gateway's IP.
    pool = environment.host("app1").settings.otel_collector.gateway_pool_name
    assert topology.pool("gateway.otlp_grpc") == (pool, ["10.213.0.12", "10.213.0.15"])
    assert topology.pool("victorialogs.http") is None
    agent = collector_wiring(context_of(environment, "app1"))
    assert agent.gateway_endpoint == f"dns:///{pool}:4317" and agent.gateway_pool == (pool, ("10.213.0.12", "10.213.0.15"))
    for name in ("tel1", "tel2"):
        assert {o.listener: o.sources for o in topology.openings(name)}["gateway.otlp_grpc"] == ("10.213.0.1/32", "10.213.0.13")


def test_two_monitoring_hosts_both_take_part(tmp_path):
    """Prometheus scrapes and alerts to both, the gateway remote-writes to both, the Alertmanagers gossip."""
    from roles.alertmanager import monitoring_peers
    from roles.otel_collector import collector_wiring

    body = LAB_BODY.replace(
        'monitoring = [("mon1", {"address": "10.213.0.11"})]',
        'monitoring = [("mon1", {"address": "10.213.0.11"}), ("mon2", {"address": "10.213.0.14"})]',
    )
    environment = lab(tmp_path, body=body)
    assert monitoring_peers(context_of(environment, "mon1")) == ["10.213.0.14:9094"]
    assert collector_wiring(context_of(environment, "tel1")).remote_write_url == (
        "https://10.213.0.11:9090/api/v1/write", "https://10.213.0.14:9090/api/v1/write",
    )
    gossip = {o.protocol: o.sources for o in environment.topology.openings("mon2") if o.listener == "alertmanager.cluster"}
    assert gossip == {"tcp": ("10.213.0.11",), "udp": ("10.213.0.11",)}


def test_the_controller_is_refused_when_its_own_ssh_would_be_cut():
    refuse_lockout("mon1", None, ["10.213.0.1/32"], 22)  # not over SSH: nothing to cut
    refuse_lockout("mon1", "10.213.0.1", ["10.213.0.1/32"], 22)
    with pytest.raises(FirewallLockout) as caught:
        refuse_lockout("mon1", "10.213.0.66", ["10.213.0.1/32"], 22)
    assert "10.213.0.66/32" in str(caught.value) and "firewall.admin_networks" in str(caught.value)


def test_the_lockout_check_runs_before_the_firewall_role_adds_an_operation(tmp_path, monkeypatch):
    """The fact is read first: with a foreign SSH source, the role raises and adds nothing."""
    import roles.firewall as role

    added = []
    monkeypatch.setattr(role, "firewall", lambda *a, **k: added.append(a))
    import pyinfra

    monkeypatch.setattr(pyinfra, "host", type("H", (), {"get_fact": lambda self, fact, **kw: "192.0.2.7"})())
    environment = lab(tmp_path)
    ctx = context_of(environment, "mon1")
    with pytest.raises(FirewallLockout):
        role.host_firewall._inner(ctx.settings.firewall, ctx)
    assert added == []
    monkeypatch.setattr(pyinfra, "host", type("H", (), {"get_fact": lambda self, fact, **kw: "10.213.0.1"})())
    role.host_firewall._inner(ctx.settings.firewall, ctx)
    assert len(added) == 1


def test_the_architecture_table_is_generated_and_fresh():
    text = docs.ARCHITECTURE_FILE.read_text()
    assert text == docs.render_architecture(text), "docs/architecture.md is stale: run python -m roles.docs"
    assert "| `victorialogs.http` |" in text and "| `ssh` |" in text


def test_a_topology_is_built_once_per_environment(tmp_path):
    environment = lab(tmp_path)
    assert environment.topology is environment.topology and isinstance(environment.topology, Topology)


def test_an_ipv6_host_binds_and_is_reached_in_brackets(tmp_path):
    """An IPv6 `ip`: host:port in brackets where Go reads host:port, bare where a key takes the address alone."""
    from roles.otel_collector import collector_wiring, render_wired
    from roles.tempo import render_config as render_tempo

    body = body_with(tel1={"ip": "fd00::12", "address": "fd00::12"}).replace("'address': '10.213.0.12', ", "")
    environment = lab(tmp_path, body=body)
    tel = context_of(environment, "tel1")
    assert tel.bind("gateway.otlp_http") == "[fd00::12]:4318"
    config = render_wired(tel.settings.otel_collector, collector_wiring(tel))
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] == "[fd00::12]:4318"
    assert config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]["host"] == "fd00::12"
    assert context_of(environment, "app1").urls("gateway.otlp_http") == ["http://[fd00::12]:4318"]
    # The agent's /etc/hosts line for the pool takes the address bare.
    from roles.otel_collector import hosts_block

    pool = collector_wiring(context_of(environment, "app1")).gateway_pool
    assert pool == ("otel-gateways.sentinel.internal", ("fd00::12",))
    assert hosts_block(*pool) == "fd00::12 otel-gateways.sentinel.internal"
    # A key that takes the address alone (Tempo's, given an IPv6 bind for the test: it binds the loopback behind its front).
    binds = {"tempo.http_local": "[fd00::12]:3201", "tempo.grpc": "127.0.0.1:9097", "tempo.otlp_http_local": "[fd00::12]:14418",
             "tempo.otlp_grpc": "127.0.0.1:4417"}
    server = render_tempo(tel.settings.traces, "127.0.0.1:7070", binds=binds)["server"]
    assert (server["http_listen_address"], server["http_listen_port"]) == ("fd00::12", 3201)
    # nginx's listen takes the brackets (a store's front on the host's IP).
    from roles._front import render_config as render_front
    from roles.jaeger.front import FRONT

    front_binds = {name: tel.bind(name) for route in FRONT.routes for name in (route.listener, route.upstream)}
    assert "listen [fd00::12]:16686 ssl;" in render_front(FRONT, tel.topology, "tel1", front_binds)


def test_differing_stores_modes_are_refused(tmp_path):
    err = refused(tmp_path, single_but(tel2={"mode": "scalable", "host": "tel1"}))
    assert [e.key for e in SettingsErrors.of(err)] == ["stores.mode"]
    assert "differs" in err.problem and "scalable" in err.problem and "single" in err.problem
    assert "once" in err.fix


def test_in_scalable_mode_a_store_that_does_not_scale_out_still_runs_on_the_stores_host_only(tmp_path):
    """Jaeger and the S3 store have no scaled-out mode: `stores.host` keeps them in one place."""
    scalable = {"mode": "scalable", "host": "tel1"}
    environment = environment_of(tmp_path, "lab", with_stores(TWO_TELEMETRY, mon1=scalable, tel1=scalable, tel2=scalable, app1=scalable))
    for store in ("jaeger", "object_store"):
        assert environment.topology.runs[store] == ("tel1",), store
