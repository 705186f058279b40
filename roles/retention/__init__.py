"""The retention policy: one validated structure for logs and metrics (docs/retention.md).

Not a deploy of its own: Prometheus applies it through `prometheus_flags()`, and a
Loki role will read `Settings.retention` (`default_period`, `streams`) once Loki can
be deployed here.
"""

from __future__ import annotations

from roles.retention.settings import ComplianceMinimum, PrometheusRetention, RetentionPolicy, StreamRule

__all__ = ["ComplianceMinimum", "PrometheusRetention", "RetentionPolicy", "StreamRule", "prometheus_flags"]


def prometheus_flags(policy: RetentionPolicy) -> dict[str, str]:
    """Prometheus's retention flags for `policy`, by flag name without the leading "--".

    The names are also the keys of Prometheus's /api/v1/status/flags. The size flag is
    left out when the policy sets no size limit ("0"), which is Prometheus's default.
    """
    flags = {"storage.tsdb.retention.time": policy.prometheus.time}
    if policy.prometheus.size != "0":
        flags["storage.tsdb.retention.size"] = policy.prometheus.size
    return flags
