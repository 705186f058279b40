"""The five dashboards. Metric names and labels: docs/contract.md §3 (backend), the exporters, the stack's jobs.

Conventions: backend series are selected with `scoped(BACKEND_JOB)` (job, $environment,
$instance); user-facing figures keep to `route=~"/api/.*"` (contract: /admin is not
user-facing). Ratios whose numerator may have no series yet (no 5xx so far) add
`or <denominator> * 0`, so the panel shows 0 rather than "No data".
"""

from __future__ import annotations

from files.grafana.dashboards_src import (
    ALERTMANAGER_JOB,
    APDEX_4T,
    APDEX_T,
    BACKEND_JOB,
    BUSINESS,
    COLLECTOR_JOB,
    GRAFANA_JOB,
    INFRASTRUCTURE,
    LOG_STORE_JOBS,
    NODE_JOB,
    PERFORMANCE,
    PROMETHEUS_JOB,
    SECURITY,
    SERVICE,
    TRACE_STORE_JOBS,
    USER_EXPERIENCE,
)
from files.grafana.dashboards_src.panels import (
    Board, bars, graph, grid, log_graph, log_lines, log_stat, scoped, selector, single, traces,
)

RATE = "$__rate_interval"
RANGE = "$__range"
API = 'route=~"/api/.*"'
B = scoped(BACKEND_JOB)
B_API = scoped(BACKEND_JOB, API)
B_5XX = scoped(BACKEND_JOB, API, 'status=~"5.."')
N = scoped(NODE_JOB)
ENV = 'environment="$environment"'
# The log store's stream label for the environment is `env` (contract: logs.loki_label_fields).
LOG_ENV = 'env="$environment"'
STORE_JOBS = "|".join((*LOG_STORE_JOBS, *TRACE_STORE_JOBS))


def is_(label: str, value: str) -> str:
    return f'{label}="{value}"'


def le_is(le: str) -> str:
    return is_("le", le)


# Selectors built here: Python 3.11 f-strings cannot hold the quotes they need.
B_LE_05 = scoped(BACKEND_JOB, le_is("0.5"))
B_ACTIVE = scoped(BACKEND_JOB, is_("state", "active"))
B_MAX = scoped(BACKEND_JOB, is_("state", "max"))
B_INVALID = scoped(BACKEND_JOB, is_("reason", "invalid_credentials"))
B_MISSING = scoped(BACKEND_JOB, is_("reason", "missing_user_context"))
B_FORBIDDEN = scoped(BACKEND_JOB, is_("reason", "forbidden"))
B_REFUSED = scoped(BACKEND_JOB, 'status=~"401|403|429"')
B_API_4T = scoped(BACKEND_JOB, API, le_is(APDEX_4T))
N_IDLE = scoped(NODE_JOB, is_("mode", "idle"))
N_NOT_LO = scoped(NODE_JOB, 'device!="lo"')
N_ACTIVE = scoped(NODE_JOB, is_("state", "active"))


def logs_of(stream: str) -> str:
    """The LogQL stream selector of one of the backend's log streams (contract §4: `stream` is the label)."""
    return selector(f'service="{SERVICE}"', LOG_ENV, f'stream="{stream}"')


def _error_ratio(by: str) -> str:
    group = f"sum by ({by}) " if by else "sum "
    total = f"{group}(rate(http_requests_total{B_API}[{RATE}]))"
    return f"({group}(rate(http_requests_total{B_5XX}[{RATE}])) or {total} * 0) / {total}"


def _quantile(q: str, by: str, metric: str, sel: str, window: str = RATE) -> str:
    keep = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({keep}) (rate({metric}_bucket{sel}[{window}])))"


