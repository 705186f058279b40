"""The Sentinel observability stack: which roles run on this host.

    pyinfra inventory/<env>.py deploy.py

The inventory's preflight built and validated the run's one Environment, its
topology and its secrets before any host was contacted. Where each component runs
is the placement table (roles/_placement.py); every role is called the same way,
with its own settings block and the host context (roles/_context.py: shared values,
secrets, binds and peers from the topology).
"""

from pyinfra import host

from roles._context import HostContext
from roles._placement import COMPONENTS
from roles.alertmanager import alertmanager
from roles.backend import backend_env
from roles.backend.sentry_release import sentry_release
from roles.backend.tls import backend_tls
from roles.firewall import host_firewall
from roles.grafana import grafana
from roles.grafana_backup import grafana_backup, grafana_backup_first_run
from roles.jaeger import jaeger
from roles.lab_backend import lab_backend
from roles.loki import loki
from roles.node_exporter import node_exporter
from roles.object_store import object_store
from roles.otel_collector import otel_collector
from roles.preflight import validated_environment
from roles.prometheus import prometheus
from roles.tempo import tempo
from roles.victorialogs import victorialogs


def backend(settings, ctx: HostContext) -> None:
    """The backend's certificate towards the gateway, env file and Sentry release; in the lab, the lab's Node backend too."""
    backend_env(settings, ctx, tls=backend_tls(settings, ctx))
    sentry_release(settings, ctx.secrets)
    if settings.standin:
        lab_backend(settings, ctx)


# component -> (role, its settings block). The order of COMPONENTS is the deploy order:
# the firewall first, the stores before the collector (the gateway's first start finds
# them), the backup job's user before Grafana writes its token.
ROLES = {
    "firewall": (host_firewall, "firewall"),
    "node_exporter": (node_exporter, "node_exporter"),
    "object_store": (object_store, "object_store"),
    "jaeger": (jaeger, "traces"),
    "tempo": (tempo, "traces"),
    "victorialogs": (victorialogs, "victorialogs"),
    "loki": (loki, "loki"),
    "otelcol": (otel_collector, "otel_collector"),
    "prometheus": (prometheus, "prometheus"),
    "alertmanager": (alertmanager, "alerting"),
    "grafana_backup": (grafana_backup, "grafana_backup"),
    # Its files on every monitoring host, its binary where grafana.install_binary is on.
    "grafana": (grafana, "grafana"),
    "backend": (backend, "backend"),
}

environment, secrets = validated_environment()
ctx = HostContext.of(environment, host.name, secrets)
runs = environment.topology.runs

for component in COMPONENTS:
    if host.name in runs[component.name] and component.name in ROLES:
        role, block = ROLES[component.name]
        role(getattr(ctx.settings, block), ctx)

# After every role: the backup job's first run reads Grafana, which the grafana role
# installs and gives its token after the backup role (whose user the token needs).
if host.name in runs["grafana_backup"]:
    grafana_backup_first_run(ctx.settings.grafana_backup, ctx)
