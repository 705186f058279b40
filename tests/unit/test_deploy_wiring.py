"""deploy.py hands each role arguments its signature accepts (a mismatch would show only mid-converge)."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy.py"


def test_every_role_is_called_with_its_block_and_the_host_context():
    """One role contract: ROLES in deploy.py names a role and its settings block for each component."""
    from roles._placement import COMPONENTS
    from roles._settings import Settings

    module = _deploy_module()
    for component, (role, block) in module["ROLES"].items():
        assert component in {c.name for c in COMPONENTS}, component
        assert block in Settings.model_fields, block
        inner = getattr(role, "_inner", role)
        inspect.signature(inner).bind("settings block", "ctx")  # TypeError on a mismatch
    # Components without a role of their own: sshd (not ours), the collector's two halves (otelcol).
    assert {c.name for c in COMPONENTS} - set(module["ROLES"]) == {"sshd", "gateway", "agent"}


def _deploy_module() -> dict:
    """deploy.py's top-level names without running its body (the ROLES table and imports)."""
    tree = ast.parse(DEPLOY.read_text())
    body = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef)) or (
        isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "ROLES" for t in n.targets))]
    namespace: dict = {"__name__": "deploy_table"}
    exec(compile(ast.Module(body=body, type_ignores=[]), str(DEPLOY), "exec"), namespace)
    return namespace


def _run_deploy(monkeypatch, inventory_file: Path) -> tuple:
    """deploy.py run per host of `inventory_file`, as pyinfra runs it, with the roles recorded instead of run."""
    from pyinfra.context import ctx_host
    from pyinfra_cli.inventory import make_inventory

    from roles import preflight
    from roles._environment import REPO, _pyinfra_state, load_environment

    monkeypatch.setattr(preflight, "_validated", {})
    load_environment.cache_clear()
    with _pyinfra_state():
        inventory = make_inventory(str(inventory_file), cwd=str(REPO))
    environment, secrets = preflight.validated_environment()

    calls: list[tuple] = []
    roles = [
        ("roles.node_exporter", "node_exporter"), ("roles.object_store", "object_store"), ("roles.prometheus", "prometheus"),
        ("roles.alertmanager", "alertmanager"), ("roles.backend", "backend_env"), ("roles.backend.sentry_release", "sentry_release"),
        ("roles.backend.tls", "backend_tls"),
        ("roles.lab_backend", "lab_backend"), ("roles.grafana", "grafana"), ("roles.grafana_backup", "grafana_backup"),
        ("roles.grafana_backup", "grafana_backup_first_run"),
        ("roles.jaeger", "jaeger"), ("roles.tempo", "tempo"), ("roles.otel_collector", "otel_collector"),
        ("roles.victorialogs", "victorialogs"), ("roles.loki", "loki"), ("roles.firewall", "host_firewall"),
    ]
    for module, name in roles:
        monkeypatch.setattr(importlib.import_module(module), name, lambda *args, _name=name, **kw: calls.append((_name, args)))
    code = compile(DEPLOY.read_text(), str(DEPLOY), "exec")
    by_host = {}
    for host in inventory:
        calls.clear()
        with ctx_host.use(host):
            exec(code, {"__name__": "deploy"})
        by_host[host.name] = list(calls)
    return environment, secrets, by_host


def _good_secrets(monkeypatch) -> None:
    from tests.environments import GOOD_SECRETS

    for name, value in GOOD_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    monkeypatch.delenv("SENTINEL_SECRETS_DIR", raising=False)


