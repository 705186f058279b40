backend = {
    "trace_sampler": "parentbased_always_on",
    "trace_sample_ratio": 1.0,
    "sentry_traces_sample_rate": 1.0,
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
