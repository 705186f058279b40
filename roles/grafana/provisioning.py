"""Grafana's provisioning files, built as dicts and dumped as YAML.

Datasources get fixed UIDs (the dashboards and the alert rules refer to them):
`prometheus`, `alertmanager`, and the trace and log stores under their own
names (`tempo` or `jaeger`, `loki` or `victorialogs`), because their query
languages differ. The trace store links to the log store (traces to logs, by
trace id and correlation id) and the log store back to the trace store (a
derived field on the line's `traceId`, docs/contract.md section 4).

Grafana expands `$VAR`, `${VAR}`, `$__env{}` and `$__file{}` in provisioning
values, so a literal `${__value.raw}` is written `$${__value.raw}`
(docs/shared upstream-facts 3.1). Secrets are only ever `$__file{...}` references.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from roles._service.render import dump_yaml
from roles.grafana.config import DASHBOARDS_DIR, SECRETS_DIR, file_ref

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS_SOURCE = REPO / "files" / "grafana" / "dashboards"
HEADER = "Managed by the Sentinel observability toolkit (roles/grafana); local edits are overwritten."
ORG_ID = 1
FOLDER = "Sentinel"
PLUGIN_TYPES = {
    "prometheus": "prometheus",
    "alertmanager": "alertmanager",
    "tempo": "tempo",
    "jaeger": "jaeger",
    "loki": "loki",
    # VictoriaLogs is a plugin (Apache-2.0), installed from its pinned archive.
    "victorialogs": "victoriametrics-logs-datasource",
}
# Datasource uids name the signal, not the store, so the dashboards stay the same
# whichever store an environment chose (traces.store, logs.store).
TRACES_UID = "traces"
LOGS_UID = "logs"
KNOWN_UIDS = frozenset({"prometheus", "alertmanager", TRACES_UID, LOGS_UID})
# Built-in pseudo datasources a dashboard may name.
BUILTIN_UIDS = frozenset({"grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --", "__expr__"})
# The log line's trace id (docs/contract.md: JSON lines, `"traceId":"<32 hex>"`).
TRACE_ID_IN_LINE = r'"traceId":"([0-9a-f]{32})"'
# The span attribute holding the request's correlation id (docs/contract.md section 5).
CORRELATION_ATTRIBUTE = "sentinel.correlation_id"


@dataclass(frozen=True)
class Peers:
    """The URLs Grafana queries, and which trace and log stores they are."""

    prometheus_url: str
    alertmanager_url: str
    traces: str  # tempo | jaeger
    traces_url: str
    logs: str  # loki | victorialogs
    logs_url: str
    scrape_interval: str = "15s"
    # With a Prometheus pair: (host, URL) of every Prometheus, each provisioned as a datasource of
    # its own besides the default one (this host's); empty with one Prometheus.
    prometheus_replicas: tuple[tuple[str, str], ...] = ()
    # (CA, certificate, key) PEMs of Grafana's identity for the TLS listeners (roles/_tls.py), or None.
    client_tls: tuple[str, str, str] | None = field(default=None, repr=False)

    @property
    def uids(self) -> frozenset[str]:
        return KNOWN_UIDS


def dump_provisioning(document: dict) -> str:
    """A provisioning file: the document dumped as YAML after the managed-by header."""
    return dump_yaml(document, HEADER)


def _escape(text: str) -> str:
    """A literal `$` for Grafana's provisioning expander."""
    return text.replace("$", "$$")


def traces_to_logs_query(logs: str) -> str:
    """The log query a span opens: its trace's lines, or the lines of its request's correlation id.

    Grafana's data-link variables: `${__trace.traceId}`, `${__span.tags["<attribute>"]}`.
    """
    trace = "${__trace.traceId}"
    correlation = '${__span.tags["%s"]}' % CORRELATION_ATTRIBUTE
    if logs == "loki":
        return '{service="sentinel-backend"} | json | traceId="%s" or correlationId="%s"' % (trace, correlation)
    # LogsQL (VictoriaLogs): field filters on the JSON line's fields.
    return 'service:"sentinel-backend" AND (traceId:"%s" OR correlationId:"%s")' % (trace, correlation)


def _traces_json(peers: Peers) -> dict:
    json_data: dict = {
        "tracesToLogsV2": {
            "datasourceUid": LOGS_UID,
            "spanStartTimeShift": "-5m",
            "spanEndTimeShift": "5m",
            "filterByTraceID": True,
            "filterBySpanID": False,
            # customQuery: one link that finds the trace's lines AND the request's
            # lines by correlationId (lines of unsampled spans carry it too).
            "customQuery": True,
            "query": _escape(traces_to_logs_query(peers.logs)),
        },
        "nodeGraph": {"enabled": True},
    }
    if peers.traces == "tempo":
        json_data["serviceMap"] = {"datasourceUid": "prometheus"}
        json_data["tracesToMetrics"] = {"datasourceUid": "prometheus"}
    return json_data


def _logs_json(peers: Peers) -> dict:
    derived = {
        "name": "traceId",
        "matcherType": "regex",
        "matcherRegex": TRACE_ID_IN_LINE,
        "datasourceUid": TRACES_UID,
        "url": _escape("${__value.raw}"),
        "urlDisplayLabel": "View trace",
    }
    json_data: dict = {"derivedFields": [derived]}
    if peers.logs == "loki":
        json_data["maxLines"] = 1000
    return json_data


