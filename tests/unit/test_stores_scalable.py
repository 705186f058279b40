"""stores.mode scalable, rendered for prod (issue 26): Loki's simple scalable deployment and Tempo's scalable single
binary on every telemetry host, their ring traffic between the telemetry hosts only, every rendered key checked
against the pinned version's reference; stores.mode single renders byte for byte what it did before (649bb63).

Nothing here runs Loki or Tempo: they are AGPL and never enter this workplace. What is proven is the rendering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from roles._environment import REPO
from roles._model import SettingsError, SettingsErrors
from roles._ring import ring_of
from tests.environments import GOOD_SECRETS, context_of, environment as environment_of
from tests.stores_snapshot import environments, snapshot
from tests.unit.test_loki_role import key_paths as loki_key_paths, reference as loki_reference
from tests.unit.test_tempo import unknown_keys as tempo_unknown_keys

pytestmark = pytest.mark.topology

GOLDEN = Path(__file__).parent / "golden" / "single_mode.json"
TEL1, TEL2, MON1, APP1 = "10.20.0.12", "10.20.0.15", "10.20.0.11", "10.20.0.13"


def prod_body(stores: dict, telemetry: int = 2, tel_data: str = "") -> str:
    """A prod inventory with `telemetry` telemetry hosts, every host holding `stores` (host data)."""
    ips = [TEL1, TEL2, "10.20.0.16"][:telemetry]
    tel = ", ".join(f'("tel{i + 1}", {{"address": "{ip}", "stores": _stores{tel_data}}})' for i, ip in enumerate(ips))
    return f"""
_stores = {stores!r}
monitoring = [("mon1", {{"address": "{MON1}", "stores": _stores}})]
telemetry = [{tel}]
app = [("app1", {{"address": "{APP1}", "stores": _stores}})]
"""


SCALABLE = {"mode": "scalable", "host": "tel1"}


@pytest.fixture(scope="module")
def scalable(tmp_path_factory):
    return environment_of(tmp_path_factory.mktemp("scalable"), "prod", prod_body(SCALABLE))


def loki_of(environment, name: str) -> dict:
    from roles import loki

    ctx = context_of(environment, name, GOOD_SECRETS)
    me = ctx.settings
    text = loki.render_config(me.loki, me.retention, ctx.topology.reach("object_store.s3", name), me.object_store.region,
                              ctx.bind("loki.http"), ctx.bind("loki.grpc"), ring=ring_of(ctx, "loki"))
    return yaml.safe_load(text)


def tempo_of(environment, name: str) -> dict:
    from roles import tempo

    ctx = context_of(environment, name, GOOD_SECRETS)
    me = ctx.settings
    binds = {l.name: l.bind for l in ctx.topology.on(name) if l.component == "tempo"}
    config = tempo.render_config(me.traces, ctx.topology.reach("object_store.s3", name), me.object_store.region, binds=binds,
                                 tls=tempo.TLS, ring=ring_of(ctx, "tempo"))
    return yaml.safe_load(tempo.config_text(config))


# --- single mode: unchanged --------------------------------------------------------------------


def test_single_mode_renders_byte_for_byte_what_it_did_before(tmp_path):
    """dev, staging, prod and a prod with two telemetry hosts (stores on tel1): listeners, firewall openings, versitygw,
    Loki's and Tempo's configs and Grafana's store URLs equal the golden file written from 649bb63 (tests/stores_snapshot.py)."""
    golden = json.loads(GOLDEN.read_text())
    now = {env: snapshot(environment) for env, environment in environments(REPO, tmp_path).items()}
    assert json.dumps(now, indent=1, sort_keys=True) == json.dumps(golden, indent=1, sort_keys=True)


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_single_mode_has_no_ring(env):
    from roles._environment import load_environment

    environment = load_environment(REPO / "inventory" / f"{env}.py")
    for host in environment.group("telemetry"):
        ctx = context_of(environment, host.name)
        assert ring_of(ctx, "loki") is None and ring_of(ctx, "tempo") is None
        assert loki_of(environment, host.name)["target"] == "all" and "target" not in tempo_of(environment, host.name)


