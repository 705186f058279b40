"""Shared pieces of the backup job's unit tests: the Grafana API STAND-IN on
127.0.0.1 (ports 16000-16999), a local bare git repository as the remote, and
sample Grafana objects whose shapes follow files/grafana_backup/api-shapes.yml."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import requests

from lab.receivers.grafana_api import make_server
from lab.receivers.recording import start_in_thread

ROOT = Path(__file__).resolve().parents[2]
JOB_PATH = ROOT / "files" / "grafana_backup" / "sentinel_grafana_backup.py"
TOKEN = "glsa_standin_token_for_unit_tests"
PORTS = range(16000, 17000)


def load_job():
    """The job program as a module (it is a single file installed on the host, not a package)."""
    spec = importlib.util.spec_from_file_location("sentinel_grafana_backup", JOB_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["sentinel_grafana_backup"] = module
    spec.loader.exec_module(module)
    return module


def start_standin():
    for port in PORTS:
        try:
            server = make_server("127.0.0.1", port, TOKEN)
        except OSError:
            continue
        start_in_thread(server)
        return server
    raise RuntimeError("no free port in 16000-16999")


class StandinClient:
    """Seeds and inspects the stand-in as a test would, through its HTTP API."""

    def __init__(self, base: str, token: str = TOKEN):
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}"}

    def api(self, method: str, path: str, body=None, **headers):
        r = requests.request(method, self.base + path, json=body, headers={**self.headers, **headers}, timeout=10)
        assert r.status_code < 300, (method, path, r.status_code, r.text)
        return r.json()

    def control(self, method: str, path: str, body=None):
        r = requests.request(method, self.base + path, json=body, timeout=10)
        r.raise_for_status()
        return r.json()


def dashboard(uid: str, title: str, panels: int = 1) -> dict:
    return {
        "uid": uid,
        "title": title,
        "tags": ["sentinel"],
        "schemaVersion": 39,
        "panels": [
            {"id": i + 1, "type": "timeseries", "title": f"panel {i + 1}",
             "targets": [{"refId": "A", "expr": f"sum(rate(http_requests_total[5m])) * {i + 1}"}]}
            for i in range(panels)
        ],
    }


def alert_rule(uid: str, folder: str, group: str) -> dict:
    # models/provisioned_alert_rule.go: the required fields.
    return {
        "uid": uid,
        "title": f"rule {uid}",
        "condition": "A",
        "data": [{"refId": "A", "datasourceUid": "prometheus", "relativeTimeRange": {"from": 600, "to": 0},
                  "model": {"expr": "up == 0", "refId": "A"}}],
        "folderUID": folder,
        "ruleGroup": group,
        "for": "5m",
        "noDataState": "NoData",
        "execErrState": "Error",
        "labels": {"severity": "critical"},
        "annotations": {"summary": "down"},
        "orgID": 1,
    }


def seed(client: StandinClient) -> None:
    """Two top-level folders, one nested, three dashboards, alerting objects, datasources."""
    client.api("POST", "/api/folders", {"uid": "sentinel", "title": "Sentinel"})
    client.api("POST", "/api/folders", {"uid": "sentinel-app", "title": "App / Backend", "parentUid": "sentinel"})
    client.api("POST", "/api/folders", {"uid": "stack", "title": "Stack"})
    client.api("POST", "/api/dashboards/db", {"dashboard": dashboard("business", "Business", 2), "folderUid": "sentinel"})
    client.api("POST", "/api/dashboards/db", {"dashboard": dashboard("performance", "Performance"), "folderUid": "sentinel-app"})
    client.api("POST", "/api/dashboards/db", {"dashboard": dashboard("home", "Home")})
    client.api("POST", "/api/v1/provisioning/alert-rules", alert_rule("backend-down", "sentinel", "backend"))
    client.api("POST", "/api/v1/provisioning/alert-rules", alert_rule("backend-errors", "sentinel", "backend"))
    client.api("POST", "/api/v1/provisioning/contact-points",
               {"uid": "slack-critical", "name": "slack-critical", "type": "slack",
                "settings": {"url": "https://hooks.slack.com/services/T/B/secret-token", "recipient": "#critical-alerts"}})
    client.api("POST", "/api/v1/provisioning/contact-points",
               {"uid": "email-digest", "name": "email-digest", "type": "email", "settings": {"addresses": "ops@sentinel.test"}})
    client.api("POST", "/api/v1/provisioning/mute-timings",
               {"name": "weekends", "time_intervals": [{"weekdays": ["saturday", "sunday"]}]})
    client.api("PUT", "/api/v1/provisioning/policies",
               {"receiver": "email-digest", "group_by": ["alertname"],
                "routes": [{"receiver": "slack-critical", "object_matchers": [["severity", "=", "critical"]],
                            "mute_time_intervals": ["weekends"]}]})
    client.api("POST", "/api/datasources",
               {"uid": "prometheus", "name": "Prometheus", "type": "prometheus", "url": "http://mon1:9090", "access": "proxy",
                "isDefault": True, "jsonData": {"httpMethod": "POST"}})
    client.api("POST", "/api/datasources",
               {"uid": "loki", "name": "Loki", "type": "loki", "url": "http://tel1:3100", "basicAuth": True,
                "user": "loki", "jsonData": {"httpHeaderName1": "X-Scope-OrgID", "token": "not-really-secure"},
                "secureJsonData": {"basicAuthPassword": "hunter2"}})


def bare_remote(tmp: Path) -> Path:
    remote = tmp / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    return remote


def remote_log(remote: Path) -> list[str]:
    proc = subprocess.run(["git", "-C", str(remote), "log", "--format=%H", "main"], capture_output=True, text=True)
    return proc.stdout.split() if proc.returncode == 0 else []


def remote_files(remote: Path, commit: str = "main") -> list[str]:
    out = subprocess.run(["git", "-C", str(remote), "ls-tree", "-r", "--name-only", commit], capture_output=True, text=True, check=True)
    return out.stdout.split()


def write_config(tmp: Path, base_url: str, remote: str, token: str = TOKEN) -> Path:
    (tmp / "token").write_text(token + "\n")
    (tmp / "textfile").mkdir(exist_ok=True)
    config = {
        "grafana_url": base_url,
        "token_file": str(tmp / "token"),
        "repo_dir": str(tmp / "work" / "repo"),
        "remote_url": remote,
        "branch": "main",
        "ssh_key_file": str(tmp / "deploy_key"),
        "known_hosts_file": str(tmp / "known_hosts"),
        "strict_host_key_checking": "yes",
        "textfile_path": str(tmp / "textfile" / "sentinel_grafana_backup.prom"),
        "timeout_seconds": 5,
    }
    path = tmp / "config.json"
    path.write_text(json.dumps(config))
    return path
