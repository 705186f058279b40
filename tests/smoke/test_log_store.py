"""The chosen log store runs, answers and keeps the retention policy (any inventory).

Loki (dev, staging, prod) or VictoriaLogs (lab), from `logs.store` in group data, on every host that runs it
(stores.host; with stores.mode scalable, every telemetry host: the VictoriaLogs cluster's storage nodes, each
with its access tier, docs/architecture.md "The log store cluster").
The collector agent and gateway have their own smoke tests (tests/smoke/test_otel_collector.py).
"""

import pytest

from roles.retention.logsql import longest_period
from roles.victorialogs import ENFORCE_UNIT, FLAGS_FILE
from roles.victorialogs.access import FLAGS_FILE as ACCESS_FLAGS_FILE, NAME as ACCESS_NAME

pytestmark = pytest.mark.retention


def _store(host):
    return host.settings.logs.store


def _url(host, path: str) -> str:
    # VictoriaLogs itself listens on the loopback; its host listener is the authenticating front, which admits
    # the host's own identities to none of these paths (roles/victorialogs/front.py): ask the store directly.
    if _store(host) == "victorialogs":
        return host.local("victorialogs.local", path)
    return host.local(f"{_store(host)}.http", path)


def test_unit_active_and_enabled(log_store_host):
    service = log_store_host.testinfra.service(_store(log_store_host))
    assert service.is_running
    assert service.is_enabled


def test_port_listening(log_store_host):
    assert log_store_host.listening(f"{_store(log_store_host)}.http")


def test_health(log_store_host):
    path = "/health" if _store(log_store_host) == "victorialogs" else "/ready"
    out = log_store_host.curl(_url(log_store_host, path))
    assert out.strip() in ("OK", "ready")


def test_metrics_for_prometheus(log_store_host):
    metrics = log_store_host.curl(_url(log_store_host, "/metrics"))
    if _store(log_store_host) == "loki":
        expected = "loki_build_info"
    else:  # a cluster's storage node counts what it stores; the access tier counts what it took in (not scraped)
        expected = "vl_storage_rows" if _scaled_out(log_store_host) else "vl_rows_ingested_total"
    assert expected in metrics


def test_config_is_private(log_store_host):
    store = _store(log_store_host)
    for path in ([FLAGS_FILE] if store == "victorialogs" else ["/etc/loki/loki.yml", "/etc/loki/s3.env"]):
        f = log_store_host.testinfra.file(path)
        assert (f.user, f.group, f.mode) == ("root", store, 0o640), path


def test_victorialogs_runs_with_the_policys_longest_retention_and_its_enforcement_timer(log_store_host):
    host = log_store_host
    if _store(host) != "victorialogs":
        pytest.skip("Loki applies the policy in its compactor: see test_loki_retention_is_the_policy")
    flags = host.curl(_url(host, "/flags"))
    assert f'-retentionPeriod="{longest_period(host.settings.retention)}"' in flags
    if _scaled_out(host):  # a storage node: the access tier takes /delete/* and runs it here
        assert '-internaldelete.enable="true"' in flags and '-delete.enable="true"' not in flags
    else:
        assert '-delete.enable="true"' in flags
    if host.settings.stores.host in (None, host.name):
        timer = host.testinfra.service(f"{ENFORCE_UNIT}.timer")
        assert timer.is_running and timer.is_enabled
    else:  # the job runs once, on stores.host (its access tier deletes on every node): not installed here
        assert not host.testinfra.file(f"/etc/systemd/system/{ENFORCE_UNIT}.timer").exists


def _scaled_out(host) -> bool:
    return host.has("victorialogs.access")


def test_the_cluster_s_access_tier_runs_beside_every_storage_node(log_store_host):
    host = log_store_host
    if _store(host) != "victorialogs" or not _scaled_out(host):
        pytest.skip("stores.mode single: no VictoriaLogs cluster")
    service = host.testinfra.service(ACCESS_NAME)
    assert service.is_running and service.is_enabled
    assert host.listening("victorialogs.access")
    assert host.curl(host.local("victorialogs.access", "/health")).strip() == "OK"
    flags = host.curl(host.local("victorialogs.access", "/flags"))
    nodes = ",".join(f"{l.address}:{l.port}" for l in host.topology.instances("victorialogs.http"))
    assert f'-storageNode="{nodes}"' in flags and '-delete.enable="true"' in flags
    assert '-search.allowPartialResponse="false"' in flags
    f = host.testinfra.file(ACCESS_FLAGS_FILE)
    assert (f.user, f.group, f.mode) == ("root", ACCESS_NAME, 0o640)
    key = host.testinfra.file(f"/etc/{ACCESS_NAME}/tls/{ACCESS_NAME}.key")
    assert (key.user, key.group, key.mode) == ("root", ACCESS_NAME, 0o640)


def test_loki_retention_is_the_policy(log_store_host):
    if _store(log_store_host) != "loki":
        pytest.skip("VictoriaLogs: see test_victorialogs_runs_with_the_policys_longest_retention_and_its_enforcement_timer")
    import yaml

    from roles._model import duration_seconds

    # Loki prints durations its own way (720h may read back as 30d): compare seconds.
    running = yaml.safe_load(log_store_host.curl(_url(log_store_host, "/config")))
    policy = log_store_host.settings.retention
    assert running["compactor"]["retention_enabled"] is True
    assert duration_seconds(running["limits_config"]["retention_period"]) == duration_seconds(policy.default_period)
    rules = {r["selector"]: duration_seconds(r["period"]) for r in running["limits_config"]["retention_stream"]}
    assert len(rules) == len(policy.streams)
    assert sorted(rules.values()) == sorted(duration_seconds(r.period) for r in policy.streams)
