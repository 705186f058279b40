# The lab: real hosts in network namespaces, artifacts from the local mirror
# (built from upstream Go modules by `python -m lab up`).
artifact_base_url = "http://10.213.0.1:8080"

# Prometheus's retention is in all.py's `retention` policy, which the lab keeps as
# is: an override here could shorten nothing below the compliance minimums
# (preflight enforces them in every environment).
prometheus = {
    "scrape_interval": "5s",
    "evaluation_interval": "5s",
}

# The lab stores traces in Jaeger v2 and logs in VictoriaLogs (Tempo and Loki are
# AGPL and never run here); the collector pipeline in front is the same as prod's.
traces = {"store": "jaeger", "retention": "72h"}
logs = {"store": "victorialogs"}
# tel1 and tel2 both run a collector gateway (the pool) and a member of the VictoriaLogs cluster
# (scalable: a storage node and an access tier each, docs/architecture.md "The VictoriaLogs cluster");
# Jaeger and the S3 store run once, on tel1, as does what reads the logs (Grafana's datasource, erasure).
stores = {"mode": "scalable", "host": "tel1"}

backend = {
    "version": "0.0.0-lab",
    "trace_sampler": "parentbased_always_on",
    "trace_sample_ratio": 1.0,
    "standin": True,
}

# Alert delivery goes to the lab's stand-in receivers on the bridge (lab/receivers:
# Slack, PagerDuty and SMTP stand-ins, NOT the real services). The Slack webhook
# URLs and the PagerDuty key are lab secrets (lab/secrets.py). PagerDuty is on so
# the paging path is proven end to end, as in prod.
alerting = {
    "email": {
        "to": "ops@sentinel.test",
        "from_address": "alertmanager@sentinel.test",
        "smarthost": "10.213.0.1:2525",
        "auth_username": "alertmanager",
        "require_tls": False,  # the SMTP stand-in speaks plain SMTP on the bridge
    },
    "pagerduty": {"enabled": True, "url": "http://10.213.0.1:9102/v2/enqueue"},
    # LAB ONLY: short timers so the end-to-end tests see notifications within
    # seconds instead of production's 10s/30s/1h, 1m/15m/4h and 1m/24h/24h
    # (the defaults in roles/alerting/settings.py, which prod uses).
    "critical": {"group_wait": "5s", "group_interval": "30s", "repeat_interval": "5m"},
    "warning": {"group_wait": "10s", "group_interval": "1m", "repeat_interval": "10m"},
    "info": {"group_wait": "10s", "group_interval": "5m", "repeat_interval": "10m"},
    # The dead man's switch calls the lab's heartbeat STAND-IN (lab/receivers/heartbeat.py) every
    # 10s; it pages after 20s + 10s of silence (lab/paths.py). Prod: 1m, and a 2m + 1m check.
    "heartbeat": {"group_interval": "5s", "repeat_interval": "10s"},
    # LAB ONLY: every rule's `for` cut to 30s (the catalog's are 30s to 20m), so a drill's alert
    # fires within a minute instead of two to ten. The catalog's `for` is proven by the rules'
    # promtool fixtures (tests/unit/test_alert_rules.py) and timed by `make bench-alerting`, which
    # converges with production's timers and without this. Preflight refuses it elsewhere.
    "lab_rule_for_at_most": "30s",
}

# Grafana is AGPL and may not run in this workplace: on the lab the role creates
# the grafana user, its directories, grafana.ini and the provisioning files with
# their owners and modes, and installs NO binary and NO unit (never a stand-in
# in Grafana's place). Only the lab sets this.
grafana = {"install_binary": False}

# Grafana backups (roles/grafana_backup). LAB ONLY: Grafana cannot run here, so the job
# reads the Grafana HTTP API STAND-IN on the bridge (lab/receivers/grafana_api.py, NOT
# Grafana) with a lab token the role writes (no Grafana role writes it here), and pushes
# to a bare repository on tel1 over SSH (set up by tests/e2e/test_grafana_backup.py).
# Lab hosts get new SSH host keys on every `lab up`, so the git host's key is accepted
# on first use (StrictHostKeyChecking=accept-new); preflight refuses that elsewhere.
# The lab's token (lab/secrets.py) is the operator's kind: its expiry is given with it. The
# stand-in does not expire it; the day is the end of next year, so it changes once a year.
grafana_backup = {
    "enabled": True,
    "grafana_url": "http://10.213.0.1:9110",
    "write_token": True,
    "token_expires": f"{__import__('datetime').date.today().year + 1}-12-31",
    "remote_url": "git@10.213.0.12:/srv/git/grafana-backup.git",
    "trust_on_first_use": True,
    "wheels_from_mirror": True,
}

# The host firewall (roles/firewall, generated from the topology). The controller is the
# lab machine itself, on the bridge: it converges over SSH, and the lab's tests query the
# stack's APIs from there as an operator would. The intruder (10.213.0.66, in no group)
# is in none of these, so every port of every host is closed to it.
_CONTROLLER = ["10.213.0.1/32"]
firewall = {
    "admin_networks": _CONTROLLER,
    "allow": [
        {"listener": name, "sources": _CONTROLLER, "reason": "the lab's tests, from the controller"}
        for name in (
            "node_exporter.metrics", "prometheus.web", "alertmanager.web", "jaeger.query", "jaeger.metrics",
            "victorialogs.http", "otelcol.metrics", "gateway.otlp_http", "gateway.otlp_grpc", "backend.http",
        )
    ],
}
