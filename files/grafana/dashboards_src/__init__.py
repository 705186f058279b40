"""Sentinel's five Grafana dashboards as code (grafana-foundation-sdk).

    .venv/bin/python -m files.grafana.dashboards_src          # writes files/grafana/dashboards/<uid>.json
    .venv/bin/python -m files.grafana.dashboards_src --check  # exit 1 if the committed JSON is stale

Why here and not in roles/: every package under roles/ is a pyinfra role with
one @deploy. This is not one: it is the source of static files that the
grafana role provisions (files/grafana/dashboards/*.json), like catalog.yml
is for the alerting role. Deploys never import it, so the SDK stays an
optional dependency (the `dashboards` extra, part of `test`).

Every query is built from docs/contract.md (the backend), the exporters'
metric names and the stack's own scrape jobs; datasources are referenced by
the fixed UIDs below, which the grafana role provisions.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
OUTPUT_DIR = REPO / "files" / "grafana" / "dashboards"

# The folder every dashboard is provisioned into (the grafana role's dashboard provider).
FOLDER = "Sentinel"
FOLDER_UID = "sentinel"
TAG = "sentinel"

# Datasource UIDs, agreed with the grafana role's provisioning. Nothing else may appear
# in a dashboard (the grafana preflight refuses an unknown one).
PROMETHEUS = "prometheus"
ALERTMANAGER = "alertmanager"
TRACES = "traces"
LOGS = "logs"
DATASOURCE_UIDS = (PROMETHEUS, ALERTMANAGER, TRACES, LOGS)

# Fixed dashboard UIDs: alert links (catalog `dashboard: /d/<uid>`) and bookmarks rely on them.
BUSINESS = "sentinel-business"
PERFORMANCE = "sentinel-performance"
SECURITY = "sentinel-security"
INFRASTRUCTURE = "sentinel-infrastructure"
USER_EXPERIENCE = "sentinel-user-experience"
DASHBOARD_UIDS = (BUSINESS, PERFORMANCE, SECURITY, INFRASTRUCTURE, USER_EXPERIENCE)

# Scrape jobs (roles/prometheus and the catalog's comment). The components whose roles
# have not landed yet are named here once; their panels stay empty until they are scraped.
BACKEND_JOB = "sentinel-backend"
NODE_JOB = "node"
PROMETHEUS_JOB = "prometheus"
ALERTMANAGER_JOB = "alertmanager"
COLLECTOR_JOB = "otelcol"
LOG_STORE_JOBS = ("loki", "victorialogs")
TRACE_STORE_JOBS = ("tempo", "jaeger")
GRAFANA_JOB = "grafana"

# The backend's service name (contract: OTEL_SERVICE_NAME default): the `service` log
# stream label and the traces' service.name.
SERVICE = "sentinel-backend"

# Apdex threshold T (docs/contract.md §3): satisfied <= T, tolerating <= 4T.
APDEX_T = "0.3"
APDEX_4T = "1.2"

# Scrape jobs that exist before any role of issues 11/12/13 lands; a panel querying only
# these must return data on the lab today.
BASE_JOBS = (BACKEND_JOB, NODE_JOB, PROMETHEUS_JOB, ALERTMANAGER_JOB)


def optional_jobs_of(expr: str) -> tuple[str, ...]:
    """The not-yet-deployed scrape jobs a PromQL panel query needs (empty: it needs only BASE_JOBS).

    Span metrics are remote-written by the collector, so they need its job too.
    """
    jobs = []
    if "otelcol_" in expr or "traces_span_metrics_" in expr or f'"{COLLECTOR_JOB}"' in expr:
        jobs.append(COLLECTOR_JOB)
    for job in (*LOG_STORE_JOBS, *TRACE_STORE_JOBS, GRAFANA_JOB):
        if job in expr and job not in jobs:
            jobs.append(job)
    return tuple(jobs)


def with_runbook_base(dashboard: dict, runbook_base_url: str) -> dict:
    """A copy of a generated dashboard whose runbook links point at `runbook_base_url`
    (the environment's alerting.runbook_base_url), for the grafana role to provision."""
    variables = [dict(v, query=runbook_base_url.rstrip("/")) if v.get("name") == "runbook_base" else v
                 for v in dashboard["templating"]["list"]]
    return {**dashboard, "templating": {**dashboard["templating"], "list": variables}}
