"""Preflight for alerting: the catalog is sound and every enabled receiver has its secret.

Runs from roles/preflight.py before pyinfra connects to any host.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from roles._schema import SettingsError
from roles._secrets import read_secret
from roles.alerting.catalog import CATALOG_FILE, load_catalog
from roles.alerting.rules import render_rules


def _missing(key: str, secret: str, what: str, extra_fix: str = "") -> SettingsError:
    return SettingsError(key, f"{what} {secret} is not set", f"export {secret}=... or put it in $SENTINEL_SECRETS_DIR/{secret}{extra_fix}")


def check_receivers(name: str, settings) -> None:
    """Refuse a monitoring host whose enabled receivers lack their secrets."""
    alerting = settings.alerting
    where = f"host {name}.alerting"
    pagerduty = alerting.pagerduty
    if pagerduty.enabled and not read_secret(pagerduty.routing_key_secret):
        raise _missing(
            f"{where}.pagerduty.routing_key_secret",
            pagerduty.routing_key_secret,
            f"PagerDuty is enabled in {settings.environment} but its Events API v2 routing key",
            f" (the integration key of the PagerDuty service), or set alerting.pagerduty.enabled to False in group_data/{settings.environment}.py",
        )
    for key, receiver in (("slack_critical", alerting.slack_critical), ("slack_warning", alerting.slack_warning)):
        if not read_secret(receiver.webhook_url_secret):
            raise _missing(f"{where}.{key}.webhook_url_secret", receiver.webhook_url_secret, f"the Slack webhook URL for {receiver.channel}")
    email = alerting.email
    if email.auth_username and not read_secret(email.auth_password_secret):
        raise _missing(f"{where}.email.auth_password_secret", email.auth_password_secret, f"the SMTP password of {email.auth_username}")


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
    key = f"{CATALOG_FILE.name}:{uid}.expr" if uid else CATALOG_FILE.name
    raise SettingsError(key, f"promtool refuses the rendered rule: {output.splitlines()[-1]}", "fix the alert's expr or templates (docs/alerting.md)")
