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


def check_catalog(runbook_base_url: str, grafana_url: str) -> None:
    """Load and check the catalog; when a promtool is at hand, let it parse the rendered rules too.

    The Prometheus host runs the same check before the file goes live, so a
    controller without promtool loses only the early warning.
    """
    alerts = load_catalog()
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
