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
from roles.node_exporter import TEXTFILE_GROUP, node_exporter
from roles.object_store import object_store
from roles.preflight import validated_environment
from roles.prometheus import prometheus

environment, secrets = validated_environment()
me = environment.host(host.name).settings
hosts_by_group = environment.by_group()

node_exporter(me)

if "telemetry" in host.groups:
    object_store(me, secrets)

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
    backend_env(me, secrets, [s.address for _, s in hosts_by_group["telemetry"]])
    sentry_release(me.backend, secrets)
    if me.backend.standin:
        backend_standin(me)
