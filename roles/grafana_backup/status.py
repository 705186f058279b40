"""What the backup job's textfile metrics say about it, as node_exporter exports them.

Four states, each with the message an operator needs: `ok`; `not yet run` (installed, no run
recorded: cron's first scheduled run is still to come, not a fault); `failed` (the last run
failed); `stale` (the last success is older than the stale alert's threshold). The smoke test
reads it; the alerts (files/alerting/catalog.yml) draw the same lines in PromQL.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

LAST_SUCCESS = "sentinel_grafana_backup_last_success_timestamp_seconds"
LAST_RUN = "sentinel_grafana_backup_last_run_timestamp_seconds"
LAST_RUN_SUCCESS = "sentinel_grafana_backup_last_run_success"
INSTALLED = "sentinel_grafana_backup_installed_timestamp_seconds"


@dataclass(frozen=True)
class BackupStatus:
    state: str  # "ok", "not yet run", "failed", "stale"
    message: str


def _when(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    return f"{time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime(ts))} ({(now - ts) / 3600:.1f} hours ago)"


def samples_of(exposition: str) -> dict[str, float]:
    """The job's and the role's unlabelled samples from a /metrics page."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = {LAST_SUCCESS, LAST_RUN, LAST_RUN_SUCCESS, INSTALLED}
    return {s.name: s.value for f in text_string_to_metric_families(exposition) for s in f.samples
            if s.name in wanted and not s.labels}


def backup_status(samples: Mapping[str, float], now: float, stale_after: float) -> BackupStatus:
    success, last_run = samples.get(LAST_SUCCESS), samples.get(LAST_RUN)
    installed = samples.get(INSTALLED)
    if samples.get(LAST_RUN_SUCCESS) == 0:
        return BackupStatus("failed", f"the last backup run, ended {_when(last_run, now)}, failed; last success: {_when(success, now)}")
    if success is None and last_run is None:
        return BackupStatus("not yet run", f"the backup job has not run yet (installed {_when(installed, now)}): cron runs it at its schedule")
    if success is None:
        # A run recorded as good always writes the success metric first: something removed it.
        return BackupStatus("failed", f"the last backup run ({_when(last_run, now)}) left no success metric")
    if now - success > stale_after:
        return BackupStatus("stale", f"the last good backup is {(now - success) / 3600:.1f} hours old (over {stale_after / 3600:.0f})")
    return BackupStatus("ok", f"last good backup {_when(success, now)}")
