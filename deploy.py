"""The Sentinel observability stack: which roles run on which host groups.

    pyinfra inventory/<env>.py deploy.py
"""

from pyinfra import host

from roles import _settings
from roles.alertmanager import alertmanager
from roles.backend import backend_env
from roles.backend.sentry_release import sentry_release
from roles.backend_standin import backend_standin
from roles.grafana_backup import grafana_backup
from roles.node_exporter import TEXTFILE_GROUP, node_exporter
from roles.object_store import object_store
from roles.prometheus import prometheus

node_exporter()

if "telemetry" in host.groups:
    object_store()

if "monitoring" in host.groups:
    prometheus()
    alertmanager()
    _host_settings = _settings.settings_for(host)
    if _host_settings.grafana_backup.enabled:
        grafana_backup(
            _host_settings.grafana_backup,
            textfile_dir=_host_settings.node_exporter.textfile_dir,
            textfile_group=TEXTFILE_GROUP,
            artifact_base_url=_host_settings.artifact_base_url,
        )

if "app" in host.groups:
    backend_env()
    sentry_release()
    if _settings.settings_for(host).backend.standin:
        backend_standin()
