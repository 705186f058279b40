"""The Sentinel observability stack: which roles run on which host groups.

    pyinfra inventory/<env>.py deploy.py
"""

from pyinfra import host

from roles import _settings
from roles.alertmanager import alertmanager
from roles.backend import backend_env
from roles.backend.sentry_release import sentry_release
from roles.backend_standin import backend_standin
from roles.grafana import grafana
from roles.grafana.wiring import arguments_for as grafana_arguments
from roles.node_exporter import node_exporter
from roles.object_store import object_store
from roles.prometheus import prometheus

node_exporter()

if "telemetry" in host.groups:
    object_store()

if "monitoring" in host.groups:
    prometheus()
    alertmanager()
    grafana(**grafana_arguments(host))

if "app" in host.groups:
    backend_env()
    sentry_release()
    if _settings.settings_for(host).backend.standin:
        backend_standin()
