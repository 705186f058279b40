"""Every PromQL panel query of the five dashboards answers with data on the lab's real Prometheus.

Grafana itself cannot run here (AGPL policy), so this proves what it would show:
with the backend serving a little of every kind of request, each PromQL query of
files/grafana/dashboards/*.json runs against mon1's Prometheus with $environment
set to the lab's and $instance = All, and must neither error nor come back empty.

Panels of components whose roles have not landed yet (the collector's own
metrics and its span metrics, the trace and log stores, Grafana) are checked as
soon as one of their scrape jobs is an active target; until then the test for
that query is SKIPPED with the job it waits for in the reason (pytest -ra lists
them), never passed silently.

LogQL panels cannot run here: the lab's log store is VictoriaLogs, which speaks
LogsQL. tests/unit/test_dashboards.py checks their stream selectors against the
contract's labels instead. TraceQL panels likewise (Jaeger on the lab).
"""

import pytest
import requests

from lab import operator_tls
from lab.alert_drills import wait_for
from tests.panel_queries import active_jobs, drive_traffic, promql_queries, run, unmet_jobs
from tests.stack import hosts_in

pytestmark = [pytest.mark.lab, pytest.mark.dashboards]
QUERIES = promql_queries()


@pytest.fixture(scope="module")
def lab(first_converge):
    """(Prometheus URL, environment, active scrape jobs) once the backend has served traffic and been scraped."""
    assert first_converge.returncode == 0, first_converge.output[-3000:]
    app = hosts_in("app")[0]
    mon = hosts_in("monitoring")[0]
    prometheus = f"https://{mon.settings.address}:{mon.settings.prometheus.listen_port}"
    statuses = drive_traffic(f"http://{app.settings.address}:{app.settings.backend.port}")
    assert {"200", "201", "401", "403", "429"} <= set(statuses), statuses
    # Rates need two samples: wait until the rate limiter's counter, the last series the
    # traffic creates (at its first 429), has been scraped twice.
    moved = 'count_over_time(rate_limit_hits_total{job="sentinel-backend"}[2m]) >= 2'
    wait_for("the traffic to show in Prometheus", lambda: _has_data(prometheus, moved), 120, 5)
    # The span metrics arrive by remote write every otel_collector.span_metrics_flush (15s), not by
    # scrape: after a gateway restart (the crash drills) their rates need two flushes of this traffic,
    # the backend's own server and client spans (the crash drills' load has other services' spans).
    for kind in ("SPAN_KIND_SERVER", "SPAN_KIND_CLIENT"):
        spans = f'count_over_time(traces_span_metrics_calls_total{{service_name="sentinel-backend",span_kind="{kind}"}}[2m]) >= 2'
        wait_for(f"the span metrics of the traffic ({kind})", lambda: _has_data(prometheus, spans), 180, 5)
    return prometheus, mon.settings.environment, active_jobs(prometheus)


def _has_data(prometheus: str, expr: str) -> bool:
    answer = operator_tls.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    return bool(answer["data"]["result"])


def test_there_are_panel_queries_to_prove():
    assert len(QUERIES) >= 50, "the dashboards lost their PromQL panels"


# Panels whose data the lab cannot have, each with the reason. The lab hosts'
# root filesystem is an overlay mount, which node_exporter ignores by default
# (--collector.filesystem.fs-types-exclude) and the disk panel and the
# host-disk-space-low alert exclude as well; their other mounts are tmpfs or
# /run/host bind mounts. Real hosts have ext4/xfs roots.
NOT_ON_THE_LAB = {
    "sentinel-infrastructure/Disk space free/A": "the lab hosts' root filesystem is an overlay mount, excluded on purpose",
}


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.id)
def test_panel_query_returns_data(query, lab):
    prometheus, environment, jobs = lab
    if query.id in NOT_ON_THE_LAB:
        pytest.skip(f"NOT PROVABLE ON THE LAB: {NOT_ON_THE_LAB[query.id]}")
    waiting = unmet_jobs(query, jobs)
    if waiting:
        pytest.skip(f"NOT CHECKED YET: needs scrape job {' or '.join(waiting)}, which Prometheus does not scrape yet "
                    f"(active: {', '.join(sorted(jobs))})")
    problem = run(prometheus, query, environment)
    assert problem is None, f"{query.id}: {problem}"
