"""node_exporter on every host: host metrics, systemd unit states, textfile metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyinfra.api import deploy
from pyinfra.operations import files

from roles._placement import COMPONENTS
from roles._service import ServiceSpec, release_service

if TYPE_CHECKING:  # the role gets its settings as an argument and imports no aggregate
    from roles._context import HostContext
    from roles._settings import Settings
    from roles.node_exporter.settings import NodeExporterSettings

# Jobs that report through textfile metrics (the Grafana backup) run as their own
# users; membership in node_exporter's group lets them reach (/var/lib/node_exporter
# is 0750) and write the textfile directory. Nothing in either directory is secret.
TEXTFILE_GROUP = "node_exporter"



def watched_units(settings: Settings) -> str:
    """The systemd collector's unit-include regex: every unit of the placement table (`Component.units`),
    whichever host runs it, so the dashboard and the unit alerts (NodeSystemdServiceFailed,
    NodeSystemdServiceCrashlooping) see every unit of the stack and nothing else."""
    names = sorted({unit for component in COMPONENTS for unit in component.unit_names(settings)})
    return "(" + "|".join(name.replace(".", r"\.") for name in names) + r")\.service"


def service_spec(settings: Settings, bind: str) -> ServiceSpec:
    """node_exporter's service; `bind` is ip:port from the topology (node_exporter.metrics)."""
    ne = settings.node_exporter
    return ServiceSpec(
        name="node_exporter",
        description="Prometheus node_exporter",
        exec_start=(
            "{bin}/node_exporter",
            f"--web.listen-address={bind}",
            f"--collector.textfile.directory={ne.textfile_dir}",
            "--collector.systemd",
            f"--collector.systemd.unit-include={watched_units(settings)}",
            # node_systemd_service_restart_total (systemd's NRestarts): NodeSystemdServiceCrashlooping.
            "--collector.systemd.enable-restarts-metrics",
        ),
        # The textfile dir is created below with its writers' group, not as a data dir.
        data_dirs=("/var/lib/node_exporter",),
        netlink=True,
        ready_url=f"http://{bind}/metrics",
    )


@deploy("node_exporter")
def node_exporter(settings: NodeExporterSettings, ctx: HostContext):
    """
    Install node_exporter on this host.

    + settings: the `node_exporter` block
    + ctx: the host context (its bind from the topology, artifact base URL, hardening)
    """
    release_service(service_spec(ctx.settings, ctx.bind("node_exporter.metrics")), ctx.artifact_base_url, ctx.hardening)
    textfile_dir(settings.textfile_dir)


def textfile_dir(path: str) -> None:
    """node_exporter reads it; members of TEXTFILE_GROUP write it (their files must be world-readable, 0644)."""
    files.directory(name="node_exporter: textfile dir", path=path, user="node_exporter", group=TEXTFILE_GROUP, mode="0770")
