"""Grafana-managed alerting files rendered from the SAME catalog, for `alerting.evaluator: grafana`.

alert-rules.yml, contact-points.yml and notification-policies.yml carry what
Prometheus' rule file and Alertmanager's config carry for the default
evaluator: the catalog's expressions, `for`, labels and annotations, and the
same routing (critical at once to Slack #critical-alerts, plus PagerDuty where
enabled; warnings batched every 15 minutes; info in the daily email).

Each rule queries Prometheus with the catalog's expression as is (A); Grafana
reduces each series to its last value (B); the condition (C) is `$B == $B`,
true for every series the expression returns, so a rule fires exactly when the
PromQL returns a series, as in Prometheus. No series is not an error here:
noDataState is OK.

Differences from Alertmanager, said plainly: Grafana's file provisioning has no
inhibition rules, so `inhibited_by` is not applied (a warning may arrive while
its critical fires); Prometheus' `{{ $value }}` is rewritten to Grafana's
`{{ $values.B.Value }}` in summaries and descriptions.
"""

from __future__ import annotations

import re

from roles._model import duration_seconds
from roles.alerting.catalog import Alert
from roles.alerting.rules import link_annotations
from roles.grafana.provisioning import FOLDER, ORG_ID, dump_provisioning, secret_file

RULE_UID_MAX = 40  # Grafana rule uids: at most 40 of [A-Za-z0-9_-]
QUERY_WINDOW_SECONDS = 600


_VALUE = re.compile(r"\$value\b(?!s)")


def grafana_template(text: str) -> str:
    """Prometheus' alert template -> Grafana's: `$value` is the reduced value of B."""
    return _VALUE.sub("$values.B.Value", text)


def _interval(seconds: float) -> str:
    return f"{int(seconds)}s"


def rule(alert: Alert, environment: str, runbook_base_url: str, grafana_url: str) -> dict:
    annotations = {
        "summary": grafana_template(alert.summary),
        "description": grafana_template(alert.description),
        **link_annotations(alert, runbook_base_url, grafana_url),
    }
    return {
        "uid": alert.uid,
        "title": alert.name,
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": QUERY_WINDOW_SECONDS, "to": 0},
                "datasourceUid": "prometheus",
                "model": {"refId": "A", "expr": alert.expr, "instant": True, "range": False, "intervalMs": 1000, "maxDataPoints": 43200},
            },
            {
                "refId": "B",
                "relativeTimeRange": {"from": 0, "to": 0},
                "datasourceUid": "__expr__",
                "model": {"refId": "B", "type": "reduce", "expression": "A", "reducer": "last"},
            },
            {
                "refId": "C",
                "relativeTimeRange": {"from": 0, "to": 0},
                "datasourceUid": "__expr__",
                # Literal `$B`: labels are expanded by provisioning, model is not (upstream-facts 3.1).
                "model": {"refId": "C", "type": "math", "expression": "$B == $B"},
            },
        ],
        "noDataState": "OK",
        "execErrState": "Error",
        "for": _interval(duration_seconds(alert.for_)),
        "labels": {"severity": alert.severity, "uid": alert.uid, "environment": environment},
        "annotations": annotations,
        "isPaused": False,
    }


def alert_rules(alerts: tuple[Alert, ...], environment: str, interval: str, runbook_base_url: str, grafana_url: str) -> dict:
    """alert-rules.yml: one rule group per catalog group, in the folder Sentinel."""
    groups: dict[str, list[dict]] = {}
    for alert in alerts:
        groups.setdefault(alert.group, []).append(rule(alert, environment, runbook_base_url, grafana_url))
    return {
        "apiVersion": 1,
        "groups": [
            {"orgId": ORG_ID, "name": name, "folder": FOLDER, "interval": _interval(duration_seconds(interval)), "rules": rules}
            for name, rules in groups.items()
        ],
    }


def contact_points(alerting) -> dict:
    """contact-points.yml: the receivers of alertmanager.yml; secrets are `$__file{...}` references."""

    def slack(name: str, receiver, secret: str) -> dict:
        return {
            "orgId": ORG_ID,
            "name": name,
            "receivers": [
                {
                    "uid": name,
                    "type": "slack",
                    "settings": {"url": secret_file(secret), "recipient": receiver.channel},
                    "disableResolveMessage": False,
                }
            ],
        }

    points = [
        slack("slack-critical", alerting.slack_critical, "slack-critical-webhook-url"),
        slack("slack-alerts", alerting.slack_warning, "slack-alerts-webhook-url"),
        {
            "orgId": ORG_ID,
            "name": "email-digest",
            "receivers": [
                {
                    "uid": "email-digest",
                    "type": "email",
                    "settings": {"addresses": alerting.email.to, "singleEmail": True},
                    "disableResolveMessage": True,
                }
            ],
        },
    ]
    if alerting.heartbeat.enabled:
        # The dead man's switch: only the Watchdog goes here, and never its resolve.
        points.append(
            {
                "orgId": ORG_ID,
                "name": "heartbeat",
                "receivers": [
                    {
                        "uid": "heartbeat",
                        "type": "webhook",
                        "settings": {"url": secret_file("heartbeat-url"), "httpMethod": "POST"},
                        "disableResolveMessage": True,
                    }
                ],
            }
        )
    if alerting.pagerduty.enabled:
        points.append(
            {
                "orgId": ORG_ID,
                "name": "pagerduty",
                "receivers": [
                    {
                        "uid": "pagerduty",
                        "type": "pagerduty",
                        "settings": {"integrationKey": secret_file("pagerduty-routing-key"), "severity": "critical"},
                        "disableResolveMessage": False,
                    }
                ],
            }
        )
    return {"apiVersion": 1, "contactPoints": points}


