"""The Sentinel observability stack: which roles run on which host groups.

    pyinfra inventory/<env>.py deploy.py
"""

from pyinfra import host

from roles import _settings
from roles.alertmanager import alertmanager
from roles.backend import backend_env
from roles.backend.sentry_release import sentry_release
from roles.backend_standin import backend_standin
from roles.jaeger import jaeger
from roles.node_exporter import node_exporter
from roles.object_store import object_store
from roles.otel_collector import collector_args, otel_collector, pipeline_scrape_jobs
from roles.prometheus import _environment_hosts, prometheus
from roles.tempo import tempo

settings = _settings.settings_for(host)
hosts_by_group = _environment_hosts()

node_exporter()

if "telemetry" in host.groups:
    object_store()
    # The one trace store of the environment (traces.store); the gateway exports to it.
    if settings.traces.store == "jaeger":
        jaeger(settings.traces, settings.artifact_base_url, settings.systemd_hardening)
    else:
        tempo(settings.traces, settings.object_store, settings.artifact_base_url, settings.systemd_hardening)

if "telemetry" in host.groups or "app" in host.groups:
    # Gateway on telemetry hosts, agent on app hosts, both in one collector on a host in both.
    otel_collector(**collector_args(settings, tuple(host.groups), hosts_by_group))

if "monitoring" in host.groups:
    prometheus(extra_jobs=tuple(pipeline_scrape_jobs(hosts_by_group)))
    alertmanager()

if "app" in host.groups:
    backend_env()
    sentry_release()
    if settings.backend.standin:
        backend_standin()