# --- where things run, and who may reach them ----------------------------------------------------


def test_loki_and_tempo_run_on_every_telemetry_host_and_the_s3_store_once(scalable):
    runs = scalable.topology.runs
    assert runs["loki"] == ("tel1", "tel2") and runs["tempo"] == ("tel1", "tel2")
    assert runs["object_store"] == ("tel1",) and runs["gateway"] == ("tel1", "tel2")
    assert runs["victorialogs"] == () and runs["jaeger"] == ()


def test_the_ring_listeners_bind_the_host_ip(scalable):
    for name, ip in (("tel1", TEL1), ("tel2", TEL2)):
        binds = {l.name: l.bind for l in scalable.topology.on(name)}
        assert binds["loki.grpc"] == f"{ip}:9095" and binds["loki.memberlist"] == f"{ip}:7946"
        assert binds["tempo.grpc"] == f"{ip}:9097" and binds["tempo.memberlist"] == f"{ip}:7947"
        assert binds["tempo.otlp_grpc"] == "127.0.0.1:4417"  # still nobody's but the host's
    # The S3 store, once on stores.host, now on its IP: the other telemetry host's Loki and Tempo write to it.
    assert scalable.topology.bind("tel1", "object_store.s3") == f"{TEL1}:7070"


def test_the_firewall_opens_the_ring_ports_to_the_other_telemetry_hosts_only(scalable):
    ring_ports = ("loki.grpc", "loki.memberlist", "tempo.grpc", "tempo.memberlist")
    for name, peer in (("tel1", TEL2), ("tel2", TEL1)):
        openings = {o.listener: o for o in scalable.topology.openings(name)}
        for listener in ring_ports:
            assert openings[listener].sources == (peer,), (name, listener)
            assert openings[listener].protocol == "tcp"
    tel1 = {o.listener: o.sources for o in scalable.topology.openings("tel1")}
    assert tel1["object_store.s3"] == (TEL2,)  # tel1's own stores use it without the firewall
    assert "object_store.s3" not in {o.listener for o in scalable.topology.openings("tel2")}
    # Neither a monitoring nor an app host gets in to a ring port.
    for name in ("tel1", "tel2"):
        for o in scalable.topology.openings(name):
            if o.listener in ring_ports + ("object_store.s3",):
                assert MON1 not in o.sources and APP1 not in o.sources


def test_the_nftables_ruleset_lets_only_the_peer_reach_the_ring_ports(scalable):
    from roles.firewall import openings_of, render_ruleset

    me = scalable.host("tel2").settings.firewall
    ruleset = render_ruleset(openings_of(context_of(scalable, "tel2")), me.admin_networks, me.ssh_port)
    for port in (9095, 7946, 9097, 7947):
        lines = [line for line in ruleset.splitlines() if f"dport {port} " in line]
        assert lines and all(TEL1 in line for line in lines), (port, lines)
        assert not any(MON1 in line or APP1 in line for line in lines)


def test_each_gateway_exports_to_its_own_hosts_loki_and_tempo(scalable):
    from roles.otel_collector import collector_wiring

    for name, ip in (("tel1", TEL1), ("tel2", TEL2)):
        wiring = collector_wiring(context_of(scalable, name))
        assert wiring.trace_endpoint == f"https://{ip}:4418"
        assert wiring.log_endpoint == f"https://{ip}:3100/otlp/v1/logs"


def test_grafana_reads_the_stores_hosts_read_path(scalable):
    from roles.grafana.peers import grafana_peers

    peers = grafana_peers(context_of(scalable, "mon1"))
    assert peers.logs_url == f"http://{TEL1}:3100" and peers.traces_url == f"http://{TEL1}:3200"


def test_prometheus_scrapes_every_hosts_loki_and_tempo(scalable):
    from roles.prometheus import scrape_jobs

    jobs = {job.name: job for job in scrape_jobs(scalable.topology, scalable.host("mon1").settings)}
    assert [t.address for t in jobs["loki"].targets] == [f"{TEL1}:3100", f"{TEL2}:3100"]
    assert [t.address for t in jobs["tempo"].targets] == [f"{TEL1}:3200", f"{TEL2}:3200"]


