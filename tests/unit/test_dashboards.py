"""The five dashboards: generated equals committed, fixed uids and datasources, every contract
metric shown, every alert linked, and the queries checked offline (PromQL by promtool, LogQL
and TraceQL against the contract's labels and fields).

The PromQL queries are proven against a real Prometheus by tests/e2e/test_dashboards.py.
LogQL cannot be run on the lab (its log store is VictoriaLogs, which speaks LogsQL), so
the checks below are what the LogQL panels get.
"""

import json
import re
import subprocess

import pytest
import yaml

from files.grafana.dashboards_src import (
    DASHBOARD_UIDS, DATASOURCE_UIDS, LOGS, OUTPUT_DIR, PROMETHEUS, SERVICE, TRACES, optional_jobs_of,
)
from files.grafana.dashboards_src.generate import render_all, runbooks_by_dashboard
from roles.alerting.catalog import REPO, expr_problem, load_catalog
from tests.mirror_binaries import extract
from tests.panel_queries import _panels, logql_queries, promql_queries, substitute, traceql_queries

pytestmark = pytest.mark.dashboards

CONTRACT = yaml.safe_load((REPO / "files" / "backend" / "contract.yml").read_text())
DASHBOARDS = {p.stem: json.loads(p.read_text()) for p in sorted(OUTPUT_DIR.glob("*.json"))}
# The stream labels the collector agent sets on every backend line (contract: logs.loki_label_fields).
STREAM_LABELS = set(CONTRACT["logs"]["loki_label_fields"])
LOG_FIELDS = {f["name"] for f in CONTRACT["logs"]["fields"]}


def test_committed_json_is_what_the_code_generates():
    rendered = render_all()
    assert set(rendered) == set(DASHBOARDS), "run: .venv/bin/python -m files.grafana.dashboards_src"
    for uid, text in rendered.items():
        assert (OUTPUT_DIR / f"{uid}.json").read_text() == text, (
            f"files/grafana/dashboards/{uid}.json is stale: run .venv/bin/python -m files.grafana.dashboards_src")


def test_five_dashboards_with_fixed_uids_variables_and_links():
    assert tuple(sorted(DASHBOARDS)) == tuple(sorted(DASHBOARD_UIDS))
    runbooks = runbooks_by_dashboard()
    for uid, board in DASHBOARDS.items():
        assert board["uid"] == uid
        assert "sentinel" in board["tags"]
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert {"environment", "instance"} <= set(variables), uid
        assert variables["instance"]["includeAll"] and variables["instance"]["allValue"] == ".*"
        assert "$environment" in variables["instance"]["query"]
        urls = [link.get("url", "") for link in board["links"]]
        for _, runbook in runbooks.get(uid, []):
            assert f"${{runbook_base}}/{runbook}" in urls, f"{uid} lacks the runbook link {runbook}"
        ids = [p["id"] for p in _panels(board)]
        assert len(ids) == len(set(ids)) and 0 not in ids, f"{uid}: panel ids must be unique and set"


def test_every_alert_links_to_an_existing_dashboard():
    for alert in load_catalog():
        assert alert.dashboard, f"{alert.uid} has no dashboard"
        match = re.fullmatch(r"/d/([a-z0-9-]+)", alert.dashboard)
        assert match and match.group(1) in DASHBOARD_UIDS, f"{alert.uid}: {alert.dashboard} is none of {DASHBOARD_UIDS}"


def test_every_runbook_link_target_exists():
    for uid, links in runbooks_by_dashboard().items():
        for _, runbook in links:
            assert (REPO / runbook).is_file(), f"{uid}: {runbook}"


