"""deploy.py hands each role arguments its signature accepts (a mismatch would show only mid-converge)."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy.py"


def test_every_role_call_binds_to_the_roles_signature():
    tree = ast.parse(DEPLOY.read_text())
    imported = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module.startswith("roles"):
            module = importlib.import_module(node.module)
            imported |= {a.asname or a.name: getattr(module, a.name) for a in node.names}
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in imported]
    roles = [c for c in calls if hasattr(imported[c.func.id], "_inner")]  # @deploy functions
    assert {c.func.id for c in roles} >= {
        "node_exporter", "object_store", "prometheus", "alertmanager", "grafana", "backend_env", "sentry_release", "backend_standin",
        "jaeger", "tempo", "otel_collector", "victorialogs", "loki",
    }
    for call in roles:
        signature = inspect.signature(imported[call.func.id]._inner)
        signature.bind(*call.args, **{k.arg: k.value for k in call.keywords})  # TypeError on a mismatch


def test_deploy_py_hands_each_host_its_validated_settings(monkeypatch):
    """deploy.py run per host of staging, as pyinfra runs it, with the roles recorded instead of run."""
    from pyinfra.context import ctx_host
    from pyinfra_cli.inventory import make_inventory

    from roles import preflight
    from roles._environment import REPO, _pyinfra_state, load_environment
    from tests.environments import GOOD_SECRETS

    for name, value in GOOD_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    monkeypatch.delenv("SENTINEL_SECRETS_DIR", raising=False)
    monkeypatch.setattr(preflight, "_validated", {})
    load_environment.cache_clear()
    with _pyinfra_state():
        inventory = make_inventory(str(REPO / "inventory" / "staging.py"), cwd=str(REPO))
    environment, secrets = preflight.validated_environment()

    calls: list[tuple] = []
    roles = {
        "roles.node_exporter": "node_exporter", "roles.object_store": "object_store", "roles.prometheus": "prometheus",
        "roles.alertmanager": "alertmanager", "roles.backend": "backend_env", "roles.backend.sentry_release": "sentry_release",
        "roles.backend_standin": "backend_standin", "roles.grafana": "grafana", "roles.jaeger": "jaeger", "roles.tempo": "tempo",
        "roles.otel_collector": "otel_collector", "roles.victorialogs": "victorialogs", "roles.loki": "loki",
    }
    for module, name in roles.items():
        monkeypatch.setattr(importlib.import_module(module), name, lambda *args, _name=name, **kw: calls.append((_name, args)))
    code = compile(DEPLOY.read_text(), str(DEPLOY), "exec")
    by_host = {}
    for host in inventory:
        calls.clear()
        with ctx_host.use(host):
            exec(code, {"__name__": "deploy"})
        by_host[host.name] = list(calls)

    mon, tel, app = (environment.group(g)[0] for g in ("monitoring", "telemetry", "app"))
    assert [c[0] for c in by_host[mon.name]] == ["node_exporter", "prometheus", "alertmanager", "grafana"]
    assert by_host[mon.name][0][1] == (mon.settings,)
    assert by_host[mon.name][2][1] == (mon.settings, secrets, [])  # one monitoring host: no gossip peers
    g = mon.settings
    grafana_args = by_host[mon.name][3][1]
    assert grafana_args[:7] == (g.grafana, g.artifact_base_url, g.systemd_hardening, secrets, g.alerting, g.environment, g.address)
    peers = grafana_args[7]
    assert peers.prometheus_url == f"http://{g.address}:{g.prometheus.listen_port}"
    assert (peers.traces, peers.logs) == ("tempo", "loki")  # staging
    assert peers.traces_url == f"http://{tel.settings.address}:3200" and peers.logs_url == f"http://{tel.settings.address}:3100"
    assert "SENTINEL_GRAFANA_ADMIN_PASSWORD" in secrets
    assert [c[0] for c in by_host[tel.name]] == ["node_exporter", "object_store", "tempo", "loki", "otel_collector"]
    assert by_host[tel.name][1][1] == (tel.settings, secrets)
    assert by_host[tel.name][2][1] == (tel.settings.traces, tel.settings.object_store, secrets, tel.settings.artifact_base_url, True)
    assert by_host[tel.name][3][1] == (
        tel.settings.loki, tel.settings.retention, secrets, "127.0.0.1:7070", "us-east-1", tel.settings.artifact_base_url, True,
    )
    gateway = by_host[tel.name][4][1]
    assert gateway[0] == tel.settings.otel_collector and gateway[3].modes == ("gateway",)
    assert [c[0] for c in by_host[app.name]] == ["node_exporter", "otel_collector", "backend_env", "sentry_release"]
    agent = by_host[app.name][1][1][3]
    assert agent.modes == ("agent",) and agent.gateway_endpoint == f"http://{tel.settings.address}:4318"
    assert by_host[app.name][2][1] == (app.settings, secrets, [f"http://{tel.settings.address}:4318"])
    assert by_host[app.name][3][1] == (app.settings.backend, secrets)
