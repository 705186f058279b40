"""Building blocks shared by the five dashboards: variables, links, panels with fixed ids."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, dashboard, logs, loki, prometheus, stat, table, tempo, timeseries
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from files.grafana.dashboards_src import FOLDER, LOGS, PROMETHEUS, TAG, TRACES

PROMETHEUS_REF = DataSourceRef(type_val="prometheus", uid=PROMETHEUS)
LOGS_REF = DataSourceRef(type_val="loki", uid=LOGS)
TRACES_REF = DataSourceRef(type_val="tempo", uid=TRACES)

# The runbooks' base URL, a hidden constant: the grafana role may replace its value per
# environment (with_runbook_base) so links follow alerting.runbook_base_url.
RUNBOOK_BASE_VARIABLE = "runbook_base"
DEFAULT_RUNBOOK_BASE = "https://git.sentinel.internal/sentinel/observability/-/blob/main"


def selector(*matchers: str) -> str:
    return "{" + ", ".join(matchers) + "}"


def scoped(job: str, *extra: str) -> str:
    """A series selector for `job`, narrowed by the dashboard's environment and instance variables."""
    return selector(f'job="{job}"', 'environment="$environment"', 'instance=~"$instance"', *extra)


class Board:
    """One dashboard: fixed uid, the folder's tag, environment and instance variables,
    links to the other Sentinel dashboards and to the runbooks of the alerts that point here."""

    def __init__(self, uid: str, title: str, description: str, instance_job: str, runbooks: list[tuple[str, str]]):
        self.uid = uid
        self._next_id = 1
        self.builder = (
            dashboard.Dashboard(title)
            .uid(uid)
            .description(description)
            .tags([TAG, FOLDER.lower()])
            .editable()
            .tooltip(DashboardCursorSync.CROSSHAIR)
            .time("now-1h", "now")
            .refresh("1m")
            .timezone("utc")
            .with_variable(
                dashboard.QueryVariable("environment")
                .label("Environment")
                .datasource(PROMETHEUS_REF)
                .query("label_values(up, environment)")
                .refresh(VariableRefresh.ON_DASHBOARD_LOAD)
                .sort(VariableSort.ALPHABETICAL_ASC)
            )
            .with_variable(
                dashboard.QueryVariable("instance")
                .label("Instance")
                .datasource(PROMETHEUS_REF)
                .query(f'label_values(up{{job="{instance_job}", environment="$environment"}}, instance)')
                .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
                .sort(VariableSort.ALPHABETICAL_ASC)
                .multi(True)
                .include_all(True)
                .all_value(".*")
                .current(VariableOption(selected=True, text="All", value="$__all"))
            )
            .with_variable(
                dashboard.ConstantVariable(RUNBOOK_BASE_VARIABLE)
                .label("Runbook base URL")
                .value(DEFAULT_RUNBOOK_BASE)
            )
            .link(
                dashboard.DashboardLink("Sentinel dashboards")
                .type(DashboardLinkType.DASHBOARDS)
                .tags([TAG])
                .as_dropdown(True)
                .include_vars(True)
                .keep_time(True)
            )
        )
        for name, runbook in runbooks:
            self.builder.link(
                dashboard.DashboardLink(f"Runbook: {name}")
                .type(DashboardLinkType.LINK)
                .url(f"${{{RUNBOOK_BASE_VARIABLE}}}/{runbook}")
                .icon("doc")
                .target_blank(True)
            )

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def row(self, title: str) -> Board:
        self.builder.with_row(dashboard.Row(title).id(self._id()))
        return self

    def add(self, panel) -> Board:
        self.builder.with_panel(panel.id(self._id()))
        return self

    def build(self):
        return self.builder.build()


def promql(expr: str, legend: str = "", ref: str = "A", instant: bool = False):
    query = prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref).datasource(PROMETHEUS_REF)
    return query.instant() if instant else query.range()


def _with_targets(panel, queries: list[tuple[str, str]], instant: bool = False):
    for index, (expr, legend) in enumerate(queries):
        panel.with_target(promql(expr, legend, chr(ord("A") + index), instant))
    return panel


def graph(title: str, description: str, queries: list[tuple[str, str]], unit: str, width: int = 12, height: int = 8):
    """A time series of one or more PromQL queries, each (expr, legend)."""
    panel = timeseries.Panel().title(title).description(description).datasource(PROMETHEUS_REF).unit(unit)
    return _with_targets(panel.span(width).height(height), queries)


def single(title: str, description: str, expr: str, unit: str, width: int = 6, decimals: int | None = None):
    """One current value (an instant query)."""
    panel = stat.Panel().title(title).description(description).datasource(PROMETHEUS_REF).unit(unit).span(width).height(4)
    if decimals is not None:
        panel.decimals(decimals)
    return _with_targets(panel, [(expr, "")], instant=True)


def bars(title: str, description: str, expr: str, legend: str, unit: str, width: int = 12):
    """One bar per series of an instant query."""
    panel = bargauge.Panel().title(title).description(description).datasource(PROMETHEUS_REF).unit(unit).span(width).height(8)
    return _with_targets(panel, [(expr, legend)], instant=True)


def grid(title: str, description: str, expr: str, width: int = 12):
    """An instant query as a table, one row per series."""
    panel = table.Panel().title(title).description(description).datasource(PROMETHEUS_REF).span(width).height(8)
    return panel.with_target(promql(expr, "", "A", instant=True).format(PromQueryFormat.TABLE))


def log_lines(title: str, description: str, logql: str, width: int = 24, height: int = 10):
    """Log lines from the log store (LogQL: the production store is Loki)."""
    return (
        logs.Panel().title(title).description(description).datasource(LOGS_REF).span(width).height(height)
        .show_time(True).wrap_log_message(True).enable_log_details(True)
        .with_target(loki.Dataquery().expr(logql).ref_id("A").datasource(LOGS_REF).max_lines(500))
    )


def log_graph(title: str, description: str, logql: str, legend: str, unit: str = "short", width: int = 12):
    """A LogQL metric query (count_over_time and friends) as a time series."""
    return (
        timeseries.Panel().title(title).description(description).datasource(LOGS_REF).unit(unit).span(width).height(8)
        .with_target(loki.Dataquery().expr(logql).legend_format(legend).ref_id("A").datasource(LOGS_REF).range(True))
    )


def log_stat(title: str, description: str, logql: str, unit: str = "short", width: int = 6):
    """A LogQL metric query reduced to one number over the dashboard's range."""
    return (
        stat.Panel().title(title).description(description).datasource(LOGS_REF).unit(unit).span(width).height(4)
        .with_target(loki.Dataquery().expr(logql).ref_id("A").datasource(LOGS_REF).instant(True))
    )


def traces(title: str, description: str, traceql: str, width: int = 24):
    """A table of matching traces from the trace store (TraceQL)."""
    return (
        table.Panel().title(title).description(description).datasource(TRACES_REF).span(width).height(8)
        .with_target(tempo.TempoQuery().query(traceql).query_type("traceql").limit(20).ref_id("A").datasource(TRACES_REF))
    )
