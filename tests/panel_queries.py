"""The dashboards' panel queries, read from the committed JSON, and the means to prove them on a Prometheus.

Used by tests/e2e/test_dashboards.py (the lab) and runnable on its own against any
Prometheus, e.g. a local one scraping a local stand-in:

    .venv/bin/python -m tests.panel_queries --prometheus http://127.0.0.1:15090 \
        --backend http://127.0.0.1:15300 --environment local

Grafana's variables are replaced the way Grafana would: $environment by the
environment, $instance by its "All" value `.*`, the interval variables by
fixed windows long enough for a 15 s scrape interval.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import requests

from files.grafana.dashboards_src import BASE_JOBS, LOGS, PROMETHEUS, TRACES, optional_jobs_of

DASHBOARDS_DIR = Path(__file__).resolve().parents[1] / "files" / "grafana" / "dashboards"
INTERVALS = {"$__rate_interval": "2m", "$__range": "15m", "$__auto": "1m", "$__interval": "1m"}
MEMBER = {"X-User-Id": "m-0001", "X-User-Email": "member@sentinel.test", "X-User-Role": "member"}
STAFF = {"X-User-Id": "u-staff", "X-User-Email": "staff@sentinel.test", "X-User-Role": "staff"}


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref: str
    datasource: str
    expr: str

    @property
    def id(self) -> str:
        return f"{self.dashboard}/{self.panel}/{self.ref}"


def _panels(document: dict):
    for panel in document.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows hold their panels


def panel_queries(datasource: str | None = None) -> list[PanelQuery]:
    """Every query of every committed dashboard (optionally only those of one datasource uid)."""
    found = []
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        document = json.loads(path.read_text())
        for panel in _panels(document):
            for target in panel.get("targets", []):
                uid = (target.get("datasource") or panel.get("datasource") or {}).get("uid")
                text = target.get("expr") if uid in (PROMETHEUS, LOGS) else target.get("query")
                if text and (datasource is None or uid == datasource):
                    found.append(PanelQuery(document["uid"], panel["title"], target.get("refId", ""), uid, text))
    return found


def promql_queries() -> list[PanelQuery]:
    return panel_queries(PROMETHEUS)


def logql_queries() -> list[PanelQuery]:
    return panel_queries(LOGS)


def traceql_queries() -> list[PanelQuery]:
    return panel_queries(TRACES)


def substitute(expr: str, environment: str) -> str:
    """The query as Grafana sends it with $environment chosen and $instance = All."""
    for variable, value in INTERVALS.items():
        expr = expr.replace(variable, value)
    expr = expr.replace("$environment", environment).replace("$instance", ".*")
    leftover = re.search(r"\$\{?\w+", expr)
    if leftover:
        raise ValueError(f"unknown variable {leftover.group(0)} in {expr}")
    return expr


def drive_traffic(backend_url: str) -> dict[str, int]:
    """A little of every kind of request, so every backend series moves: reads, writes
    (check-in by member and by badge, check-out, visitor, attendance), logins (good,
    wrong, then rate-limited), 401 and 403. Returns the count per status."""
    calls = [
        ("GET", "/api/events", MEMBER, None), ("GET", "/api/badges", MEMBER, None),
        ("GET", "/api/members", STAFF, None), ("GET", "/api/members/m-0002", STAFF, None),
        ("GET", "/api/duty-assignments", STAFF, None),
        ("POST", "/api/checkins", STAFF, {"memberId": "m-0003", "site": "hq"}),
        ("POST", "/api/checkins", STAFF, {"badgeId": "b-0004", "site": "north"}),
        ("POST", "/api/checkins", STAFF, {"memberId": "m-0003", "site": "hq", "direction": "out"}),
        ("POST", "/api/visitors", STAFF, {"name": "Ada Visitor", "site": "south"}),
        ("POST", "/api/events/ev-101/attendance", MEMBER, {}),
        ("POST", "/api/auth/login", {}, {"email": "member@sentinel.test", "password": "member-pass"}),
        ("GET", "/api/events", {}, None),  # 401 missing user context
        ("GET", "/api/members", MEMBER, None),  # 403 forbidden
        ("GET", "/no/such/path", MEMBER, None),  # unmatched
    ]
    # Six wrong passwords for one client+email: five 401s, then 429s (contract §2).
    calls += [("POST", "/api/auth/login", {}, {"email": "staff@sentinel.test", "password": "wrong"})] * 6
    statuses: dict[str, int] = {}
    with requests.Session() as session:
        for _ in range(3):
            for method, path, headers, body in calls:
                response = session.request(method, f"{backend_url}{path}", headers=headers, json=body, timeout=10)
                statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
    return statuses


def _tls(url: str) -> dict:
    """The operator's client certificate for a Prometheus served over TLS (the lab's); none for plain HTTP."""
    if not url.startswith("https://"):
        return {}
    from lab.operator_tls import operator_kwargs

    return operator_kwargs()


def active_jobs(prometheus_url: str) -> set[str]:
    """Scrape jobs with at least one active target."""
    response = requests.get(f"{prometheus_url}/api/v1/targets", params={"state": "active"}, timeout=10, **_tls(prometheus_url))
    response.raise_for_status()
    return {t["labels"]["job"] for t in response.json()["data"]["activeTargets"]}


def unmet_jobs(query: PanelQuery, jobs: set[str]) -> tuple[str, ...]:
    """The optional jobs this query waits for when none of them is scraped yet (empty: check it)."""
    needed = optional_jobs_of(query.expr)
    return needed if needed and not set(needed) & jobs else ()


def run(prometheus_url: str, query: PanelQuery, environment: str) -> str | None:
    """None when the query answers with data; otherwise what went wrong."""
    expr = substitute(query.expr, environment)
    try:
        response = requests.get(f"{prometheus_url}/api/v1/query", params={"query": expr}, timeout=30, **_tls(prometheus_url))
    except requests.RequestException as err:
        return f"request failed: {err}"
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code != 200 or body.get("status") != "success":
        return f"error {response.status_code}: {body.get('error', response.text[:300])}  [{expr}]"
    if not body["data"]["result"]:
        return f"empty result  [{expr}]"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.panel_queries", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prometheus", required=True)
    parser.add_argument("--environment", required=True)
    parser.add_argument("--backend", help="drive traffic to this stand-in first")
    args = parser.parse_args(argv)
    if args.backend:
        print("traffic:", drive_traffic(args.backend))
    jobs = active_jobs(args.prometheus)
    print(f"active jobs: {sorted(jobs)} (always expected: {list(BASE_JOBS)})")
    failures = 0
    for query in promql_queries():
        waiting = unmet_jobs(query, jobs)
        if waiting:
            print(f"NOT CHECKED  {query.id}: needs job {' or '.join(waiting)}, not scraped here")
            continue
        problem = run(args.prometheus, query, args.environment)
        failures += problem is not None
        print(f"{'FAIL' if problem else 'ok  '}         {query.id}{': ' + problem if problem else ''}")
    print(f"{failures} failing of {len(promql_queries())} PromQL panel queries")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