def business(runbooks) -> Board:
    board = Board(BUSINESS, "Sentinel / Business", "Check-ins, members, visitors, events and badge scans (docs/contract.md §3).",
                  BACKEND_JOB, runbooks)
    board.row("Today at the doors")
    board.add(single("Check-ins", "Member check-ins in the selected time range.",
                     f"sum(increase(sentinel_checkins_total{B}[{RANGE}]))", "short", decimals=0))
    board.add(single("Active members", "Members with an active membership.", f"max(sentinel_active_members{B})", "short", decimals=0))
    board.add(single("Visitors", "Visitors registered in the selected time range.",
                     f"sum(increase(sentinel_visitors_total{B}[{RANGE}]))", "short", decimals=0))
    board.add(single("Badge scans", "Check-ins made by scanning a badge, in the selected time range.",
                     f"sum(increase(sentinel_badge_scans_total{B}[{RANGE}]))", "short", decimals=0))
    board.row("Trends")
    board.add(graph("Check-ins per minute by site", "sentinel_checkins_total by site.",
                    [(f"sum by (site) (rate(sentinel_checkins_total{B}[{RATE}])) * 60", "{{site}}")], "short"))
    board.add(graph("Badge scans and visitors per minute", "Check-ins by badge, and visitors registered.",
                    [(f"sum(rate(sentinel_badge_scans_total{B}[{RATE}])) * 60", "badge scans"),
                     (f"sum(rate(sentinel_visitors_total{B}[{RATE}])) * 60", "visitors")], "short"))
    board.add(bars("Event attendance", "Attendances recorded per event in the selected time range.",
                   f"sum by (event) (increase(sentinel_event_attendance_total{B}[{RANGE}]))", "{{event}}", "short"))
    board.add(graph("Badge share of check-ins", "Share of check-ins made with a badge rather than a member id.",
                    [(f"sum(rate(sentinel_badge_scans_total{B}[{RATE}])) / clamp_min(sum(rate(sentinel_checkins_total{B}[{RATE}])), 1e-9)",
                      "badge share")], "percentunit"))
    board.add(graph("Visit length", "Time on site, observed at check-out (sentinel_sessions_duration_seconds).",
                    [(_quantile("0.5", "", "sentinel_sessions_duration_seconds", B, "1h"), "median"),
                     (_quantile("0.9", "", "sentinel_sessions_duration_seconds", B, "1h"), "p90")], "s"))
    board.add(graph("Duty assignments looked up per minute", "sentinel_duty_assignments_total.",
                    [(f"sum(rate(sentinel_duty_assignments_total{B}[{RATE}])) * 60", "assignments")], "short"))
    board.add(grid("Running versions", "sentinel_build_info: the backend version per instance.",
                   f"max by (instance, version) (sentinel_build_info{B})"))
    board.row("Audit trail")
    board.add(log_lines("Audit log", "Check-ins, visitors, attendance and logins (the audit stream).",
                        f"{logs_of('audit')} | json"))
    return board


