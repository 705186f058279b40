from __future__ import annotations

from dataclasses import dataclass

from roles._schema import check_port


@dataclass(frozen=True)
class NodeExporterSettings:
    """node_exporter on every host; its textfile directory feeds job-status metrics."""

    listen_port: int = 9100
    textfile_dir: str = "/var/lib/node_exporter/textfile"

    def validate(self, prefix: str) -> None:
        check_port(f"{prefix}.listen_port", self.listen_port)