# --- Loki 3.7.8, simple scalable -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["tel1", "tel2"])
def test_every_key_of_scalable_loki_is_in_the_pinned_reference(scalable, name):
    keys, _ = loki_reference()
    unknown = sorted(set(loki_key_paths(loki_of(scalable, name))) - keys)
    assert not unknown, f"keys not in Loki's configuration reference: {unknown}"


def test_loki_runs_the_three_targets_in_one_ring_on_the_shared_bucket(scalable):
    for name, ip in (("tel1", TEL1), ("tel2", TEL2)):
        config = loki_of(scalable, name)
        assert config["target"] == "read,write,backend"
        assert config["common"]["ring"] == {"instance_addr": ip, "kvstore": {"store": "memberlist"}}
        assert config["common"]["replication_factor"] == 2
        member = config["memberlist"]
        assert member["join_members"] == [f"{TEL1}:7946", f"{TEL2}:7946"]
        assert member["bind_addr"] == [ip] and member["bind_port"] == 7946
        assert member["advertise_addr"] == ip and member["advertise_port"] == 7946
        # One bucket for both, on stores.host's S3 store; each host's own S3 key (the env file, never the YAML).
        aws = config["storage_config"]["aws"]
        assert aws["endpoint"] == f"{TEL1}:7070" and aws["bucketnames"] == "loki"
        assert aws["access_key_id"] == "${LOKI_S3_ACCESS_KEY}"
        assert config["schema_config"]["configs"][0]["object_store"] == "aws"
        # The compactor (backend target) applies retention from the same policy as in single mode.
        assert config["compactor"]["retention_enabled"] is True and config["compactor"]["delete_request_store"] == "aws"
        # The read path: frontends and queriers find every host's scheduler through its ring.
        assert config["query_scheduler"]["use_scheduler_ring"] is True
        assert (config["server"]["grpc_listen_address"], config["server"]["grpc_listen_port"]) == (ip, 9095)


def test_lokis_grpc_and_memberlist_use_the_environment_cas_certificates(scalable):
    config = loki_of(scalable, "tel2")
    tls = {"tls_enabled": True, "tls_cert_path": "/etc/loki/tls/loki.crt", "tls_key_path": "/etc/loki/tls/loki.key",
           "tls_ca_path": "/etc/loki/tls/ca.crt", "tls_min_version": "VersionTLS12"}
    assert config["server"]["grpc_tls_config"] == {
        "cert_file": "/etc/loki/tls/loki.crt", "key_file": "/etc/loki/tls/loki.key",
        "client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": "/etc/loki/tls/ca.crt"}
    for client in (config["ingester_client"]["grpc_client_config"], config["frontend"]["grpc_client_config"],
                   config["frontend_worker"]["grpc_client_config"], config["query_scheduler"]["grpc_client_config"],
                   config["storage_config"]["tsdb_shipper"]["index_gateway_client"]["grpc_client_config"],
                   config["ruler"]["ruler_client"]):
        assert client == tls
    assert {k: v for k, v in config["memberlist"].items() if k.startswith("tls_")} == tls


def test_the_certificate_the_peers_dial_carries_the_hosts_ip(scalable):
    """Peers reach each other by IP (memberlist join_members, the ring's instance_addr): the host's certificate names it."""
    from roles._tls import server_names

    for name, ip in (("tel1", TEL1), ("tel2", TEL2)):
        assert ip in server_names(scalable.topology, name, "loki.http")[1]
        assert ip in server_names(scalable.topology, name, "tempo.http")[1]


# --- Tempo 2.10.8, scalable single binary ---------------------------------------------------------


@pytest.mark.parametrize("name", ["tel1", "tel2"])
def test_every_key_of_scalable_tempo_is_in_the_pinned_reference(scalable, name):
    assert tempo_unknown_keys(tempo_of(scalable, name)) == []


