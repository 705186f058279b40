"""The chosen log store runs, answers and keeps the retention policy (any inventory).

Loki (dev, staging, prod) or VictoriaLogs (lab), from `logs.store` in group data.
The collector agent and gateway have their own smoke tests (tests/smoke/test_otel_collector.py).
"""

import pytest

from roles.retention.logsql import longest_period
from roles.victorialogs import ENFORCE_UNIT, FLAGS_FILE

pytestmark = pytest.mark.retention


def _store(host):
    return host.settings.logs.store


def _url(host, path: str) -> str:
    # The store itself listens on the loopback; its host listener is its authenticating front, which admits
    # the host's own identities to none of these paths (roles/victorialogs/front.py, roles/loki/front.py):
    # ask the store directly.
    return host.local(f"{_store(host)}.local", path)


def test_unit_active_and_enabled(stores_host):
    service = stores_host.testinfra.service(_store(stores_host))
    assert service.is_running
    assert service.is_enabled


def test_port_listening(stores_host):
    assert stores_host.listening(f"{_store(stores_host)}.http")  # its front
    assert stores_host.listening(f"{_store(stores_host)}.local")
    assert stores_host.testinfra.service(f"{_store(stores_host)}-front").is_running


def test_health(stores_host):
    path = "/health" if _store(stores_host) == "victorialogs" else "/ready"
    out = stores_host.curl(_url(stores_host, path))
    assert out.strip() in ("OK", "ready")


def test_metrics_for_prometheus(stores_host):
    metrics = stores_host.curl(_url(stores_host, "/metrics"))
    assert ("vl_rows_ingested_total" if _store(stores_host) == "victorialogs" else "loki_build_info") in metrics


def test_config_is_private(stores_host):
    store = _store(stores_host)
    for path in ([FLAGS_FILE] if store == "victorialogs" else ["/etc/loki/loki.yml", "/etc/loki/s3.env"]):
        f = stores_host.testinfra.file(path)
        assert (f.user, f.group, f.mode) == ("root", store, 0o640), path


def test_victorialogs_runs_with_the_policys_longest_retention_and_its_enforcement_timer(stores_host):
    if _store(stores_host) != "victorialogs":
        pytest.skip("Loki applies the policy in its compactor: see test_loki_retention_is_the_policy")
    flags = stores_host.curl(_url(stores_host, "/flags"))
    assert f'-retentionPeriod="{longest_period(stores_host.settings.retention)}"' in flags
    assert '-delete.enable="true"' in flags
    timer = stores_host.testinfra.service(f"{ENFORCE_UNIT}.timer")
    assert timer.is_running and timer.is_enabled


def test_loki_retention_is_the_policy(stores_host):
    if _store(stores_host) != "loki":
        pytest.skip("VictoriaLogs: see test_victorialogs_runs_with_the_policys_longest_retention_and_its_enforcement_timer")
    import yaml

    from roles._model import duration_seconds

    # Loki prints durations its own way (720h may read back as 30d): compare seconds.
    running = yaml.safe_load(stores_host.curl(_url(stores_host, "/config")))
    policy = stores_host.settings.retention
    assert running["compactor"]["retention_enabled"] is True
    assert duration_seconds(running["limits_config"]["retention_period"]) == duration_seconds(policy.default_period)
    rules = {r["selector"]: duration_seconds(r["period"]) for r in running["limits_config"]["retention_stream"]}
    assert len(rules) == len(policy.streams)
    assert sorted(rules.values()) == sorted(duration_seconds(r.period) for r in policy.streams)


def test_the_front_refuses_the_delete_api_to_an_identity_of_this_host(stores_host):
    """Only the erasure command (and VictoriaLogs' own retention job) delete: node_exporter's identity, which this
    host holds, is refused by the front (roles/victorialogs/front.py, roles/loki/front.py)."""
    from roles._tls import TlsPaths

    node = TlsPaths("node_exporter")
    path = "/delete/active_tasks" if _store(stores_host) == "victorialogs" else "/loki/api/v1/delete"
    status = stores_host.testinfra.check_output("curl -s -o /dev/null -w '%%{http_code}' --cacert %s --cert %s --key %s %s",
                                                node.ca, node.cert, node.key, stores_host.local(f"{_store(stores_host)}.http", path))
    assert status == "403", status


def test_each_member_of_a_victorialogs_cluster_runs_its_storage_node_and_access_tier(telemetry_host):
    """stores.mode scalable (roles/victorialogs/cluster.py): every telemetry host holds a storage node behind its
    front's second listener, and an access tier that lists every host's storage node."""
    if telemetry_host.name not in telemetry_host.topology.runs["victorialogs"] or telemetry_host.settings.stores.mode != "scalable":
        pytest.skip(f"{telemetry_host.name} is no member of a VictoriaLogs cluster")
    for unit in ("victorialogs", "victorialogs-access", "victorialogs-front"):
        assert telemetry_host.testinfra.service(unit).is_running, unit
    assert telemetry_host.listening("victorialogs.storage") and telemetry_host.listening("victorialogs.access_local")
    flags = telemetry_host.curl(telemetry_host.local("victorialogs.access_local", "/flags"))
    nodes = sorted(f"{l.ip}:{l.port}" for l in telemetry_host.topology.instances("victorialogs.storage"))
    assert f'-storageNode="{",".join(nodes)}"' in flags and '-storageNode.tls="true"' in flags
    assert telemetry_host.curl(telemetry_host.local("victorialogs.access_local", "/health")).strip() == "OK"
