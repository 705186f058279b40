"""Prometheus metrics, exposed on GET /metrics.

Names, types and labels are the contract in files/backend/contract.yml;
tests compare the two, so change both together. Every label here has a
bounded set of values: route templates (never raw paths), SQL verbs, reason
codes from a fixed list, the fixed sites and events of the data set.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client import gc_collector, platform_collector, process_collector

# *_created series double the series count for no use on our dashboards.
disable_created_metrics()

# Apdex needs bucket bounds at T and 4T: T=0.3s (bounds 0.3 and 1.2) is the
# Sentinel target; 0.25/1 are kept so T=0.25 also works.
HTTP_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.3, 0.5, 1, 1.2, 2, 5)
DB_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
SESSION_DURATION_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800)

REGISTRY = CollectorRegistry(auto_describe=True)
# The default process_*, python_info and python_gc_* collectors, on our registry.
process_collector.ProcessCollector(registry=REGISTRY)
platform_collector.PlatformCollector(registry=REGISTRY)
gc_collector.GCCollector(registry=REGISTRY)

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests handled, by route template and status code.",
    ["method", "route", "status"], registry=REGISTRY,
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds", "Time from request received to response ready.",
    ["method", "route"], buckets=HTTP_DURATION_BUCKETS, registry=REGISTRY,
)
DB_QUERY_DURATION = Histogram(
    "db_query_duration_seconds", "Duration of database queries that ran, by SQL verb.",
    ["operation"], buckets=DB_DURATION_BUCKETS, registry=REGISTRY,
)
DB_POOL_CONNECTIONS = Gauge(
    "db_pool_connections", "Database pool connections: active (checked out), idle, max (pool size).",
    ["state"], registry=REGISTRY,
)
AUTH_FAILURES = Counter(
    "auth_failures_total", "Requests refused for authentication or authorisation, by reason.",
    ["reason"], registry=REGISTRY,
)
RATE_LIMIT_HITS = Counter(
    "rate_limit_hits_total", "Requests answered 429 by the rate limiter.",
    ["route"], registry=REGISTRY,
)
CHECKINS = Counter(
    "sentinel_checkins_total", "Member check-ins recorded, by site.",
    ["site"], registry=REGISTRY,
)
ACTIVE_MEMBERS = Gauge(
    "sentinel_active_members", "Members whose membership is active.", registry=REGISTRY,
)
VISITORS = Counter(
    "sentinel_visitors_total", "Visitors registered.", registry=REGISTRY,
)
BADGE_SCANS = Counter(
    "sentinel_badge_scans_total", "Check-ins made by scanning a badge.", registry=REGISTRY,
)
EVENT_ATTENDANCE = Counter(
    "sentinel_event_attendance_total", "Event attendances recorded, by event id.",
    ["event"], registry=REGISTRY,
)
DUTY_ASSIGNMENTS = Counter(
    "sentinel_duty_assignments_total", "Duty assignments returned by duty roster look-ups.", registry=REGISTRY,
)
SESSION_DURATION = Histogram(
    "sentinel_sessions_duration_seconds", "On-site visit length, from check-in to check-out.",
    buckets=SESSION_DURATION_BUCKETS, registry=REGISTRY,
)
BUILD_INFO = Gauge(
    "sentinel_build_info", "Always 1; labels tell the running version and environment.",
    ["version", "environment"], registry=REGISTRY,
)


def set_build_info(version: str, environment: str) -> None:
    """Publish sentinel_build_info{version,environment} 1."""
    BUILD_INFO.labels(version=version, environment=environment).set(1)


AUTH_FAILURE_REASONS = ("missing_user_context", "invalid_credentials", "forbidden")
DB_OPERATIONS = ("SELECT", "INSERT", "UPDATE", "DELETE")


def init_label_values(sites: tuple[str, ...], events: tuple[str, ...]) -> None:
    """Create every known series at 0, so rate() and absent() work from the first scrape."""
    for reason in AUTH_FAILURE_REASONS:
        AUTH_FAILURES.labels(reason=reason)
    for site in sites:
        CHECKINS.labels(site=site)
    for event in events:
        EVENT_ATTENDANCE.labels(event=event)
    for operation in DB_OPERATIONS:
        DB_QUERY_DURATION.labels(operation=operation)