def test_tempo_runs_the_scalable_single_binary_in_one_ring_on_the_shared_bucket(scalable):
    for name, ip in (("tel1", TEL1), ("tel2", TEL2)):
        config = tempo_of(scalable, name)
        assert config["target"] == "scalable-single-binary"
        assert config["ingester"]["lifecycler"] == {"ring": {"kvstore": {"store": "memberlist"}, "replication_factor": 2}, "address": ip}
        assert config["distributor"]["ring"] == {"kvstore": {"store": "memberlist"}, "instance_addr": ip}
        assert config["compactor"]["ring"] == {"kvstore": {"store": "memberlist"}, "instance_addr": ip}
        assert config["compactor"]["compaction"]["block_retention"] == "336h"
        assert config["memberlist"]["join_members"] == [f"{TEL1}:7947", f"{TEL2}:7947"]
        assert config["querier"]["frontend_worker"]["frontend_address"] == f"{ip}:9097"
        s3 = config["storage"]["trace"]
        assert s3["backend"] == "s3" and s3["s3"]["endpoint"] == f"{TEL1}:7070" and s3["s3"]["bucket"] == "tempo"
        assert config["server"]["grpc_tls_config"]["client_auth_type"] == "RequireAndVerifyClientCert"
        assert config["ingester_client"]["grpc_client_config"]["tls_enabled"] is True
        assert config["querier"]["frontend_worker"]["grpc_client_config"]["tls_ca_path"] == "/etc/tempo/tls/ca.crt"
        assert config["memberlist"]["tls_enabled"] is True


def test_a_typo_in_a_scalable_key_is_caught_by_both_references(scalable):
    keys, _ = loki_reference()
    config = loki_of(scalable, "tel1")
    config["memberlist"]["join_member"] = config["memberlist"].pop("join_members")
    assert "memberlist.join_member" in set(loki_key_paths(config)) - keys
    tempo = tempo_of(scalable, "tel1")
    tempo["memberlist"]["bind_adr"] = tempo["memberlist"].pop("bind_addr")
    assert tempo_unknown_keys(tempo) == ["memberlist.bind_adr"]


# --- the S3 store, shared -------------------------------------------------------------------------


def test_versitygw_serves_the_peers_on_the_host_ip_and_the_role_calls_it_there(scalable):
    from roles import object_store
    from roles._placement import s3_accounts

    me = scalable.host("tel1").settings
    spec = object_store.service_spec(me, GOOD_SECRETS, scalable.topology.bind("tel1", "object_store.s3"))
    assert f"--port={TEL1}:7070" in spec.exec_start and spec.ready_url == f"http://{TEL1}:7070/health"
    script = object_store.accounts_script(s3_accounts(me), 7070, "us-east-1", TEL1)
    assert f"base=http://{TEL1}:7070" in script and "127.0.0.1" not in script
    files = object_store.account_files(s3_accounts(me)[0], GOOD_SECRETS, 7070, TEL1)
    assert files["loki.owner.url"].startswith(f'url = "http://{TEL1}:7070/')


# --- refusals -----------------------------------------------------------------------------------


def test_three_hosts_give_three_copies_and_a_factor_above_the_host_count_is_refused(tmp_path):
    (tmp_path / "three").mkdir()
    (tmp_path / "two").mkdir()
    three = environment_of(tmp_path / "three", "prod", prod_body(SCALABLE, telemetry=3))
    assert loki_of(three, "tel3")["common"]["replication_factor"] == 3
    with pytest.raises(SettingsError) as caught:
        environment_of(tmp_path / "two", "prod", prod_body({**SCALABLE, "replication_factor": 3})).topology
    err = SettingsErrors.of(caught.value)[0]
    assert err.key == "stores.replication_factor" and "2 telemetry host" in err.problem and "at most 2" in err.fix


def test_scalable_tempo_on_local_disk_is_refused(tmp_path):
    body = prod_body(SCALABLE, tel_data=', "traces": {"store": "tempo", "retention": "336h", "tempo": {"backend": "local"}}')
    with pytest.raises(SettingsError) as caught:
        environment_of(tmp_path, "prod", body).topology
    err = SettingsErrors.of(caught.value)[0]
    assert err.key == "traces.tempo.backend" and "tel1, tel2" in err.problem and '"s3"' in err.fix


