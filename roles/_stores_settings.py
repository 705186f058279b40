"""Where the stores run: a visible choice in group data (issue 26).

    stores = {"mode": "single", "host": "tel1"}

`single`: the trace store, the log store and the S3 store run on one named telemetry host;
every telemetry host runs a collector gateway (the pool the agents balance over, docs/architecture.md
"The gateway pool"), and the gateways export to that host. With one telemetry host `host` may be
left out (that host). The scalable modes (the VictoriaLogs cluster, Loki's and Tempo's
microservices on S3) are not built yet: the setting takes `single` only, and says so.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from roles._model import Model


class StoresSettings(Model):
    """Where the trace, log and S3 stores run (telemetry hosts)."""

    mode: Literal["single"] = Field(
        "single",
        description="single: the stores run once, on `host` (the scalable modes are not built yet).",
    )
    host: str | None = Field(
        None,
        description="The telemetry host (inventory name) that runs the stores; required with more than one telemetry host.",
    )
