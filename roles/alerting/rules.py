"""The alert catalog rendered as a Prometheus rule file.

Labels `severity` and `uid` drive Alertmanager's routing and inhibitions; the
annotations carry what a notification shows: summary (with the value),
description, value, runbook_url and dashboard_url.
"""

from __future__ import annotations

import yaml

from roles.alerting.catalog import Alert

RULES_FILE = "/etc/prometheus/rules/sentinel-alerts.yml"
HEADER = "# Managed by the Sentinel observability toolkit, rendered from files/alerting/catalog.yml.\n"


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (PromQL) as literal blocks, so the file reads like the catalog."""


def _str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def runbook_url(alert: Alert, runbook_base_url: str) -> str:
    if alert.runbook.startswith(("http://", "https://")):
        return alert.runbook
    return f"{runbook_base_url.rstrip('/')}/{alert.runbook}"


def dashboard_url(alert: Alert, grafana_url: str) -> str | None:
    if alert.dashboard is None or alert.dashboard.startswith(("http://", "https://")):
        return alert.dashboard
    return f"{grafana_url.rstrip('/')}{alert.dashboard}"


def link_annotations(alert: Alert, runbook_base_url: str, grafana_url: str) -> dict[str, str]:
    """runbook_url, and dashboard_url when the alert has a dashboard: the same in Prometheus' and Grafana's rules."""
    links = {"runbook_url": runbook_url(alert, runbook_base_url)}
    dashboard = dashboard_url(alert, grafana_url)
    if dashboard:
        links["dashboard_url"] = dashboard
    return links


def rule(alert: Alert, runbook_base_url: str, grafana_url: str) -> dict:
    annotations = {
        "summary": alert.summary,
        "description": alert.description,
        # The value on its own, so notifications can show it next to the summary.
        "value": "{{ $value | humanize }}",
        **link_annotations(alert, runbook_base_url, grafana_url),
    }
    return {
        "alert": alert.name,
        "expr": alert.expr + "\n" if "\n" in alert.expr else alert.expr,
        "for": alert.for_,
        "labels": {"severity": alert.severity, "uid": alert.uid},
        "annotations": annotations,
    }


def render_rules(alerts: tuple[Alert, ...], runbook_base_url: str, grafana_url: str) -> str:
    """The rule file: one rule group per catalog group, in catalog order."""
    groups: dict[str, list[dict]] = {}
    for alert in alerts:
        groups.setdefault(alert.group, []).append(rule(alert, runbook_base_url, grafana_url))
    document = {"groups": [{"name": name, "rules": rules} for name, rules in groups.items()]}
    return HEADER + yaml.dump(document, Dumper=_BlockDumper, sort_keys=False, width=200, allow_unicode=True)