def datasources(peers: Peers) -> dict:
    """datasources.yaml: Prometheus (default: this host's), each Prometheus of a pair, Alertmanager, the trace store, the log store."""

    def source(uid: str, name: str, url: str, json_data: dict, default: bool = False, kind: str = "", tls: bool = False) -> dict:
        if tls and peers.client_tls:
            # Client certificate auth: the listener admits Grafana's identity by name; the CA checks the server.
            ca, cert, key = peers.client_tls
            json_data = {**json_data, "tlsAuth": True, "tlsAuthWithCACert": True}
            secure = {"tlsCACert": ca, "tlsClientCert": cert, "tlsClientKey": key}
            return {**source(uid, name, url, json_data, default, kind), "secureJsonData": secure}
        return {
            "name": name,
            "type": PLUGIN_TYPES[kind or uid],
            "uid": uid,
            "orgId": ORG_ID,
            "access": "proxy",
            "url": url,
            "isDefault": default,
            "editable": False,
            "jsonData": json_data,
        }

    return {
        "apiVersion": 1,
        # Datasources removed from this file are removed from Grafana too.
        "prune": True,
        "datasources": [
            source(
                "prometheus",
                "Prometheus",
                peers.prometheus_url,
                {
                    "httpMethod": "POST",
                    "timeInterval": peers.scrape_interval,
                    "exemplarTraceIdDestinations": [{"name": "trace_id", "datasourceUid": TRACES_UID}],
                },
                default=True,
                tls=True,
            ),
            # A pair: each Prometheus by name too (uid prometheus-<position>), to read the other
            # copy when this host's has a gap or is down (docs/alerting.md "Two monitoring hosts").
            *(
                source(
                    f"prometheus-{position}",
                    f"Prometheus {host}",
                    url,
                    {"httpMethod": "POST", "timeInterval": peers.scrape_interval},
                    kind="prometheus",
                    tls=True,
                )
                for position, (host, url) in enumerate(peers.prometheus_replicas, start=1)
            ),
            # Operators see and silence the alerts Prometheus sends to Alertmanager.
            source(
                "alertmanager",
                "Alertmanager",
                peers.alertmanager_url,
                {"implementation": "prometheus", "handleGrafanaManagedAlerts": False},
                tls=True,
            ),
            # The stores admit Grafana's identity (the topology's flows; VictoriaLogs' front: /select/ only).
            source(TRACES_UID, peers.traces.capitalize(), peers.traces_url, _traces_json(peers), kind=peers.traces,
                   tls=peers.traces_url.startswith("https://")),
            source(
                LOGS_UID,
                "VictoriaLogs" if peers.logs == "victorialogs" else "Loki",
                peers.logs_url,
                _logs_json(peers),
                kind=peers.logs,
                tls=peers.logs_url.startswith("https://"),
            ),
        ],
    }


def dashboard_sources(source: Path = DASHBOARDS_SOURCE) -> dict[str, str]:
    """Relative path -> JSON text of every dashboard the dashboards generator wrote."""
    if not source.is_dir():
        return {}
    return {str(p.relative_to(source)): p.read_text() for p in sorted(source.rglob("*.json"))}


def dashboard_providers(relative_paths) -> dict:
    """dashboards.yaml: one file provider over DASHBOARDS_DIR.

    Dashboards in sub-directories become folders of that name; flat files land in `Sentinel`.
    """
    nested = any("/" in p for p in relative_paths)
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "sentinel",
                "orgId": ORG_ID,
                "folder": "" if nested else FOLDER,
                "type": "file",
                # Dashboards are code: changes go through files/grafana/dashboards, not the UI.
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 30,
                "options": {"path": DASHBOARDS_DIR, "foldersFromFilesStructure": nested},
            }
        ],
    }


def dashboard_datasource_uids(document) -> list[tuple[str, str]]:
    """(JSON path, uid) of every datasource reference in a dashboard."""
    found: list[tuple[str, str]] = []

    def walk(node, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                here = f"{path}.{key}" if path else key
                if key in ("datasource", "datasourceUid"):
                    if isinstance(value, dict) and isinstance(value.get("uid"), str):
                        found.append((here, value["uid"]))
                    elif isinstance(value, str):
                        found.append((here, value))
                walk(value, here)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{path}[{index}]")

    walk(document, "")
    return found


def unknown_datasource_uids(dashboards: dict[str, str], provisioned: frozenset[str]) -> list[tuple[str, str, str]]:
    """(file, JSON path, uid) of references to no provisioned datasource.

    A template variable (`$ds`, `${datasource}`) and Grafana's built-ins are fine.
    """
    problems = []
    for name, text in dashboards.items():
        for path, uid in dashboard_datasource_uids(json.loads(text)):
            if uid.startswith("$") or uid in BUILTIN_UIDS or uid in provisioned:
                continue
            problems.append((name, path, uid))
    return problems


def render_datasources(peers: Peers) -> str:
    return dump_provisioning(datasources(peers))


def render_dashboard_providers(relative_paths) -> str:
    return dump_provisioning(dashboard_providers(relative_paths))


def secret_file(name: str) -> str:
    return file_ref(f"{SECRETS_DIR}/{name}")