def test_a_single_telemetry_host_in_scalable_mode_is_a_ring_of_one(tmp_path):
    one = environment_of(tmp_path, "prod", prod_body(SCALABLE, telemetry=1))
    config = loki_of(one, "tel1")
    assert config["common"]["replication_factor"] == 1 and config["memberlist"]["join_members"] == [f"{TEL1}:7946"]


def test_the_erasure_command_sends_its_delete_request_to_the_stores_hosts_loki(scalable, monkeypatch):
    """With Loki on every telemetry host, the erase command picks stores.host's (the delete requests live in the
    shared bucket, so any host's compactor could take them; one fixed choice keeps the audit trail simple)."""
    from roles.retention import erase

    monkeypatch.setattr(erase, "_inventory", lambda env: scalable)
    monkeypatch.setattr(erase, "erasure_identity", lambda env: ("ca.crt", ("erasure.crt", "erasure.key")))
    store = erase.resolve_store("prod", None, None)
    assert store.kind == "loki" and store.base_url == f"https://{TEL1}:3100"


@pytest.mark.parametrize("role", ["loki", "tempo"])
def test_the_roles_deploy_function_renders_the_ring_and_the_tls_files(scalable, monkeypatch, role):
    """The role as deploy.py calls it (the operations recorded, never run): tel2's service carries the scalable config,
    its certificate files, and is checked by the store's own verifier before the swap."""
    import importlib

    module = importlib.import_module(f"roles.{role}")
    specs = []
    monkeypatch.setattr(module, "release_service", lambda spec=None, *args, **kwargs: specs.append(spec or args[0]))
    expiries = []
    monkeypatch.setattr(module, "certificate_expiry", lambda *args: expiries.append(args))
    # Its front's operations (roles/_front.py) are checked in tests/unit/test_tls_stores.py.
    monkeypatch.setattr(module, "authenticating_front", lambda ctx, front: None)
    ctx = context_of(scalable, "tel2", GOOD_SECRETS)
    block = ctx.settings.loki if role == "loki" else ctx.settings.traces
    getattr(getattr(module, role), "_inner", getattr(module, role))(block, ctx)
    (spec,) = specs
    config = yaml.safe_load(next(c.content for c in spec.configs if c.dest == module.CONFIG))
    assert config["target"] == module.SCALABLE_TARGET
    assert config["memberlist"]["advertise_addr"] == TEL2
    assert {c.dest for c in spec.configs} >= {f"/etc/{role}/tls/ca.crt", f"/etc/{role}/tls/{role}.crt", f"/etc/{role}/tls/{role}.key"}
    assert "-config.expand-env=true" in spec.exec_start
    assert next(c.validate for c in spec.configs if c.dest == module.CONFIG)
    # Its certificate's end is exported for CertificateExpiresSoon, the one it serves.
    [(textfile_dir, service, certificate)] = expiries
    assert service == role and certificate.cert_pem == next(c.content for c in spec.configs if c.dest == f"/etc/{role}/tls/{role}.crt")


@pytest.mark.parametrize("role", ["loki", "tempo"])
def test_in_single_mode_the_store_keeps_no_certificate_of_its_own_and_removes_an_old_one(tmp_path, monkeypatch, role):
    """Its front serves TLS: the store gets no TLS files, and the ones an earlier release left (with their expiry
    metric, which would page CertificateExpiresSoon for a certificate no one renews) are removed."""
    import importlib

    module = importlib.import_module(f"roles.{role}")
    specs, removed, expiries = [], [], []
    monkeypatch.setattr(module, "release_service", lambda spec=None, *args, **kwargs: specs.append(spec or args[0]))
    monkeypatch.setattr(module, "certificate_expiry", lambda *args: expiries.append(args))
    monkeypatch.setattr(module, "no_certificate", lambda textfile_dir, service, why: removed.append(service))
    monkeypatch.setattr(module, "authenticating_front", lambda ctx, front: None)
    single = environment_of(tmp_path, "prod", prod_body({"mode": "single", "host": "tel1"}))
    ctx = context_of(single, "tel1", GOOD_SECRETS)
    getattr(getattr(module, role), "_inner", getattr(module, role))(ctx.settings.loki if role == "loki" else ctx.settings.traces, ctx)
    (spec,) = specs
    assert not any("/tls/" in c.dest for c in spec.configs) and not spec.config_dirs
    assert removed == [role] and expiries == []