def test_datasources_are_referenced_by_the_agreed_uids():
    for uid, board in DASHBOARDS.items():
        for panel in _panels(board):
            refs = [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets", [])]
            for ref in filter(None, refs):
                assert ref["uid"] in DATASOURCE_UIDS, f"{uid}/{panel['title']}: unknown datasource uid {ref['uid']}"
        for variable in board["templating"]["list"]:
            if variable.get("datasource"):
                assert variable["datasource"]["uid"] in DATASOURCE_UIDS


def test_every_contract_metric_is_on_a_dashboard():
    exprs = " ".join(q.expr for q in promql_queries())
    metrics = [m["name"] for m in CONTRACT["metrics"]] + [m["name"] for m in CONTRACT["runtime_metrics"]]
    missing = [name for name in metrics if not re.search(rf"\b{name}(_bucket|_count|_sum)?\b", exprs)]
    assert missing == []


def test_backend_queries_use_only_the_contracts_labels():
    """A label the backend does not emit selects nothing: the panel would be empty on every system."""
    labels_of = {m["name"]: set(m["labels"]) for m in CONTRACT["metrics"]}
    labels_of.update({m["name"]: set() for m in CONTRACT["runtime_metrics"]})
    target_labels = {"job", "environment", "instance", "host"}
    for query in promql_queries():
        for name, matchers in re.findall(r"\b([a-z_]+?)(?:_bucket|_count|_sum)?\{([^}]*)\}", query.expr):
            base = next((m for m in labels_of if name == m or name.startswith(m)), None)
            if base is None:
                continue
            used = set(re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)", matchers))
            allowed = labels_of[base] | target_labels | ({"le"} if "le=" in matchers else set())
            assert used <= allowed, f"{query.id}: {sorted(used - allowed)} are not labels of {base}"


def test_optional_components_are_recognised():
    """Panels of not-yet-deployed components must be gated, the others never (the e2e test relies on it)."""
    gated = {q.id: optional_jobs_of(q.expr) for q in promql_queries()}
    assert any("otelcol" in jobs for jobs in gated.values())
    for query in promql_queries():
        needs_optional = re.search(r"otelcol_|traces_span_metrics_|loki|tempo|jaeger|victorialogs|grafana", query.expr)
        assert bool(gated[query.id]) == bool(needs_optional), query.id


@pytest.fixture(scope="module")
def promtool(tmp_path_factory):
    return extract("prometheus", "promtool", tmp_path_factory.mktemp("promtool"))


def test_every_promql_panel_query_parses(promtool, tmp_path):
    """promtool parses each query (as a recording rule), after Grafana's variables are substituted."""
    rules = [{"record": f"panel:query_{i}", "expr": substitute(q.expr, "lab")} for i, q in enumerate(promql_queries())]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("query", promql_queries(), ids=lambda q: q.id)
def test_promql_is_balanced(query):
    assert expr_problem(substitute(query.expr, "lab")) is None


# --- LogQL -------------------------------------------------------------------------

_PAIRS = {")": "(", "]": "[", "}": "{"}


def balance_problem(expr: str) -> str | None:
    """Unbalanced brackets or an unterminated string in a LogQL or TraceQL query.

    Not PromQL, so promql-parser cannot check them; the rest of the checks below
    hold them against the contract.
    """
    stack: list[str] = []
    quote = None
    escaped = False
    for char in expr:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
            continue
        if char in "\"'`":
            quote = char
        elif char in "([{":
            stack.append(char)
        elif char in ")]}":
            if not stack or stack.pop() != _PAIRS[char]:
                return f"unbalanced {char!r}"
    if quote:
        return f"unterminated string (missing {quote})"
    if stack:
        return f"unclosed {stack[-1]!r}"
    return None if expr.strip() else "empty expression"

_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')


def stream_selectors(logql: str) -> list[str]:
    """The `{...}` stream selectors of a LogQL query (log or metric query)."""
    return re.findall(r"\{([^{}]*)\}", logql)


def logql_problem(logql: str) -> str | None:
    """What is wrong with a LogQL query against the contract's stream labels; None when it is fine."""
    if balance_problem(logql):
        return balance_problem(logql)
    selectors = stream_selectors(logql)
    if not selectors:
        return "no stream selector"
    for body in selectors:
        matchers = [m for m in body.split(",")]
        parsed = [_MATCHER.fullmatch(m) for m in matchers]
        if not all(parsed):
            return f"unparsable matcher in {{{body}}}"
        labels = {m.group(1): m.group(3) for m in parsed}
        if not any(op in ("=", "=~") and value for m in parsed for _, op, value in [m.groups()]):
            return "a selector needs at least one positive matcher"
        unknown = set(labels) - STREAM_LABELS
        if unknown:
            return f"{sorted(unknown)} are not stream labels (contract: {sorted(STREAM_LABELS)})"
        if labels.get("service") not in (None, SERVICE, CONTRACT["service_name"]):
            return f"service {labels['service']!r} is not the backend's"
        if "stream" in labels and labels["stream"] not in CONTRACT["logs"]["streams"]:
            return f"stream {labels['stream']!r} is none of {sorted(CONTRACT['logs']['streams'])}"
    # Field filters after `| json` must name fields the backend writes.
    for field in re.findall(r"\|\s*([A-Za-z_]+)\s*(?:>=|<=|!=|=~|!~|=|>|<)", logql):
        if field not in LOG_FIELDS:
            return f"filters on {field!r}, which no log line carries"
        if "| json" not in logql.split(field)[0]:
            return f"filters on {field!r} before `| json` parsed it"
    for field in re.findall(r"by \(([^)]*)\)", logql):
        for name in (f.strip() for f in field.split(",")):
            if name not in LOG_FIELDS | STREAM_LABELS:
                return f"groups by {name!r}, which is neither a label nor a field"
    return None


def test_there_are_log_and_trace_panels():
    assert len(logql_queries()) >= 6 and len(traceql_queries()) >= 2


@pytest.mark.parametrize("query", logql_queries(), ids=lambda q: q.id)
def test_logql_panel_matches_the_contract(query):
    assert logql_problem(substitute(query.expr, "lab")) is None, logql_problem(substitute(query.expr, "lab"))
    assert query.datasource == LOGS


@pytest.mark.parametrize("bad, why", [
    ('{service="sentinel-backend", traceId="abc"} | json', "not stream labels"),
    ('{service="sentinel-backend", stream="debug"}', "none of"),
    ('{service="billing"}', "not the backend's"),
    ('{service="sentinel-backend"} | json | shoeSize > 3', "no log line carries"),
    ('{service="sentinel-backend"} | status >= 500 | json', "before `| json`"),
    ('sum by (clientIp) (count_over_time({stream="app"} | json [5m]))', "neither a label nor a field"),
    ('{service="sentinel-backend"', "unclosed"),
    ('count_over_time([5m])', "no stream selector"),
])
def test_logql_check_refuses_a_bad_query(bad, why):
    assert why in (logql_problem(bad) or "")


@pytest.mark.parametrize("query", traceql_queries(), ids=lambda q: q.id)
def test_traceql_panel_uses_contract_attributes(query):
    assert balance_problem(query.expr) is None and query.datasource == TRACES
    assert f'resource.service.name="{SERVICE}"' in query.expr
    for attribute in re.findall(r"\b(?:resource|span)\.([a-z_.]+)", query.expr):
        assert attribute in CONTRACT["traces"]["resource"] or any(
            attribute in s["attributes"] for s in CONTRACT["traces"]["spans"]), attribute


def test_prometheus_panels_query_prometheus():
    assert all(q.datasource == PROMETHEUS for q in promql_queries())


def test_runbook_links_follow_the_environments_base_url():
    from files.grafana.dashboards_src import with_runbook_base

    board = with_runbook_base(DASHBOARDS["sentinel-performance"], "https://wiki.example/ops/")
    base = next(v for v in board["templating"]["list"] if v["name"] == "runbook_base")
    assert base["query"] == "https://wiki.example/ops" and base["hide"] == 2  # hidden
    assert any(link.get("url", "").startswith("${runbook_base}/docs/runbooks/") for link in board["links"])
    assert DASHBOARDS["sentinel-performance"]["templating"]["list"] != board["templating"]["list"]
