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

# The host firewall (roles/firewall, generated from the topology): SSH only from the
# operators' bastion network; everything else only along the declared flows.
# Operators: put your own networks here (preflight refuses 0.0.0.0/0 in prod).
firewall = {
    "admin_networks": ["10.20.250.0/24"],
    "allow": [
        {"listener": "grafana.http", "sources": ["10.20.250.0/24"], "reason": "operators' dashboards"},
        {"listener": "backend.http", "sources": ["10.20.100.0/24"], "reason": "the load balancers in front of the backend"},
    ],
}
