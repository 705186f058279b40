"""stores.mode scalable with VictoriaLogs: a storage node and an access tier on every telemetry host
(roles/victorialogs/cluster.py), rendered from the topology. The lab runs it (tests/e2e/test_victorialogs_cluster.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from roles._front import render_config
from roles._service import unit_file
from roles.retention import RetentionPolicy
from roles.victorialogs import cluster, flags, service_spec
from roles.victorialogs.front import FRONT, front
from tests.environments import context_of, environment

pytestmark = pytest.mark.topology

TEL1, TEL2 = "10.213.0.12", "10.213.0.15"


def _lab(tmp_path, mode: str):
    return environment(tmp_path, "lab", f"""
_stores = {{"mode": "{mode}", "host": "tel1"}}
monitoring = [("mon1", {{"address": "10.213.0.11", "stores": _stores}})]
telemetry = [("tel1", {{"address": "{TEL1}", "stores": _stores}}), ("tel2", {{"address": "{TEL2}", "stores": _stores}})]
app = [("app1", {{"address": "10.213.0.13", "stores": _stores}})]
""")


@pytest.fixture(scope="module")
def scalable(tmp_path_factory):
    return _lab(tmp_path_factory.mktemp("vl-cluster"), "scalable")


def test_single_mode_has_one_node_and_no_cluster(tmp_path):
    env = _lab(tmp_path, "single")
    assert env.topology.runs["victorialogs"] == ("tel1",)
    assert not env.topology.instances("victorialogs.storage") and not env.topology.instances("victorialogs.access_local")
    assert "internaldelete.enable" not in flags(context_of(env, "tel1").settings.victorialogs, RetentionPolicy())


def test_every_telemetry_host_runs_a_storage_node_and_an_access_tier(scalable):
    assert scalable.topology.runs["victorialogs"] == ("tel1", "tel2")
    assert scalable.topology.runs["jaeger"] == ("tel1",) and scalable.topology.runs["object_store"] == ("tel1",)
    for name, ip in (("tel1", TEL1), ("tel2", TEL2)):
        ctx = context_of(scalable, name)
        assert ctx.bind("victorialogs.storage") == f"{ip}:9430"
        assert ctx.bind("victorialogs.access_local") == "127.0.0.1:9431" and ctx.bind("victorialogs.local") == "127.0.0.1:9429"
        # The S3 store serves only its own host: no scaled store of the lab uses it.
        if name == "tel1":
            assert ctx.bind("object_store.s3").startswith("127.0.0.1:")


def test_the_access_tier_reaches_every_storage_node_over_tls_with_the_stores_own_certificate(scalable):
    ctx = context_of(scalable, "tel2")
    nodes = cluster.storage_nodes(ctx)
    assert nodes == [f"{TEL1}:9430", f"{TEL2}:9430"]
    spec = service_spec(ctx.settings.victorialogs, RetentionPolicy(), ctx.bind("victorialogs.local"),
                        cluster.access_spec(nodes, ctx.bind("victorialogs.access_local")))
    [access] = spec.companions
    text = access.configs[-1].content
    assert f"VL_storageNode={TEL1}:9430,{TEL2}:9430\n" in text and "VL_storageNode_tls=true\n" in text
    assert "VL_storageNode_tlsCertFile=/etc/victorialogs-access/tls/victorialogs-access.crt\n" in text
    assert "VL_httpListenAddr=127.0.0.1:9431\n" in text and "VL_delete_enable=true\n" in text
    assert "storageDataPath" not in text  # it keeps no data
    # The storage node takes the deletes the access tier fans out.
    assert "VL_internaldelete_enable=true\n" in spec.configs[0].content
    # One release: the companion runs the storage node's binary, as the store's user.
    unit = unit_file(replace(access, release="victorialogs"))  # as the building block runs a companion
    assert "ExecStart=/opt/victorialogs/current/victoria-logs-prod" in unit and "User=victorialogs" in unit


def test_the_storage_nodes_front_admits_the_access_tiers_to_internal_paths_only(scalable):
    ctx = context_of(scalable, "tel1")
    cluster_front = front(True)
    assert front(False) is FRONT
    binds = {name: ctx.bind(name) for route in cluster_front.routes for name in (route.listener, route.upstream)}
    config = render_config(cluster_front, ctx.topology, "tel1", binds)
    storage = config[config.index("# What each identity may call on victorialogs.storage."):]
    storage = storage[:storage.index("}")]
    assert '"~^victorialogs /internal/insert$" 1;' in storage and '"~^victorialogs /internal/select/" 1;' in storage
    assert '"~^victorialogs /internal/delete/" 1;' in storage and '"~^prometheus /metrics$" 1;' in storage
    assert '"~^gateway /insert/" 1;' in storage  # each gateway writes to its own host's storage node
    assert "grafana" not in storage and "erasure" not in storage
    # Both hosts' access tiers hold the identity; the first listener passes to the access tier.
    assert '"CN=tel1.victorialogs" victorialogs;' in config and '"CN=tel2.victorialogs" victorialogs;' in config
    assert "server 127.0.0.1:9431;" in config and "server 127.0.0.1:9429;" in config
    # A storage node that is down closes the connection (the access tier counts it unreachable).
    assert config.count("return 444;") == 1 and config.count("error_page 502 504 = @store_down;") == 1


def test_only_the_other_telemetry_host_and_prometheus_reach_a_storage_node(scalable):
    """The other host's access tier and mon1's Prometheus (not even the lab's controller: its tests read a storage node
    on its host); a host's own access tier reaches its node over the loopback interface."""
    for name, other in (("tel1", TEL2), ("tel2", TEL1)):
        [opening] = [o for o in scalable.topology.openings(name) if o.listener == "victorialogs.storage"]
        assert set(opening.sources) == {other, "10.213.0.11"}


def test_prometheus_scrapes_every_storage_node_over_tls(scalable):
    from roles.prometheus import scrape_jobs

    ctx = context_of(scalable, "mon1")
    [job] = [j for j in scrape_jobs(ctx.topology, ctx.settings) if j.name == "victorialogs-storage"]
    assert {t.address for t in job.targets} == {f"{TEL1}:9430", f"{TEL2}:9430"} and job.tls


def test_each_gateway_writes_to_its_own_hosts_storage_node(scalable):
    """Not through the access tier, which acknowledges lines from its memory and drops them when it stops."""
    from roles.otel_collector import collector_wiring

    for name, ip in (("tel1", TEL1), ("tel2", TEL2)):
        assert collector_wiring(context_of(scalable, name)).log_endpoint == f"https://{ip}:9430/insert/opentelemetry/v1/logs"
