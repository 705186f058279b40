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
        "node_exporter", "object_store", "prometheus", "alertmanager", "grafana_backup", "grafana", "backend_env", "sentry_release",
        "backend_standin", "jaeger", "tempo", "otel_collector", "victorialogs", "loki",
    }
    for call in roles:
        signature = inspect.signature(imported[call.func.id]._inner)
        signature.bind(*call.args, **{k.arg: k.value for k in call.keywords})  # TypeError on a mismatch


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
    roles = {
        "roles.node_exporter": "node_exporter", "roles.object_store": "object_store", "roles.prometheus": "prometheus",
        "roles.alertmanager": "alertmanager", "roles.backend": "backend_env", "roles.backend.sentry_release": "sentry_release",
        "roles.backend_standin": "backend_standin", "roles.grafana": "grafana", "roles.grafana_backup": "grafana_backup",
        "roles.jaeger": "jaeger", "roles.tempo": "tempo", "roles.otel_collector": "otel_collector",
        "roles.victorialogs": "victorialogs", "roles.loki": "loki",
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

    _good_secrets(monkeypatch)
    environment, secrets, by_host = _run_deploy(monkeypatch, REPO / "inventory" / "staging.py")

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


def test_an_enabled_grafana_backup_runs_on_the_monitoring_hosts_after_alertmanager(monkeypatch, tmp_path):
    """The role gets its own block, the secrets (its multi-line deploy key in them), the mirror and the textfile dir."""
    import subprocess

    from roles.node_exporter import TEXTFILE_GROUP
    from tests.environments import write_inventory

    _good_secrets(monkeypatch)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "key")], check=True)
    monkeypatch.setenv("SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY", (tmp_path / "key").read_text())
    backup = {
        "enabled": True,
        "remote_url": "git@git.example.org:ops/grafana-backup.git",
        "known_hosts": ["git.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"],
    }
    body = f"""
        monitoring = [("mon1.wiring", {{"grafana_backup": {backup!r}}}), "mon2.wiring"]
        telemetry = ["tel1.wiring"]
        app = ["app1.wiring"]
        """
    environment, secrets, by_host = _run_deploy(monkeypatch, write_inventory(tmp_path, "staging", body, check=True))

    mon1 = environment.host("mon1.wiring").settings
    # Before grafana(), whose token step writes into the backup's config dir.
    assert [c[0] for c in by_host["mon1.wiring"]] == ["node_exporter", "prometheus", "alertmanager", "grafana_backup", "grafana"]
    assert by_host["mon1.wiring"][3][1] == (
        mon1.grafana_backup, secrets, mon1.artifact_base_url, mon1.node_exporter.textfile_dir, TEXTFILE_GROUP
    )
    assert "SENTINEL_GRAFANA_BACKUP_DEPLOY_KEY" in secrets and "SENTINEL_GRAFANA_BACKUP_TOKEN" not in secrets
    assert [c[0] for c in by_host["mon2.wiring"]] == ["node_exporter", "prometheus", "alertmanager", "grafana"]  # off there
    assert "grafana_backup" not in [c[0] for c in by_host["tel1.wiring"] + by_host["app1.wiring"]]
