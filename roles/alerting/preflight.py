"""Preflight for alerting: the catalog is sound, and promtool accepts the rendered rules.

Runs from roles/preflight.py before pyinfra connects to any host. The receivers'
secrets are resolved and shape-checked with every other secret (roles/_secrets.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from roles._model import SettingsError
from roles.alerting.catalog import CATALOG_FILE, load_catalog
from roles.alerting.rules import render_rules


def promtool_binary() -> str | None:
    """promtool from $SENTINEL_PROMTOOL or PATH; None when neither has one."""
    return os.environ.get("SENTINEL_PROMTOOL") or shutil.which("promtool")


def dashboard_uids(sources: dict[str, str] | None = None) -> dict[str, str]:
    """uid -> file of every committed dashboard; a uid used twice is refused (Grafana would keep one)."""
    import json

    from roles.grafana.provisioning import dashboard_sources

    uids: dict[str, str] = {}
    for path, text in (dashboard_sources() if sources is None else sources).items():
        uid = json.loads(text).get("uid")
        if uid in uids:
            raise SettingsError(
                f"files/grafana/dashboards/{path}", f"uid {uid!r} is also the uid of {uids[uid]}: Grafana would keep one of them",
                "give every dashboard its own uid (files/grafana/dashboards_src)",
            )
        uids[uid] = path
    return uids


def check_dashboard_links(alerts, sources: dict[str, str] | None = None) -> None:
    """Every alert that links a dashboard of ours (/d/<uid>) links one that exists."""
    uids = dashboard_uids(sources)
    for alert in alerts:
        link = alert.dashboard or ""
        if link.startswith("/d/"):
            uid = link[len("/d/"):].split("/", 1)[0].split("?", 1)[0]
            if uid not in uids:
                raise SettingsError(
                    f"{CATALOG_FILE.name}:{alert.uid}.dashboard", f"links dashboard {uid!r}, which no committed dashboard has",
                    f"link one of {', '.join(sorted(uids))}",
                )


def check_catalog(runbook_base_url: str, grafana_url: str) -> None:
    """Load and check the catalog; when a promtool is at hand, let it parse the rendered rules too.

    The Prometheus host runs the same check before the file goes live, so a
    controller without promtool loses only the early warning.
    """
    alerts = load_catalog()
    check_dashboard_links(alerts)
    promtool = promtool_binary()
    if not promtool:
        return
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "sentinel-alerts.yml"
        rules.write_text(render_rules(alerts, runbook_base_url, grafana_url))
        result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    if result.returncode == 0:
        return
    output = (result.stdout + result.stderr).replace(str(rules), "sentinel-alerts.yml").strip()
    uid = next((a.uid for a in alerts if re.search(rf'"{re.escape(a.name)}"', output)), None)
    part = next((k for k in ("summary", "description") if f'annotation "{k}"' in output), "expr")
    key = f"{CATALOG_FILE.name}:{uid}.{part}" if uid else CATALOG_FILE.name
    raise SettingsError(key, f"promtool refuses the rendered rule: {output.splitlines()[-1]}", "fix the alert's expr or templates (docs/alerting.md)")
