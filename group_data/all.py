# Settings shared by every environment; <env>.py overrides them.
# Each role's settings and defaults are declared in roles/<role>/settings.py:
# an unknown or misspelled key here is refused before any host is contacted.

# Release archives come from upstream; the lab points this at its mirror.
artifact_base_url = "https://github.com"

prometheus = {
    "scrape_interval": "15s",
}

# Retention: ONE policy for logs and metrics (roles/retention/settings.py declares
# and validates it; docs/retention.md says where each number comes from and how to
# change it). Prometheus applies `prometheus` now; a Loki role will apply
# `default_period` and `streams` once Loki can be deployed here. Preflight refuses
# a period under 24h, a selector that does not parse, two rules that may match the
# same streams at the same priority, and any rule that breaks a `minimums` entry.
# An environment that sets its own `retention` replaces this dict wholesale: derive
# it from this one (see prod.py) rather than copying it.
retention = {
    # Logs no stream rule matches: today the `app` stream (requests, lifecycle,
    # library warnings). Operators: application logs are kept 30 days.
    "default_period": "30d",
    # Loki `retention_stream` rules. Selectors use Loki stream labels: `stream`
    # (app|security|audit, docs/contract.md section 4) and the shipper's labels.
    # When rules overlap, the highest priority wins; at equal priority Loki would
    # keep the SHORTER period, so preflight refuses overlaps at equal priority.
    "streams": [
        # PIPEDA (operators): security logs (auth failures, forbidden, rate limiting) 1 year.
        {"name": "security", "selector": '{stream="security"}', "period": "365d", "priority": 1},
        # PIPEDA (operators): audit logs (who did what) 1 year. Also keeps payment
        # audit trails the 12 months PCI-DSS 10.5.1 asks for.
        {"name": "audit", "selector": '{stream="audit"}', "period": "365d", "priority": 1},
    ],
    # Prometheus's TSDB. Operators: metrics are kept 15 days. size "0" = no limit
    # (prod.py caps it); whichever of time and size is reached first deletes.
    "prometheus": {"time": "15d", "size": "0"},
    # Compliance floors: every stream rule that may match one of these selectors
    # must keep at least `at_least`, and default_period must too when no rule
    # covers the selector. Lower one only with the compliance owner's agreement.
    "minimums": [
        {"name": "PIPEDA security logs", "selector": '{stream="security"}', "at_least": "365d"},
        {"name": "PIPEDA audit logs", "selector": '{stream="audit"}', "at_least": "365d"},
        # PCI-DSS 10.5.1: the last 3 months of audit history immediately available.
        # `category` is not a label in the backend contract yet: today the audit
        # rule (365d) keeps these trails.
        {"name": "PCI-DSS payment audit trails", "selector": '{stream="audit", category="payment"}', "at_least": "90d"},
    ],
}

# Traces and logs travel through the OpenTelemetry Collector (roles/otel_collector:
# a gateway on telemetry hosts, an agent on app hosts) to ONE store per signal.
# dev, staging and prod use Tempo and Loki; the lab uses Jaeger and VictoriaLogs.
# Traces are kept 14 days (Tempo block_retention / Jaeger Badger TTL); log
# retention is the `retention` policy above. docs/tracing.md has the ports.
traces = {"store": "tempo", "retention": "336h"}
logs = {"store": "loki"}

object_store = {
    "buckets": ["loki", "tempo"],
}

# Alert delivery (roles/alerting/settings.py holds the defaults: Slack channels,
# timings, secret names). Critical -> Slack #critical-alerts at once, warning ->
# Slack #alerts every 15 minutes, info -> the daily email digest to ops.
# PagerDuty is off here and on in prod.py. An environment that sets its own
# `alerting` dict replaces this one wholesale, so it repeats the email block.
alerting = {
    "email": {
        "to": "ops@sentinel.internal",
        "from_address": "alertmanager@sentinel.internal",
        "smarthost": "smtp.sentinel.internal:587",
        "auth_username": "alertmanager@sentinel.internal",
    },
}

# TLS (roles/_tls_settings.py, docs/tls.md): certificates from the environment CA live
# lifetime_days (1 to 397) and any converge in their last renew_within_days issues them
# again, so converge at least that often. Preflight refuses a window as long as the
# lifetime, an operator's CA (SENTINEL_TLS_CA_CERT) that ends before a certificate issued
# now would, and tls.enabled false (there is no plain-text mode).
tls = {"lifetime_days": 30, "renew_within_days": 10}