def notification_policies(alerting) -> dict:
    """notification-policies.yml: the routing tree of alertmanager.yml (the file replaces Grafana's whole tree)."""

    def timing(route) -> dict:
        return {"group_wait": route.group_wait, "group_interval": route.group_interval, "repeat_interval": route.repeat_interval}

    def severity(value: str) -> list:
        return [["severity", "=", value]]

    routes = []
    if alerting.heartbeat.enabled:
        heartbeat = alerting.heartbeat
        routes.append(
            {
                "receiver": "heartbeat",
                "object_matchers": severity("none"),
                "group_by": ["alertname", "environment"],
                "group_wait": "0s",
                "group_interval": heartbeat.group_interval,
                "repeat_interval": heartbeat.repeat_interval,
            }
        )
    routes += [
        {
            "receiver": "slack-critical",
            "object_matchers": severity("critical"),
            "group_by": ["alertname", "environment"],
            **timing(alerting.critical),
            "continue": alerting.pagerduty.enabled,
        }
    ]
    if alerting.pagerduty.enabled:
        routes.append(
            {"receiver": "pagerduty", "object_matchers": severity("critical"), "group_by": ["alertname", "environment"], **timing(alerting.critical)}
        )
    routes += [
        {"receiver": "slack-alerts", "object_matchers": severity("warning"), "group_by": ["environment"], **timing(alerting.warning)},
        {"receiver": "email-digest", "object_matchers": severity("info"), "group_by": ["environment"], **timing(alerting.info)},
    ]
    return {
        "apiVersion": 1,
        "policies": [
            {
                "orgId": ORG_ID,
                # Anything without a known severity still reaches people, on Slack #alerts.
                "receiver": "slack-alerts",
                "group_by": ["alertname", "environment"],
                **timing(alerting.warning),
                "routes": routes,
            }
        ],
    }


def secret_names(alerting) -> dict[str, str]:
    """Secret file name under /etc/grafana/secrets -> secret name: the enabled receivers' secrets,
    under the same file names as Alertmanager's (AlertingSettings.secrets)."""
    return alerting.secrets()


def retired(alerts: tuple[Alert, ...], alerting) -> dict[str, dict]:
    """The alerting files for `alerting.evaluator: prometheus`: they REMOVE what the grafana evaluator made.

    Deleting a provisioning file leaves its objects in Grafana's database, so
    switching back to Prometheus would keep Grafana paging. These files delete
    the catalog's rules and our contact points and reset the policy tree.
    """
    names = ["slack-critical", "slack-alerts", "email-digest", "pagerduty", "heartbeat"]
    return {
        "alert-rules.yml": {"apiVersion": 1, "deleteRules": [{"orgId": ORG_ID, "uid": a.uid} for a in alerts]},
        "contact-points.yml": {"apiVersion": 1, "deleteContactPoints": [{"orgId": ORG_ID, "uid": n} for n in names]},
        "notification-policies.yml": {"apiVersion": 1, "resetPolicies": [ORG_ID]},
    }


def render_alerting(alerts, alerting, environment: str, interval: str, grafana_url: str, enabled: bool = True) -> dict[str, str]:
    """File name under provisioning/alerting -> content; `enabled` is `alerting.evaluator == "grafana"`."""
    if not enabled:
        return {name: dump_provisioning(document) for name, document in retired(alerts, alerting).items()}
    if not alerting.heartbeat.enabled:
        # Waived: Grafana has no receiver that drops, so the Watchdog is not provisioned at all.
        alerts = tuple(alert for alert in alerts if alert.severity != "none")
    return {
        "alert-rules.yml": dump_provisioning(alert_rules(alerts, environment, interval, alerting.runbook_base_url, grafana_url)),
        "contact-points.yml": dump_provisioning(contact_points(alerting)),
        "notification-policies.yml": dump_provisioning(notification_policies(alerting)),
    }
