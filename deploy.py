"""The Sentinel observability stack: which roles run on which host groups.

    pyinfra inventory/<env>.py deploy.py

The inventory's preflight built and validated the run's one Environment and its
secrets before any host was contacted; each role gets its own settings, the
secrets and the peers it needs as arguments.
"""

from pyinfra import host

from roles.alertmanager import alertmanager, monitoring_peers
from roles.backend import backend_env
from roles.backend.sentry_release import sentry_release
from roles.backend_standin import backend_standin
from roles.grafana import grafana
from roles.grafana.peers import grafana_peers
from roles.grafana_backup import grafana_backup
from roles.jaeger import jaeger
from roles.loki import loki
from roles.node_exporter import TEXTFILE_GROUP, node_exporter
from roles.object_store import object_store
from roles.otel_collector import collector_wiring, gateway_endpoint, otel_collector
from roles.preflight import validated_environment
from roles.prometheus import prometheus
from roles.tempo import tempo
from roles.victorialogs import victorialogs

environment, secrets = validated_environment()
me = environment.host(host.name).settings
hosts_by_group = environment.by_group()

node_exporter(me)

if "telemetry" in host.groups:
    object_store(me, secrets)
    # The one trace store of the environment (traces.store); the gateway exports to it.
    if me.traces.store == "jaeger":
        jaeger(me.traces, me.artifact_base_url, me.systemd_hardening)
    else:
        tempo(me.traces, me.object_store, secrets, me.artifact_base_url, me.systemd_hardening)
    # The one log store (logs.store), before the collector: the gateway's first start finds it.
    if me.logs.store == "victorialogs":
        victorialogs(me.victorialogs, me.retention, me.artifact_base_url, me.systemd_hardening)
    else:
        loki(
            me.loki, me.retention, secrets, f"127.0.0.1:{me.object_store.listen_port}", me.object_store.region,
            me.artifact_base_url, me.systemd_hardening,
        )

if "telemetry" in host.groups or "app" in host.groups:
    # Gateway on telemetry hosts, agent on app hosts, both in one collector on a host in both.
    otel_collector(me.otel_collector, me.artifact_base_url, me.systemd_hardening, collector_wiring(me, host.groups, hosts_by_group))

if "monitoring" in host.groups:
    prometheus(me, hosts_by_group)
    alertmanager(me, secrets, monitoring_peers(host.name, hosts_by_group["monitoring"]))
    # Before grafana(): the backup job's user, group and /etc/grafana-backup exist when
    # the Grafana role writes the job's service-account token there (0640 root:grafana-backup).
    if me.grafana_backup.enabled:
        grafana_backup(me.grafana_backup, secrets, me.artifact_base_url, me.node_exporter.textfile_dir, TEXTFILE_GROUP)
    grafana(
        me.grafana, me.artifact_base_url, me.systemd_hardening, secrets,
        me.alerting, me.environment, me.address, grafana_peers(me, hosts_by_group),
    )

if "app" in host.groups:
    backend_env(me, secrets, [gateway_endpoint(s) for _, s in hosts_by_group["telemetry"]])
    sentry_release(me.backend, secrets)
    if me.backend.standin:
        backend_standin(me)
