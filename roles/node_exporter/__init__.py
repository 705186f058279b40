"""node_exporter on every host: host metrics, systemd unit states, textfile metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyinfra.api import deploy

from roles._service import ServiceSpec, release_service

if TYPE_CHECKING:  # the role gets its settings as an argument and imports no aggregate
    from roles._settings import Settings

# Units whose state the infrastructure dashboard and alerts follow.
WATCHED_UNITS = r"(prometheus|node_exporter|versitygw|grafana|loki|tempo|sentinel-backend|cron)\.service"


def service_spec(settings: Settings) -> ServiceSpec:
    ne = settings.node_exporter
    return ServiceSpec(
        name="node_exporter",
        description="Prometheus node_exporter",
        exec_start=(
            "{bin}/node_exporter",
            f"--web.listen-address=:{ne.listen_port}",
            f"--collector.textfile.directory={ne.textfile_dir}",
            "--collector.systemd",
            f"--collector.systemd.unit-include={WATCHED_UNITS}",
        ),
        data_dirs=("/var/lib/node_exporter", ne.textfile_dir),
        netlink=True,
        ready_url=f"http://127.0.0.1:{ne.listen_port}/metrics",
    )


@deploy("node_exporter")
def node_exporter(settings: Settings):
    """
    Install node_exporter on this host.

    + settings: this host's settings (node_exporter, artifact_base_url, systemd_hardening)
    """
    release_service(service_spec(settings), settings.artifact_base_url, settings.systemd_hardening)
