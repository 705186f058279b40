"""Where the stores run: a visible choice in group data (issue 26).

    stores = {"mode": "single", "host": "tel1"}

`single`: the trace store, the log store and the S3 store run on one named telemetry host;
every telemetry host runs a collector gateway (the pool the agents balance over, docs/architecture.md
"The gateway pool"), and the gateways export to that host. With one telemetry host `host` may be
left out (that host).

`scalable`: the stores that scale out run on EVERY telemetry host (placement rows with
`scales=True`: the VictoriaLogs cluster, Loki's simple scalable mode, Tempo's scalable single
binary, both on S3); those that do not (the lab's S3 store, Jaeger) still run once, on `host`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from roles._model import Model

# Loki's and Tempo's ring keeps this many copies of what a host's ingester holds (scalable mode).
DEFAULT_MAX_REPLICATION = 3


class StoresSettings(Model):
    """Where the trace, log and S3 stores run (telemetry hosts)."""

    mode: Literal["single", "scalable"] = Field(
        "single",
        description="single: every store runs once, on `host`. scalable: the stores that scale out (the VictoriaLogs "
        "cluster, Loki, Tempo) run on every telemetry host; the others (the S3 store, Jaeger) on `host`.",
    )
    host: str | None = Field(
        None,
        description="The telemetry host (inventory name) that runs the stores (in scalable mode: those that do not scale out); "
        "required with more than one telemetry host.",
    )
    replication_factor: Annotated[int, Field(ge=1, le=5)] | None = Field(
        None,
        description="scalable: how many telemetry hosts' ingesters hold each stream (Loki) and each trace (Tempo) before "
        "it reaches the bucket; unset: the telemetry host count, at most 3. Preflight refuses more than the telemetry hosts.",
    )

    def replication(self, hosts: int) -> int:
        """The replication factor for `hosts` telemetry hosts: the setting, else min(hosts, 3)."""
        return self.replication_factor or max(1, min(hosts, DEFAULT_MAX_REPLICATION))
