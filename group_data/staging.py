backend = {
    "trace_sampler": "parentbased_traceidratio",
    "trace_sample_ratio": 0.5,
}

# The host firewall (roles/firewall, generated from the topology): SSH only from the
# operators' bastion network; everything else only along the declared flows.
# Operators: put your own networks here (preflight refuses 0.0.0.0/0 in prod).
firewall = {
    "admin_networks": ["10.40.250.0/24"],
    "allow": [
        {"listener": "grafana.http", "sources": ["10.40.250.0/24"], "reason": "operators' dashboards"},
        {"listener": "backend.http", "sources": ["10.40.100.0/24"], "reason": "the load balancers in front of the backend"},
    ],
}