def test_deploy_py_hands_each_host_its_validated_settings(monkeypatch):
    """staging as it is: the Grafana backup is off, so it is not called."""
    from roles._environment import REPO
    from roles.grafana.peers import grafana_peers
    from roles.otel_collector import collector_wiring

    _good_secrets(monkeypatch)
    environment, secrets, by_host = _run_deploy(monkeypatch, REPO / "inventory" / "staging.py")

    mon, tel, app = (environment.group(g)[0] for g in ("monitoring", "telemetry", "app"))
    assert [c[0] for c in by_host[mon.name]] == ["host_firewall", "node_exporter", "prometheus", "alertmanager", "grafana"]
    assert [c[0] for c in by_host[tel.name]] == ["host_firewall", "node_exporter", "object_store", "tempo", "loki", "otel_collector"]
    assert [c[0] for c in by_host[app.name]] == ["host_firewall", "node_exporter", "otel_collector", "backend_tls", "backend_env", "sentry_release"]
    blocks = {"host_firewall": "firewall", "node_exporter": "node_exporter", "prometheus": "prometheus", "alertmanager": "alerting",
              "grafana": "grafana", "object_store": "object_store", "tempo": "traces", "loki": "loki",
              "otel_collector": "otel_collector", "backend_env": "backend", "backend_tls": "backend"}
    for host in (mon, tel, app):
        for name, args in by_host[host.name]:
            if name == "sentry_release":
                assert args == (host.settings.backend, secrets)
                continue
            block, ctx = args
            assert block == getattr(host.settings, blocks[name])
            assert (ctx.name, ctx.settings, ctx.secrets, ctx.topology) == (host.name, host.settings, secrets, environment.topology)
    assert "SENTINEL_GRAFANA_ADMIN_PASSWORD" in secrets

    # The links each role reads from the topology.
    ctx_of = {h.name: by_host[h.name][0][1][1] for h in (mon, tel, app)}
    g = mon.settings
    peers = grafana_peers(ctx_of[mon.name])
    assert peers.prometheus_url == f"http://{g.address}:{g.prometheus.listen_port}"
    assert (peers.traces, peers.logs) == ("tempo", "loki")  # staging
    assert peers.traces_url == f"http://{tel.settings.address}:3200" and peers.logs_url == f"http://{tel.settings.address}:3100"
    assert ctx_of[tel.name].topology.reach("object_store.s3", tel.name) == "127.0.0.1:7070"
    gateway = collector_wiring(ctx_of[tel.name])
    assert gateway.modes == ("gateway",) and gateway.remote_write_url == f"https://{g.address}:9090/api/v1/write"
    assert gateway.gateway_label == tel.name
    agent = collector_wiring(ctx_of[app.name])
    # The agent balances over the gateway pool by its name, which its /etc/hosts gives every gateway's IP.
    pool = app.settings.otel_collector.gateway_pool_name
    assert agent.modes == ("agent",) and agent.gateway_endpoint == f"dns:///{pool}:4317"
    assert agent.gateway_pool == (pool, (tel.settings.ip,))
    # The backend sends to its own host's agent.
    assert ctx_of[app.name].urls("agent.otlp_http") == ["http://127.0.0.1:4319"]


def test_an_enabled_grafana_backup_runs_on_the_monitoring_hosts_after_alertmanager(monkeypatch, tmp_path):
    """The role gets its own block, the secrets (its multi-line deploy key in them), the mirror and the textfile dir."""
    import subprocess

    from tests.environments import write_inventory

    _good_secrets(monkeypatch)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "key")], check=True)
    monkeypatch.setenv("SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY", (tmp_path / "key").read_text())
    backup = {
        "enabled": True,
        "remote_url": "git@git.example.org:ops/grafana-backup.git",
        "known_hosts": ["git.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"],
    }
    # Two Grafanas share one PostgreSQL (preflight refuses sqlite3 on several monitoring hosts).
    monkeypatch.setenv("SENTINEL_GRAFANA_DB_PASSWORD", "grafana-db-password-0001")
    grafana = {"database": {"type": "postgres", "host": "db.wiring:5432"}}
    body = f"""
        monitoring = [("mon1.wiring", {{"ip": "10.9.0.11", "grafana_backup": {backup!r}, "grafana": {grafana!r}}}),
                      ("mon2.wiring", {{"ip": "10.9.0.14", "grafana": {grafana!r}}})]
        telemetry = [("tel1.wiring", {{"ip": "10.9.0.12"}})]
        app = [("app1.wiring", {{"ip": "10.9.0.13"}})]
        """
    environment, secrets, by_host = _run_deploy(monkeypatch, write_inventory(tmp_path, "staging", body, check=True))

    mon1 = environment.host("mon1.wiring").settings
    # Before grafana(), whose token step writes into the backup's config dir; its first run after every role,
    # when Grafana serves and the token is written.
    assert [c[0] for c in by_host["mon1.wiring"]] == [
        "host_firewall", "node_exporter", "prometheus", "alertmanager", "grafana_backup", "grafana", "grafana_backup_first_run"]
    block, ctx = by_host["mon1.wiring"][4][1]
    assert block == mon1.grafana_backup and ctx.secrets == secrets and ctx.name == "mon1.wiring"
    assert by_host["mon1.wiring"][6][1] == (block, ctx)
    assert "SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY" in secrets and "SENTINEL_GRAFANA_BACKUP_TOKEN" not in secrets
    assert [c[0] for c in by_host["mon2.wiring"]] == ["host_firewall", "node_exporter", "prometheus", "alertmanager", "grafana"]  # off there
    assert "grafana_backup" not in [c[0] for c in by_host["tel1.wiring"] + by_host["app1.wiring"]]