def test_the_object_store_role_binds_and_calls_the_host_ip_in_scalable_mode(scalable, monkeypatch):
    """versitygw's role as deploy.py calls it on stores.host (operations recorded): the unit binds tel1's IP, and the
    buckets and accounts are made through that address, not the loopback the store no longer listens on."""
    from types import SimpleNamespace

    from roles import object_store
    from tests.unit.op_recorder import RecordedOp

    calls = []
    monkeypatch.setattr(object_store, "release_service", lambda spec, *args, **kwargs: calls.append(("release", spec)))
    monkeypatch.setattr(object_store, "validated_file", lambda **kw: calls.append(("file", kw)) or RecordedOp(kw["name"], False))
    monkeypatch.setattr(object_store, "bucket", lambda **kw: calls.append(("bucket", kw)))
    monkeypatch.setattr(object_store, "files", SimpleNamespace(directory=lambda **kw: None, file=lambda **kw: None))
    monkeypatch.setattr(object_store, "server", SimpleNamespace(shell=lambda **kw: calls.append(("shell", kw))))
    monkeypatch.setattr(object_store, "host", SimpleNamespace(get_fact=lambda *a, **kw: "in sync"))
    ctx = context_of(scalable, "tel1", GOOD_SECRETS)
    object_store.object_store._inner(ctx.settings.object_store, ctx)
    (spec,) = [c[1] for c in calls if c[0] == "release"]
    assert f"--port={TEL1}:7070" in spec.exec_start
    assert {c[1]["address"] for c in calls if c[0] == "bucket"} == {TEL1}
    script = next(c[1]["content"] for c in calls if c[0] == "file" and c[1]["name"] == "versitygw: accounts script")
    assert f"base=http://{TEL1}:7070" in script


def test_a_scalable_prod_passes_the_whole_preflight_and_a_bad_factor_stops_it(monkeypatch, tmp_path):
    """preflight.preflight, as the pyinfra CLI runs it before connecting (secrets, versions, topology)."""
    from roles import preflight
    from tests.environments import write_inventory

    monkeypatch.setenv("SENTINEL_SECRETS_DIR", str(tmp_path / "secrets"))
    (tmp_path / "secrets").mkdir()
    for name, value in GOOD_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(preflight, "_validated", {})
    # prod_body's host names are the lab's (mon1, tel1...): the check that a host is in one inventory file only
    # would compare them with inventory/lab.py, which is not what this test is about.
    monkeypatch.setattr("roles._environment.INVENTORY_DIR", tmp_path / "no-other-inventories")
    (tmp_path / "good").mkdir()
    (tmp_path / "bad").mkdir()
    preflight.preflight(write_inventory(tmp_path / "good", "prod", prod_body(SCALABLE)))
    monkeypatch.setattr(preflight, "_validated", {})
    with pytest.raises(SettingsError) as caught:
        preflight.preflight(write_inventory(tmp_path / "bad", "prod", prod_body({**SCALABLE, "replication_factor": 3})))
    assert "stores.replication_factor" in {e.key for e in SettingsErrors.of(caught.value)}


def test_hosts_that_disagree_on_the_replication_factor_are_refused(tmp_path):
    body = prod_body(SCALABLE).replace('("tel2", {"address": "10.20.0.15", "stores": _stores', '("tel2", {"address": "10.20.0.15", "stores": {**_stores, "replication_factor": 1}')
    with pytest.raises(SettingsError) as caught:
        environment_of(tmp_path, "prod", body).topology
    err = SettingsErrors.of(caught.value)[0]
    assert err.key == "stores.replication_factor" and "differs" in err.problem and "once" in err.fix
