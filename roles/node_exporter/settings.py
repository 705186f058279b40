from __future__ import annotations

from pydantic import Field

from roles._model import ServiceDir, Model, Port


class NodeExporterSettings(Model):
    """node_exporter on every host; its textfile directory feeds job-status metrics."""

    listen_port: Port = Field(9100, description="Port of node_exporter's /metrics.")
    textfile_dir: ServiceDir = Field(
        "/var/lib/node_exporter/textfile", description="Directory whose *.prom files node_exporter exports (job-status metrics)."
    )