def performance(runbooks) -> Board:
    board = Board(PERFORMANCE, "Sentinel / Performance", "RED per route, latency percentiles, database queries and pool.",
                  BACKEND_JOB, runbooks)
    board.row("Rate, errors, duration")
    board.add(graph("Requests per second by route", "http_requests_total by route template.",
                    [(f"sum by (route) (rate(http_requests_total{B}[{RATE}]))", "{{route}}")], "reqps"))
    board.add(graph("5xx ratio by route", "Share of each API route's requests answered 5xx (the critical alert: 5%).",
                    [(_error_ratio("route"), "{{route}}")], "percentunit"))
    board.add(graph("Requests per second by status", "Every answer by status code.",
                    [(f"sum by (status) (rate(http_requests_total{B}[{RATE}]))", "{{status}}")], "reqps"))
    board.add(single("API latency p95", "Over the last 5 minutes; the critical alert fires above 2 s.",
                     _quantile("0.95", "", "http_request_duration_seconds", B_API, "5m"), "s", width=6))
    board.add(single("API 5xx ratio", "Over the last 5 minutes; the critical alert fires above 5%.",
                     _error_ratio("").replace(RATE, "5m"), "percentunit", width=6))
    for q, name in (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99")):
        board.add(graph(f"Latency {name} by route", f"{name} of http_request_duration_seconds per route template.",
                        [(_quantile(q, "route", "http_request_duration_seconds", B), "{{route}}")], "s", width=8))
    board.row("Database")
    board.add(graph("Slow queries per second (> 500 ms)", "db_query_duration_seconds above the 0.5 s bucket, by operation.",
                    [(f"sum by (operation) (rate(db_query_duration_seconds_count{B}[{RATE}])) - "
                      f"sum by (operation) (rate(db_query_duration_seconds_bucket{B_LE_05}[{RATE}]))",
                      "{{operation}}")], "reqps", width=8))
    board.add(graph("Query latency p95 by operation", "db_query_duration_seconds.",
                    [(_quantile("0.95", "operation", "db_query_duration_seconds", B), "{{operation}}")], "s", width=8))
    board.add(graph("Connection pool", "db_pool_connections: active, idle and the pool size.",
                    [(f"sum by (state) (db_pool_connections{B})", "{{state}}")], "short", width=8))
    board.add(graph("Pool utilisation", "Active connections over the pool size; 100% raises db-pool-exhausted.",
                    [(f"sum by (instance) (db_pool_connections{B_ACTIVE}) / "
                      f"sum by (instance) (db_pool_connections{B_MAX})", "{{instance}}")],
                    "percentunit"))
    board.add(graph("Queries per second by operation", "Queries that ran (refused ones are not observed).",
                    [(f"sum by (operation) (rate(db_query_duration_seconds_count{B}[{RATE}]))", "{{operation}}")], "reqps"))
    board.row("Traces (span metrics from the collector)")
    board.add(graph("Server spans p95 by span name", "Span metrics of the SERVER spans (spanmetrics connector).",
                    [(f'histogram_quantile(0.95, sum by (span_name, le) (rate(traces_span_metrics_duration_milliseconds_bucket'
                      f'{{service_name="{SERVICE}", span_kind="SPAN_KIND_SERVER"}}[{RATE}])))', "{{span_name}}")], "ms"))
    board.add(graph("Database spans per second by name", "CLIENT spans, one per query, e.g. SELECT members.",
                    [(f'sum by (span_name) (rate(traces_span_metrics_calls_total{{service_name="{SERVICE}", '
                      f'span_kind="SPAN_KIND_CLIENT"}}[{RATE}]))', "{{span_name}}")], "reqps"))
    board.add(traces("Slowest requests (over 1 s)", "Server spans slower than one second; open one to see its queries.",
                     f'{{resource.service.name="{SERVICE}" && kind=server && duration > 1s}}'))
    board.row("Runtime")
    board.add(graph("CPU", "process_cpu_seconds_total (common to the stand-in and the Node backend).",
                    [(f"rate(process_cpu_seconds_total{B}[{RATE}])", "{{instance}}")], "percentunit"))
    board.add(graph("Memory", "Resident and virtual memory of the backend process.",
                    [(f"process_resident_memory_bytes{B}", "{{instance}} resident"),
                     (f"process_virtual_memory_bytes{B}", "{{instance}} virtual")], "bytes"))
    board.add(graph("Open file descriptors", "Used against the limit; at the limit new connections fail.",
                    [(f"process_open_fds{B}", "{{instance}} open"), (f"process_max_fds{B}", "{{instance}} limit")], "short"))
    board.add(graph("Uptime", "Seconds since the backend process started; a drop is a restart.",
                    [(f"time() - process_start_time_seconds{B}", "{{instance}}")], "s"))
    board.add(log_lines("Failed requests", "request completed lines with a 5xx status.",
                        f'{logs_of("app")} | json | msg="request completed" | status >= 500'))
    return board


def security(runbooks) -> Board:
    board = Board(SECURITY, "Sentinel / Security", "Failed logins, refused requests, rate limiting and the security log.",
                  BACKEND_JOB, runbooks)
    board.row("Authentication")
    board.add(single("Failed logins", "Wrong credentials at /api/auth/login, in the selected time range.",
                     f"sum(increase(auth_failures_total{B_INVALID}[{RANGE}]))",
                     "short", decimals=0))
    board.add(single("Rate-limited requests", "429 answers in the selected time range.",
                     f"sum(increase(rate_limit_hits_total{B}[{RANGE}]))", "short", decimals=0))
    board.add(single("Refused without user context", "401 for a missing X-User-Id: a broken auth proxy if it climbs.",
                     f"sum(increase(auth_failures_total{B_MISSING}[{RANGE}]))",
                     "short", decimals=0))
    board.add(single("Forbidden", "403 answers (role not allowed), in the selected time range.",
                     f"sum(increase(auth_failures_total{B_FORBIDDEN}[{RANGE}]))",
                     "short", decimals=0))
    board.add(graph("Authentication failures per minute by reason", "auth_failures_total (the auth-failures-spike alert).",
                    [(f"sum by (reason) (rate(auth_failures_total{B}[{RATE}])) * 60", "{{reason}}")], "short"))
    board.add(graph("Rate-limited requests per minute by route", "rate_limit_hits_total.",
                    [(f"sum by (route) (rate(rate_limit_hits_total{B}[{RATE}])) * 60", "{{route}}")], "short"))
    board.add(graph("401, 403 and 429 answers per minute by route", "http_requests_total with a refusing status.",
                    [(f"sum by (route, status) (rate(http_requests_total{B_REFUSED}[{RATE}])) * 60",
                      "{{route}} {{status}}")], "short", width=24))
    board.row("Security log")
    board.add(log_graph("Security log lines by reason", "Volume of the security stream, by reason.",
                        f"sum by (reason) (count_over_time({logs_of('security')} | json [$__auto]))", "{{reason}}"))
    board.add(log_stat("Security log lines", "Lines in the security stream in the selected time range.",
                       f"sum(count_over_time({logs_of('security')} [$__range]))"))
    board.add(log_stat("Client addresses refused", "Distinct client addresses with a security line in the range.",
                       f"count(sum by (clientAddress) (count_over_time({logs_of('security')} | json [$__range])))"))
    board.add(log_lines("Security log", "Authentication failures, forbidden and rate-limited requests.",
                        f"{logs_of('security')} | json"))
    return board


def infrastructure(runbooks) -> Board:
    board = Board(INFRASTRUCTURE, "Sentinel / Infrastructure", "Hosts (node_exporter) and the stack's own components.",
                  NODE_JOB, runbooks)
    board.row("Hosts")
    board.add(graph("CPU busy", "Share of CPU time not idle, per host.",
                    [(f'1 - avg by (instance) (rate(node_cpu_seconds_total{N_IDLE}[{RATE}]))',
                      "{{instance}}")], "percentunit", width=8))
    board.add(graph("Memory used", "1 - MemAvailable / MemTotal (host-memory-high fires over 90%).",
                    [(f"1 - node_memory_MemAvailable_bytes{N} / node_memory_MemTotal_bytes{N}", "{{instance}}")],
                    "percentunit", width=8))
    board.add(graph("Load (1 min) per CPU", "node_load1 over the number of CPUs.",
                    [(f'node_load1{N} / on (instance) count by (instance) (node_cpu_seconds_total{N_IDLE})',
                      "{{instance}}")], "short", width=8))
    disk = ('fstype!~"tmpfs|ramfs|squashfs|overlay|nsfs|fuse.*"', 'mountpoint!~"/run.*|/sys.*|/proc.*"')
    board.add(graph("Disk space free", "Free share per filesystem (host-disk-space-low fires under 20%).",
                    [(f"node_filesystem_avail_bytes{scoped(NODE_JOB, *disk)} / node_filesystem_size_bytes{scoped(NODE_JOB, *disk)}",
                      "{{instance}} {{mountpoint}}")], "percentunit"))
    board.add(graph("Network traffic", "Bytes received and sent per host, loopback excluded.",
                    [(f'sum by (instance) (rate(node_network_receive_bytes_total{N_NOT_LO}[{RATE}]))',
                      "{{instance}} in"),
                     (f'-sum by (instance) (rate(node_network_transmit_bytes_total{N_NOT_LO}[{RATE}]))',
                      "{{instance}} out")], "Bps"))
    board.add(grid("Watched services", "systemd state of the stack's units (node_exporter's systemd collector).",
                   f'max by (instance, name) (node_systemd_unit_state{N_ACTIVE})'))
    board.add(grid("Scrape targets", "Every scrape target of this environment: 1 up, 0 down.",
                   f"max by (job, instance) (up{{{ENV}}})"))
    board.row("Prometheus and Alertmanager")
    board.add(graph("Prometheus head series", "prometheus_tsdb_head_series.",
                    [(f'prometheus_tsdb_head_series{{job="{PROMETHEUS_JOB}", {ENV}}}', "{{instance}}")], "short", width=8))
    board.add(graph("Rule evaluation failures and slow groups",
                    "Failed rule evaluations per second, and the slowest rule group's last duration.",
                    [(f'sum by (instance) (rate(prometheus_rule_evaluation_failures_total{{job="{PROMETHEUS_JOB}", {ENV}}}[{RATE}]))',
                      "{{instance}} failures/s"),
                     (f'max by (instance) (prometheus_rule_group_last_duration_seconds{{job="{PROMETHEUS_JOB}", {ENV}}})',
                      "{{instance}} slowest group (s)")], "short", width=8))
    board.add(graph("Scrape duration by job", "scrape_duration_seconds: slow exporters show here first.",
                    [(f"max by (job) (scrape_duration_seconds{{{ENV}}})", "{{job}}")], "s", width=8))
    board.add(graph("Alerts sent to Alertmanager", "Notifications Prometheus sent, and the ones that failed or were dropped.",
                    [(f'sum by (instance) (rate(prometheus_notifications_sent_total{{job="{PROMETHEUS_JOB}", {ENV}}}[{RATE}]))',
                      "{{instance}} sent"),
                     (f'sum by (instance) (rate(prometheus_notifications_errors_total{{job="{PROMETHEUS_JOB}", {ENV}}}[{RATE}]))',
                      "{{instance}} errors"),
                     (f'sum by (instance) (rate(prometheus_notifications_dropped_total{{job="{PROMETHEUS_JOB}", {ENV}}}[{RATE}]))',
                      "{{instance}} dropped")], "reqps", width=8))
    board.add(graph("Alertmanager active alerts", "alertmanager_alerts by state.",
                    [(f'sum by (state) (alertmanager_alerts{{job="{ALERTMANAGER_JOB}", {ENV}}})', "{{state}}")], "short", width=8))
    board.add(graph("Notifications by integration", "Sent and failed notifications (Slack, PagerDuty, email).",
                    [(f'sum by (integration) (rate(alertmanager_notifications_total{{job="{ALERTMANAGER_JOB}", {ENV}}}[{RATE}]))',
                      "{{integration}} sent"),
                     (f'sum by (integration) (rate(alertmanager_notifications_failed_total{{job="{ALERTMANAGER_JOB}", {ENV}}}[{RATE}]))',
                      "{{integration}} failed")], "reqps", width=8))
    board.row("Telemetry pipeline (collector, trace and log stores, Grafana)")
    collector = f'{{job="{COLLECTOR_JOB}", {ENV}}}'
    board.add(graph("Collector: spans accepted and refused", "otelcol receiver counters.",
                    [(f"sum(rate(otelcol_receiver_accepted_spans{collector}[{RATE}]))", "accepted"),
                     (f"sum(rate(otelcol_receiver_refused_spans{collector}[{RATE}])) "
                      f"or sum(rate(otelcol_receiver_accepted_spans{collector}[{RATE}])) * 0", "refused")], "short", width=8))
    board.add(graph("Collector: spans sent and failed", "otelcol exporter counters (failures count lost spans).",
                    [(f"sum(rate(otelcol_exporter_sent_spans{collector}[{RATE}]))", "sent"),
                     (f"sum(rate(otelcol_exporter_send_failed_spans{collector}[{RATE}])) "
                      f"or sum(rate(otelcol_exporter_sent_spans{collector}[{RATE}])) * 0", "failed")], "short", width=8))
    board.add(graph("Collector: export queue", "otelcol_exporter_queue_size against its capacity.",
                    [(f"max by (exporter) (otelcol_exporter_queue_size{collector})", "{{exporter}} size"),
                     (f"max by (exporter) (otelcol_exporter_queue_capacity{collector})", "{{exporter}} capacity")],
                    "short", width=8))
    stores = f'{{job=~"{STORE_JOBS}", {ENV}}}'
    board.add(grid("Trace and log stores up", "The stores' scrape targets: 1 up, 0 down.", f"max by (job, instance) (up{stores})"))
    board.add(graph("Stores: resident memory", "process_resident_memory_bytes of the trace and log stores.",
                    [(f"process_resident_memory_bytes{stores}", "{{job}} {{instance}}")], "bytes"))
    board.add(graph("Grafana up", "Grafana's own scrape target (dashboards only; alert delivery does not depend on it).",
                    [(f'up{{job="{GRAFANA_JOB}", {ENV}}}', "{{instance}}")], "short", width=24))
    return board


def user_experience(runbooks) -> Board:
    board = Board(USER_EXPERIENCE, "Sentinel / User experience",
                  f"Apdex per route (T = {APDEX_T} s, tolerating up to {APDEX_4T} s; docs/contract.md §3) and errors seen by users.",
                  BACKEND_JOB, runbooks)

    def apdex(by: str, window: str) -> str:
        group = f"sum by ({by}) " if by else "sum "
        bucket = lambda le: f"{group}(rate(http_request_duration_seconds_bucket{scoped(BACKEND_JOB, API, le_is(le))}[{window}]))"  # noqa: E731
        return (f"({bucket(APDEX_T)} + {bucket(APDEX_4T)}) / 2 / "
                f"{group}(rate(http_request_duration_seconds_count{B_API}[{window}]))")

    board.row("Apdex")
    board.add(single("Apdex (5 min)", f"Satisfied (<= {APDEX_T} s) plus half the tolerating (<= {APDEX_4T} s) over all API requests.",
                     apdex("", "5m"), "none", decimals=2))
    board.add(single("Requests failing (5 min)", "Share of API requests answered 5xx.",
                     _error_ratio("").replace(RATE, "5m"), "percentunit"))
    board.add(single("Frustrated requests (5 min)", f"Share of API requests slower than {APDEX_4T} s.",
                     f"1 - sum(rate(http_request_duration_seconds_bucket{B_API_4T}[5m])) / "
                     f"sum(rate(http_request_duration_seconds_count{B_API}[5m]))", "percentunit"))
    board.add(log_stat("Users hit by a 5xx", "Distinct users with a failed request in the selected range (from the logs).",
                       f'count(sum by (userId) (count_over_time({logs_of("app")} | json | msg="request completed" | status >= 500 [$__range])))'))
    board.add(graph("Apdex by route", "1 is every request satisfied; under 0.7 users notice.",
                    [(apdex("route", RATE), "{{route}}")], "none", width=24))
    board.row("Error impact")
    board.add(graph("Failed requests per minute by route", "5xx answers users received.",
                    [(f"sum by (route) (rate(http_requests_total{B_5XX}[{RATE}])) * 60 "
                      f"or sum by (route) (rate(http_requests_total{B_API}[{RATE}])) * 0", "{{route}}")], "short"))
    board.add(graph("5xx ratio by route", "Share of each route's requests that failed.",
                    [(_error_ratio("route"), "{{route}}")], "percentunit"))
    board.add(log_graph("Failed requests by route (logs)", "request completed lines with a 5xx, by route, from the app stream.",
                        f'sum by (route) (count_over_time({logs_of("app")} | json | msg="request completed" | status >= 500 [$__auto]))',
                        "{{route}}"))
    board.add(traces("Failed requests (traces)", "Server spans with status ERROR (5xx); each links to its logs by trace id.",
                     f'{{resource.service.name="{SERVICE}" && kind=server && status=error}}', width=12))
    board.add(log_lines("Failed requests (logs)", "request completed lines of 5xx answers, with their correlation and trace ids.",
                        f'{logs_of("app")} | json | msg="request completed" | status >= 500'))
    return board


BOARDS = (business, performance, security, infrastructure, user_experience)
