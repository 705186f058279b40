"""The VictoriaLogs cluster (issue 26, stores.mode scalable): placement, flows, the front's routing, the access tier.

In single mode nothing changes: the front renders byte for byte what it rendered before the cluster
(tests/unit/golden/victorialogs-front-single.conf, rendered from main at 649bb63).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from roles._placement import component
from roles._service import ServiceSpec, unit_file
from roles._service.quoting import parse_env_file
from roles._tls import TlsPaths
from roles.victorialogs import flags, flags_env
from roles.victorialogs.access import NAME as ACCESS_NAME, access_flags, access_spec, access_tier, storage_nodes
from roles.victorialogs.front import ACCESS, ACCESS_TIER, ACCESS_UPSTREAM, identities, render_config
from roles.victorialogs.settings import VictoriaLogsSettings
from tests.environments import context_of, environment
from tests.mirror_binaries import MISSING_TOOL

GOLDEN = Path(__file__).parent / "golden" / "victorialogs-front-single.conf"


def _lab(mode: str) -> str:
    """The lab's five hosts with `stores` set on every host (host data beats the lab's group data)."""
    return f"""
_s = {{"mode": "{mode}", "host": "tel1"}}
monitoring = [("mon1", {{"address": "10.213.0.11", "stores": _s}}), ("mon2", {{"address": "10.213.0.14", "stores": _s}})]
telemetry = [("tel1", {{"address": "10.213.0.12", "stores": _s}}), ("tel2", {{"address": "10.213.0.15", "stores": _s}})]
app = [("app1", {{"address": "10.213.0.13", "stores": _s}})]
"""


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return environment(tmp_path_factory.mktemp("single"), "lab", _lab("single"))


@pytest.fixture(scope="module")
def scalable(tmp_path_factory):
    return environment(tmp_path_factory.mktemp("scalable"), "lab", _lab("scalable"))


def _front(env, host: str) -> str:
    ctx = context_of(env, host)
    mine = any(l.name == ACCESS_UPSTREAM for l in ctx.topology.on(host))
    return render_config(ctx.topology, host, ctx.bind("victorialogs.http"), ctx.bind("victorialogs.local"),
                         access=ctx.bind(ACCESS_UPSTREAM) if mine else "")


def _rules(config: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for who, pattern in re.findall(r'"~\^([a-z_-]+) ([^"]+)" 1;', config):
        found.setdefault(who, []).append(pattern)
    return found


# --- placement and flows -------------------------------------------------------------------------


def test_single_mode_runs_one_node_on_stores_host_and_no_access_tier(single):
    runs = single.topology.runs
    assert runs["victorialogs"] == ("tel1",) and runs["victorialogs_access"] == ()
    assert not single.topology.instances(ACCESS_UPSTREAM)


def test_scalable_mode_runs_a_node_and_an_access_tier_on_every_telemetry_host(scalable):
    runs = scalable.topology.runs
    assert runs["victorialogs"] == ("tel1", "tel2") and runs["victorialogs_access"] == ("tel1", "tel2")
    # The stores that do not scale stay on stores.host.
    assert runs["jaeger"] == ("tel1",) and runs["object_store"] == ("tel1",)
    assert component("victorialogs").scales and component("victorialogs_access").scales
    for host in ("tel1", "tel2"):
        assert scalable.topology.bind(host, ACCESS_UPSTREAM) == "127.0.0.1:9430"  # the loopback only
        assert scalable.topology.bind(host, "victorialogs.local") == "127.0.0.1:9429"


def test_each_node_s_front_is_opened_to_the_other_host_s_access_tier_by_the_flow(scalable, single):
    def sources(env, host):
        return {o.listener: set(o.sources) for o in env.topology.openings(host)}["victorialogs.http"]

    assert "10.213.0.12" in sources(scalable, "tel2")  # tel1's access tier (and gateway) -> tel2's node
    assert "10.213.0.15" in sources(scalable, "tel1")
    assert any(f.client == ACCESS_TIER for _, f in scalable.topology.clients("victorialogs.http"))
    assert not [h for h, f in single.topology.clients("victorialogs.http") if f.client == ACCESS_TIER]


def test_clients_outside_the_cluster_use_stores_host_s_front_and_the_gateways_their_own(scalable):
    from roles.otel_collector import log_store_endpoint

    topology = scalable.topology
    assert topology.reach("victorialogs.http", "mon1") == "10.213.0.12:9428"  # Grafana, from either monitoring host
    assert topology.reach("victorialogs.http", "mon2") == "10.213.0.12:9428"
    for host, ip in (("tel1", "10.213.0.12"), ("tel2", "10.213.0.15")):
        logs = context_of(scalable, host).settings.logs
        assert log_store_endpoint(logs, topology, host) == f"https://{ip}:9428/insert/opentelemetry/v1/logs"
    assert topology.store_instance("victorialogs.http").host == "tel1"  # the erasure command's store
    # A listener that is no scaled-out store's still has no "default" instance.
    with pytest.raises(LookupError):
        topology.store_instance("otelcol.metrics")


def test_grafana_s_logs_datasource_is_stores_host_s_front(scalable):
    from roles.grafana.peers import grafana_peers

    assert grafana_peers(context_of(scalable, "mon2")).logs_url == "http://10.213.0.12:9428"


# --- the front ------------------------------------------------------------------------------------


def test_single_mode_front_is_byte_identical_to_the_single_node_s(single):
    assert _front(single, "tel1") == GOLDEN.read_text()


def test_scalable_front_admits_the_same_identities_to_the_same_public_paths(single, scalable):
    before, after = _rules(_front(single, "tel1")), _rules(_front(scalable, "tel1"))
    assert after.pop(ACCESS_TIER) == ["/internal/insert$", "/internal/select/", "/internal/delete/", r"/internal/force_flush$"]
    assert after == before
    names = dict(identities(scalable.topology, "tel2"))
    assert {cn for cn, kind in names.items() if kind == ACCESS_TIER} == {"tel1.victorialogs_access", "tel2.victorialogs_access"}


def test_only_the_access_tiers_reach_a_node_s_cluster_api(scalable):
    rules = _rules(_front(scalable, "tel2"))
    internal = {who for who, patterns in rules.items() for p in patterns if p.startswith("/internal/") and p != r"/internal/force_flush$"}
    assert internal == {ACCESS_TIER}
    assert [p for p in rules["operator"] if p.startswith("/internal/")] == [r"/internal/force_flush$"]
    assert "/internal/" not in str(ACCESS["gateway"] + ACCESS["grafana"] + ACCESS["prometheus"])


def test_scalable_front_routes_public_paths_to_the_access_tier_and_internal_ones_to_the_node(scalable):
    config = _front(scalable, "tel2")
    assert "server 127.0.0.1:9429;" in config and "server 127.0.0.1:9430;" in config
    route = re.search(r'map "\$vl_client \$uri" \$vl_upstream \{(.*?)\}', config, re.S).group(1)
    assert "default victorialogs_access;" in route
    assert f'"~^{ACCESS_TIER} /internal/" victorialogs;' in route
    assert '"~^[^ ]* /(health|metrics|flags)$" victorialogs;' in route
    assert config.count("proxy_pass http://$vl_upstream;") == 2 and "proxy_pass http://victorialogs;" not in config
    # A node that is down closes the connection: the access tier counts it unavailable, not misconfigured.
    internal = config[config.index("location /internal/"):]
    assert "error_page 502 504 = @node_down;" in internal and "return 444;" in internal
    assert internal.count("return 403;") == 1 and internal.count("return 400;") == 1


@pytest.mark.skipif(not shutil.which("nginx"), reason=f"{MISSING_TOOL} nginx (the host checks the config before the swap)")
def test_nginx_accepts_the_scalable_front(scalable, tmp_path):
    from roles._pki import CertificateAuthority

    ca = CertificateAuthority.open("lab", tmp_path / "pki")
    leaf = ca.issue("tel2", "victorialogs", ("tel2",), ("127.0.0.1",))
    paths = TlsPaths("victorialogs-front", base=str(tmp_path))
    (tmp_path / "victorialogs-front" / "tls").mkdir(parents=True)
    for path, text in ((paths.ca, leaf.ca_pem), (paths.cert, leaf.cert_pem), (paths.key, leaf.key_pem)):
        open(path, "w").write(text)
    config = render_config(scalable.topology, "tel2", "127.0.0.1:19428", "127.0.0.1:19429", paths, str(tmp_path), access="127.0.0.1:19430")
    (tmp_path / "nginx.conf").write_text(config)
    result = subprocess.run(["nginx", "-t", "-e", "stderr", "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --- the storage node and the access tier -----------------------------------------------------------


def test_a_cluster_node_deletes_what_the_access_tiers_ask_and_has_no_public_delete():
    from roles.retention import RetentionPolicy

    policy = RetentionPolicy()
    single, node = flags(VictoriaLogsSettings(), policy), flags(VictoriaLogsSettings(), policy, scalable=True)
    assert single["delete.enable"] == "true" and "internaldelete.enable" not in single
    assert node["internaldelete.enable"] == "true" and "delete.enable" not in node
    assert {k: v for k, v in node.items() if k != "internaldelete.enable"} == {k: v for k, v in single.items() if k != "delete.enable"}
    assert "VL_internaldelete_enable=true\n" in flags_env(VictoriaLogsSettings(), policy, scalable=True)


def test_the_access_tier_fans_out_to_every_front_with_its_own_identity(scalable):
    ctx = context_of(scalable, "tel2")
    nodes = storage_nodes(ctx)
    assert nodes == ["10.213.0.12:9428", "10.213.0.15:9428"]  # sorted by host: the same order on every access tier
    assert storage_nodes(context_of(scalable, "tel1")) == nodes
    values = access_flags(ctx.settings.victorialogs, "127.0.0.1:9430", nodes)
    assert values["storageNode"] == "10.213.0.12:9428,10.213.0.15:9428" and values["storageNode.tls"] == "true"
    tls = TlsPaths(ACCESS_NAME)
    assert (values["storageNode.tlsCAFile"], values["storageNode.tlsCertFile"], values["storageNode.tlsKeyFile"]) == (tls.ca, tls.cert, tls.key)
    assert values["delete.enable"] == "true" and values["search.allowPartialResponse"] == "false"
    assert values["httpListenAddr"] == "127.0.0.1:9430"
    spec, certificate = access_tier(ctx.settings.victorialogs, ctx)
    assert certificate.name == "tel2.victorialogs_access"
    assert [c.dest for c in spec.configs] == [tls.ca, tls.cert, tls.key, "/etc/victorialogs-access/flags.env"]
    flags_file = spec.configs[-1]
    assert parse_env_file(flags_file.content)["VL_storageNode"] == "10.213.0.12:9428,10.213.0.15:9428"
    assert flags_file.validate.endswith("-version") and "{bin}/victoria-logs-prod" in flags_file.validate
    assert spec.ready_url == "http://127.0.0.1:9430/health"


def test_the_access_tier_is_a_second_unit_of_the_same_release():
    spec = access_spec(VictoriaLogsSettings(), "127.0.0.1:9430", ["10.0.0.1:9428"])
    assert (spec.name, spec.release, spec.release_name, spec.account) == ("victorialogs-access", "victorialogs", "victorialogs", "victorialogs-access")
    unit = unit_file(spec)
    assert "ExecStart=/opt/victorialogs/current/victoria-logs-prod" in unit
    assert "User=victorialogs-access" in unit and "EnvironmentFile=/etc/victorialogs-access/flags.env" in unit
    assert "ProtectSystem=strict" in unit and "ReadWritePaths" not in unit  # it stores nothing
    with pytest.raises(ValueError):
        access_flags(VictoriaLogsSettings(), "", [])


def test_the_building_block_installs_a_release_once_for_its_siblings(monkeypatch):
    import roles._service as block
    from roles._service.artifacts import Artifact

    calls: list = []

    class Op:
        def __init__(self, name):
            self.name = name

        def did_change(self):
            return False

    def record(kind):
        return lambda *a, **kw: calls.append((kind, kw.get("name") or (a[0].name if a else ""))) or Op(kw.get("name"))

    for name in ("service_account", "service_dirs", "release_archive", "validated_file"):
        monkeypatch.setattr(block, name, record(name))
    monkeypatch.setattr(block, "files", type("F", (), {"link": staticmethod(record("link"))}))
    monkeypatch.setattr(block, "run_service", lambda spec, hardening, code_changes, config_changes: calls.append(
        ("run_service", spec.name, tuple(op.name for op in code_changes), tuple(op.name for op in config_changes))))
    monkeypatch.setattr(block, "resolve", lambda name, base, arch: Artifact(name, "1.52.2", f"{base}/{name}.tar.gz", "0" * 64, name, ("x",)))
    monkeypatch.setattr(block, "debian_arch", lambda: "amd64")
    main = ServiceSpec("victorialogs", "node", ("{bin}/x",))
    sibling = access_spec(VictoriaLogsSettings(), "127.0.0.1:9430", ["10.0.0.1:9428"])
    block.release_service._inner(main, "http://mirror", True, siblings=(sibling,))
    assert [c for c in calls if c[0] == "release_archive"] == [("release_archive", "victorialogs: release 1.52.2")]
    runs = [c for c in calls if c[0] == "run_service"]
    assert [r[1] for r in runs] == ["victorialogs", "victorialogs-access"]
    assert runs[1][2] == runs[0][2] == ("victorialogs: release 1.52.2", "victorialogs: current version")  # a new release restarts both
    assert runs[1][3][-1] == "victorialogs-access: config /etc/victorialogs-access/flags.env"
    with pytest.raises(ValueError, match="release"):
        block.release_service._inner(main, "http://mirror", True, siblings=(ServiceSpec("other", "x", ("{bin}/x",)),))


def _role_calls(monkeypatch, env, host: str) -> list[tuple[str, object]]:
    import roles.node_exporter
    import roles.victorialogs as role

    calls: list = []

    class Op:
        def did_change(self):
            return False

    class Ops:
        def __init__(self, prefix):
            self.prefix = prefix

        def __getattr__(self, name):
            return lambda **kw: calls.append((f"{self.prefix}.{name}", kw)) or Op()

    monkeypatch.setattr(role, "release_service", lambda **kw: calls.append(("release_service", kw)))
    monkeypatch.setattr(role, "victorialogs_front", lambda ctx, certificate: calls.append(("front", ctx.name)))
    monkeypatch.setattr(role, "validated_file", lambda **kw: calls.append(("validated_file", kw)) or Op())
    monkeypatch.setattr(role, "files", Ops("files"))
    monkeypatch.setattr(role, "systemd", Ops("systemd"))
    monkeypatch.setattr(roles.node_exporter, "certificate_expiry", lambda d, service, cert: calls.append(("expiry", service)))
    ctx = context_of(env, host)
    role.victorialogs._inner(ctx.settings.victorialogs, ctx)
    return calls


def test_the_role_runs_the_access_tier_beside_the_node_and_the_retention_job_once(monkeypatch, scalable, single):
    def summary(calls):
        [release] = [kw for name, kw in calls if name == "release_service"]
        jobs = [kw["dest"] for name, kw in calls if name == "validated_file" and "retention" in kw["dest"]]
        return [s.name for s in release["siblings"]], "VL_internaldelete_enable=true" in release["spec"].configs[0].content, jobs

    siblings, cluster, jobs = summary(_role_calls(monkeypatch, scalable, "tel1"))
    assert siblings == ["victorialogs-access"] and cluster and "/etc/systemd/system/victorialogs-retention.timer" in jobs
    siblings, cluster, jobs = summary(_role_calls(monkeypatch, scalable, "tel2"))
    assert siblings == ["victorialogs-access"] and cluster and jobs == []  # the job runs on stores.host only
    calls = _role_calls(monkeypatch, scalable, "tel2")
    assert ("expiry", "victorialogs-access") in calls and ("front", "tel2") in calls
    siblings, cluster, jobs = summary(_role_calls(monkeypatch, single, "tel1"))
    assert siblings == [] and not cluster and "/etc/systemd/system/victorialogs-retention.timer" in jobs
