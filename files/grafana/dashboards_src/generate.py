"""Render the five dashboards to JSON, with the runbook links of the alerts that point at each."""

from __future__ import annotations

import json
import re

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from files.grafana.dashboards_src.boards import BOARDS
from roles.alerting.catalog import load_catalog


def runbooks_by_dashboard() -> dict[str, list[tuple[str, str]]]:
    """dashboard uid -> [(alert name, runbook path)] from the catalog's `dashboard: /d/<uid>` links."""
    found: dict[str, list[tuple[str, str]]] = {}
    for alert in load_catalog():
        if alert.dashboard and alert.dashboard.startswith("/d/"):
            found.setdefault(alert.dashboard.removeprefix("/d/"), []).append((alert.name, alert.runbook))
    return found


def render_all() -> dict[str, str]:
    """uid -> dashboard JSON text, exactly as committed in files/grafana/dashboards/<uid>.json."""
    runbooks = runbooks_by_dashboard()
    rendered = {}
    for make in BOARDS:
        board = make(runbooks.get(_uid_of(make), []))
        rendered[board.uid] = json.dumps(board.build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
    return rendered


def _uid_of(make) -> str:
    # Each board function builds its own fixed uid; build once without links to learn it.
    return make([]).uid


_FUNCTIONS = {"sum", "rate", "increase", "max", "min", "avg", "count", "by", "on", "or", "and", "unless", "time",
              "histogram_quantile", "clamp_min", "count_over_time", "label_values", "ignoring", "without"}


def metrics_of(promql: str) -> list[str]:
    """The metric names a PromQL query reads (names followed by a selector or a range)."""
    names = re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{", promql)
    return sorted({n for n in names if n not in _FUNCTIONS})
