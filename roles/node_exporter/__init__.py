"""node_exporter on every host: host metrics, systemd unit states, textfile metrics."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from roles._service import ServiceSpec, release_service
# Imported as a module: the settings model imports each role's settings.
from roles import _settings

# Units whose state the infrastructure dashboard and alerts follow.
WATCHED_UNITS = r"(prometheus|node_exporter|versitygw|grafana|loki|tempo|sentinel-backend|cron)\.service"


def service_spec(settings: _settings.Settings) -> ServiceSpec:
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
def node_exporter():
    """Install node_exporter on this host."""
    settings = _settings.settings_for(host)
    release_service(service_spec(settings), settings.artifact_base_url, settings.systemd_hardening)
