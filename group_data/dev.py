backend = {
    "trace_sampler": "parentbased_always_on",
    "trace_sample_ratio": 1.0,
}

# The host firewall (roles/firewall, generated from the topology): SSH only from the
# operators' bastion network; everything else only along the declared flows.
# Operators: put your own networks here (preflight refuses 0.0.0.0/0 in prod).
firewall = {
    "admin_networks": ["10.30.250.0/24"],
    "allow": [
        {"listener": "grafana.http", "sources": ["10.30.250.0/24"], "reason": "operators' dashboards"},
        {"listener": "backend.http", "sources": ["10.30.100.0/24"], "reason": "the load balancers in front of the backend"},
    ],
}

# Dev has no dead man's switch: no one is paged for dev, and its Watchdog goes nowhere.
# Staging and prod need SENTINEL_HEARTBEAT_URL (preflight refuses them without it).
alerting = {
    "email": {  # as in all.py: this dict replaces all.py's
        "to": "ops@sentinel.internal",
        "from_address": "alertmanager@sentinel.internal",
        "smarthost": "smtp.sentinel.internal:587",
        "auth_username": "alertmanager@sentinel.internal",
    },
    "heartbeat": {"waived": "dev: no one is paged for dev, so no switch watches it"},
}
