from group_data.all import retention as _policy

prometheus = {
    "scrape_interval": "15s",
}

# Retention: all.py's policy, with Prometheus's TSDB also capped at 50GB (base 2,
# i.e. 50GiB) on prod's monitoring disk. Derived, not copied: this dict replaces
# all.py's wholesale, and the compliance rules stay written once.
retention = {**_policy, "prometheus": {**_policy["prometheus"], "size": "50GB"}}

backend = {
    "trace_sampler": "parentbased_traceidratio",
    "trace_sample_ratio": 0.1,
    "sentry_traces_sample_rate": 0.1,
    "sentry_profiles_sample_rate": 0.05,
}

# Production also pages: critical alerts go to PagerDuty (Events API v2) as well
# as Slack; preflight refuses prod without SENTINEL_PAGERDUTY_ROUTING_KEY.
alerting = {
    "email": {  # as in all.py: this dict replaces all.py's
        "to": "ops@sentinel.internal",
        "from_address": "alertmanager@sentinel.internal",
        "smarthost": "smtp.sentinel.internal:587",
        "auth_username": "alertmanager@sentinel.internal",
    },
    "pagerduty": {"enabled": True},
}
