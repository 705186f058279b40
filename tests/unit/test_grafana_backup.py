"""The Grafana backup job against the Grafana API STAND-IN and a local bare git remote.

What these prove: the job's export, normalisation, commit-only-on-change, push,
metric, failure handling and restore logic, against the stand-in's reading of
Grafana's API shapes. What they cannot prove: that a real Grafana answers the
same way (see docs/runbooks/dashboard-restoration.md, "What is proven").
"""

from __future__ import annotations

import io
import json
import os
import subprocess

import pytest

from tests.unit.grafana_backup_fixtures import (
    PORTS, StandinClient, bare_remote, load_job, remote_files, remote_log, seed, start_standin, write_config,
)
from tests.ports import free_port

job = load_job()


@pytest.fixture
def standin():
    server = start_standin()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def env(standin, tmp_path):
    base = f"http://127.0.0.1:{standin.server_address[1]}"
    client = StandinClient(base)
    seed(client)
    remote = bare_remote(tmp_path)
    config_path = write_config(tmp_path, base, str(remote))
    return {"client": client, "remote": remote, "config_path": config_path, "config": job.Config.load(str(config_path)),
            "tmp": tmp_path, "server": standin}


def run(config_path, *args) -> int:
    return job.main(["--config", str(config_path), *args])


def metric_file(env):
    return env["tmp"] / "textfile" / "sentinel_grafana_backup.prom"


def last_run(env) -> dict[str, float]:
    """The last-run textfile's samples, read as node_exporter reads them."""
    from prometheus_client.parser import text_string_to_metric_families

    text = (env["tmp"] / "textfile" / job.RUN_METRIC_FILE_NAME).read_text()
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}


# --- normalisation ----------------------------------------------------------


def test_dumps_is_sorted_and_stable():
    assert job.dumps({"b": 1, "a": {"d": 2, "c": 3}}) == '{\n  "a": {\n    "c": 3,\n    "d": 2\n  },\n  "b": 1\n}\n'


def test_volatile_fields_are_dropped_but_panel_ids_stay():
    doc = job.normalize_dashboard({"id": 7, "uid": "u", "version": 12, "title": "T", "panels": [{"id": 3}]})
    assert doc == {"uid": "u", "title": "T", "panels": [{"id": 3}]}
    rule = job.normalize_rule({"id": 1, "uid": "r", "updated": "2026-01-01T00:00:00Z", "provenance": "api", "title": "t"})
    assert rule == {"uid": "r", "title": "t"}


def test_contact_point_secrets_are_redacted():
    slack = job.normalize_contact_point({"uid": "s", "type": "slack", "provenance": "file",
                                         "settings": {"url": "https://hooks.slack.com/services/x", "recipient": "#c"}})
    assert slack["settings"] == {"url": "[REDACTED]", "recipient": "#c"} and "provenance" not in slack
    webhook = job.normalize_contact_point({"uid": "w", "type": "webhook", "settings": {"url": "http://hook", "password": "p",
                                                                                      "authorization_credentials": "c"}})
    assert webhook["settings"] == {"url": "http://hook", "password": "[REDACTED]", "authorization_credentials": "[REDACTED]"}
    pd = job.normalize_contact_point({"uid": "p", "type": "pagerduty", "settings": {"integrationKey": "k", "severity": "critical"}})
    assert pd["settings"]["integrationKey"] == "[REDACTED]" and pd["settings"]["severity"] == "critical"


def test_datasources_lose_secrets_and_volatile_fields():
    ds = job.normalize_datasource({"id": 3, "orgId": 1, "uid": "l", "version": 4, "basicAuthPassword": "x",
                                   "secureJsonFields": {"basicAuthPassword": True}, "jsonData": {"token": "t", "maxLines": 10}})
    assert ds == {"uid": "l", "jsonData": {"token": "[REDACTED]", "maxLines": 10}}


def test_policy_tree_loses_nested_provenance():
    tree = job.normalize_policies({"receiver": "a", "provenance": "api", "routes": [{"receiver": "b", "provenance": "api"}]})
    assert tree == {"receiver": "a", "routes": [{"receiver": "b"}]}


def test_git_env_pins_the_deploy_key_and_known_hosts(tmp_path):
    config = job.Config.load(str(write_config(tmp_path, "http://127.0.0.1:16999", "git@tel1:/srv/git/grafana.git")))
    ssh = job.git_env(config)["GIT_SSH_COMMAND"]
    assert f"-i {tmp_path}/deploy_key" in ssh
    assert f"UserKnownHostsFile={tmp_path}/known_hosts" in ssh
    assert "StrictHostKeyChecking=yes" in ssh and "IdentitiesOnly=yes" in ssh and "BatchMode=yes" in ssh
    assert "StrictHostKeyChecking=no" not in ssh


# --- backup -----------------------------------------------------------------


def test_backup_exports_everything_commits_pushes_and_writes_the_metric(env):
    assert run(env["config_path"], "backup") == 0
    assert len(remote_log(env["remote"])) == 1
    files = remote_files(env["remote"])
    assert "dashboards/Sentinel/business.json" in files
    assert "dashboards/Sentinel/App-Backend/performance.json" in files  # nested folder, path from titles
    assert "dashboards/General/home.json" in files
    assert "alerting/rule-groups/sentinel/backend.json" in files
    for name in ("folders.json", "datasources.json", "alerting/contact-points.json", "alerting/policies.json", "alerting/mute-timings.json"):
        assert name in files
    show = lambda path: subprocess.run(["git", "-C", str(env["remote"]), "show", f"main:{path}"], capture_output=True, text=True, check=True).stdout  # noqa: E731
    perf = json.loads(show("dashboards/Sentinel/App-Backend/performance.json"))
    assert perf["folderUid"] == "sentinel-app" and perf["folderPath"] == ["Sentinel", "App / Backend"]
    assert "id" not in perf["dashboard"] and "version" not in perf["dashboard"]
    assert "secret-token" not in show("alerting/contact-points.json")
    assert "hunter2" not in show("datasources.json") and "not-really-secure" not in show("datasources.json")
    group = json.loads(show("alerting/rule-groups/sentinel/backend.json"))
    assert group["interval"] == 60 and [r["uid"] for r in group["rules"]] == ["backend-down", "backend-errors"]
    metrics = metric_file(env).read_text()
    assert "sentinel_grafana_backup_last_success_timestamp_seconds " in metrics
    assert 'sentinel_grafana_backup_objects{kind="dashboards"} 3' in metrics
    assert 'sentinel_grafana_backup_objects{kind="alert_rules"} 2' in metrics
    assert 'sentinel_grafana_backup_objects{kind="folders"} 3' in metrics


def test_every_run_records_when_it_ended_and_whether_it_succeeded(env):
    import time

    started = time.time()
    assert run(env["config_path"], "backup") == 0
    first = last_run(env)
    assert first["sentinel_grafana_backup_last_run_success"] == 1
    assert started <= first["sentinel_grafana_backup_last_run_timestamp_seconds"] <= time.time()
    success = metric_file(env).read_text()
    env["client"].control("POST", "/standin/fault", {"mode": "error"})
    assert run(env["config_path"], "backup") == job.EXIT_GRAFANA
    second = last_run(env)
    assert second["sentinel_grafana_backup_last_run_success"] == 0
    assert second["sentinel_grafana_backup_last_run_timestamp_seconds"] > first["sentinel_grafana_backup_last_run_timestamp_seconds"]
    assert metric_file(env).read_text() == success  # the last success stays what it was


def test_an_unexpected_error_is_recorded_as_a_failed_run(env, monkeypatch):
    monkeypatch.setattr(job, "export", lambda api: {}["a bug"])
    with pytest.raises(KeyError):
        run(env["config_path"], "backup")
    assert last_run(env)["sentinel_grafana_backup_last_run_success"] == 0


def test_a_config_that_cannot_be_read_records_no_run(env, capsys):
    """Without the config the job does not know the textfile directory: nothing to record (the stale alert
    measures from the install then)."""
    env["config_path"].write_text("{not json")
    assert run(env["config_path"], "backup") == job.EXIT_CONFIG
    assert not (env["tmp"] / "textfile" / job.RUN_METRIC_FILE_NAME).exists()


def test_no_change_means_no_commit_but_a_fresh_metric(env):
    assert run(env["config_path"], "backup") == 0
    first = remote_log(env["remote"])
    os.utime(metric_file(env), (0, 0))
    # Volatile fields change without a real change: a dashboard re-saved as is gets a new version.
    d = env["client"].api("GET", "/api/dashboards/uid/home")["dashboard"]
    env["client"].api("POST", "/api/dashboards/db", {"dashboard": d, "overwrite": True})
    assert run(env["config_path"], "backup") == 0
    assert remote_log(env["remote"]) == first
    assert metric_file(env).stat().st_mtime > 0


def test_one_changed_dashboard_commits_exactly_that_change(env):
    assert run(env["config_path"], "backup") == 0
    d = env["client"].api("GET", "/api/dashboards/uid/business")["dashboard"]
    d["title"] = "Business (renamed)"
    env["client"].api("POST", "/api/dashboards/db", {"dashboard": d, "folderUid": "sentinel", "overwrite": True})
    assert run(env["config_path"], "backup") == 0
    log = remote_log(env["remote"])
    assert len(log) == 2
    changed = subprocess.run(["git", "-C", str(env["remote"]), "diff", "--name-only", log[1], log[0]],
                             capture_output=True, text=True, check=True).stdout.split()
    assert changed == ["dashboards/Sentinel/business.json"]


def test_a_lost_working_copy_is_rebuilt_from_the_remote(env):
    assert run(env["config_path"], "backup") == 0
    subprocess.run(["rm", "-rf", env["config"].repo_dir], check=True)
    assert run(env["config_path"], "backup") == 0
    assert len(remote_log(env["remote"])) == 1


# --- failures: non-zero, no commit, no metric update ---------------------------


def _assert_failed_cleanly(env, code, commits_before):
    assert code != 0
    assert remote_log(env["remote"]) == commits_before
    repo = env["config"].repo_dir
    if os.path.isdir(repo):
        status = subprocess.run(["git", "-C", repo, "status", "--porcelain"], capture_output=True, text=True).stdout
        assert status == ""
        head = subprocess.run(["git", "-C", repo, "rev-parse", "-q", "--verify", "HEAD"], capture_output=True, text=True).stdout.strip()
        assert head == (commits_before[0] if commits_before else "")


def test_wrong_token_fails_without_commit_or_metric(env, capsys):
    env["config_path"].parent.joinpath("token").write_text("glsa_wrong\n")
    code = run(env["config_path"], "backup")
    _assert_failed_cleanly(env, code, [])
    assert code == job.EXIT_GRAFANA and "401" in capsys.readouterr().err
    assert not metric_file(env).exists()
    # Never succeeded, but ran: the failing alert can tell.
    assert last_run(env)["sentinel_grafana_backup_last_run_success"] == 0


def test_unreachable_grafana_fails_without_commit_or_metric(env, capsys):
    assert run(env["config_path"], "backup") == 0
    before, metric = remote_log(env["remote"]), metric_file(env).read_text()
    # Something changed, but Grafana cannot be read.
    env["client"].api("POST", "/api/dashboards/db", {"dashboard": {"uid": "new", "title": "New"}})
    env["client"].control("POST", "/standin/fault", {"mode": "unreachable"})
    code = run(env["config_path"], "backup")
    _assert_failed_cleanly(env, code, before)
    assert code == job.EXIT_GRAFANA and "unreachable" in capsys.readouterr().err
    assert metric_file(env).read_text() == metric
    assert last_run(env)["sentinel_grafana_backup_last_run_success"] == 0


def test_grafana_server_error_fails(env):
    env["client"].control("POST", "/standin/fault", {"mode": "error"})
    assert run(env["config_path"], "backup") == job.EXIT_GRAFANA
    assert not metric_file(env).exists()


def test_nothing_listening_fails(env, tmp_path):
    config = json.loads(env["config_path"].read_text())
    config["grafana_url"] = f"http://127.0.0.1:{free_port(PORTS)}"
    env["config_path"].write_text(json.dumps(config))
    assert run(env["config_path"], "backup") == job.EXIT_GRAFANA


def test_rejected_push_fails_and_leaves_no_partial_commit(env, capsys):
    assert run(env["config_path"], "backup") == 0
    before, metric = remote_log(env["remote"]), metric_file(env).read_text()
    hook = env["remote"] / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'rejected by test hook' >&2\nexit 1\n")
    hook.chmod(0o755)
    env["client"].api("POST", "/api/dashboards/db", {"dashboard": {"uid": "new", "title": "New"}})
    code = run(env["config_path"], "backup")
    _assert_failed_cleanly(env, code, before)
    assert code == job.EXIT_GIT and "rejected" in capsys.readouterr().err
    assert metric_file(env).read_text() == metric
    assert last_run(env)["sentinel_grafana_backup_last_run_success"] == 0
    hook.unlink()  # the next run pushes the change
    assert run(env["config_path"], "backup") == 0
    assert len(remote_log(env["remote"])) == 2
    assert last_run(env)["sentinel_grafana_backup_last_run_success"] == 1


def test_metric_is_written_atomically(tmp_path):
    path = tmp_path / "m.prom"
    job.write_metrics_atomically(str(path), "a 1\n")
    job.write_metrics_atomically(str(path), "a 2\n")
    assert path.read_text() == "a 2\n" and sorted(os.listdir(tmp_path)) == ["m.prom"]
    assert oct(path.stat().st_mode & 0o777) == "0o644"


# --- restore ------------------------------------------------------------------


def test_restore_after_a_wipe_recreates_everything_identically(env):
    assert run(env["config_path"], "backup") == 0
    api = job.connect(env["config"])
    original = job.export(api)
    env["client"].control("POST", "/standin/reset", {"keep_datasources": True})
    assert job.export(api)["dashboards"] == []
    out = io.StringIO()
    assert job.restore(env["config"], None, dry_run=False, out=out) == 0
    assert "read-back identical" in out.getvalue()
    restored = job.export(api)
    # Identical except contact-point secrets, which the backup never had (both sides redacted).
    assert restored == original


def test_restore_dry_run_prints_changes_and_writes_nothing(env):
    assert run(env["config_path"], "backup") == 0
    d = env["client"].api("GET", "/api/dashboards/uid/business")["dashboard"]
    d["title"] = "changed by hand"
    env["client"].api("POST", "/api/dashboards/db", {"dashboard": d, "folderUid": "sentinel", "overwrite": True})
    env["client"].control("DELETE", "/standin/requests")
    out = io.StringIO()
    assert job.restore(env["config"], None, dry_run=True, out=out) == 0
    text = out.getvalue()
    assert "would update dashboard: Business (business)" in text
    assert "1 of" in text and "nothing was written" in text
    writes = [r for r in env["client"].control("GET", "/standin/requests")["requests"] if r["method"] != "GET"]
    assert writes == []
    assert env["client"].api("GET", "/api/dashboards/uid/business")["dashboard"]["title"] == "changed by hand"


def test_restore_from_an_older_revision(env):
    assert run(env["config_path"], "backup") == 0
    first = remote_log(env["remote"])[0]
    d = env["client"].api("GET", "/api/dashboards/uid/business")["dashboard"]
    d["title"] = "second"
    env["client"].api("POST", "/api/dashboards/db", {"dashboard": d, "folderUid": "sentinel", "overwrite": True})
    assert run(env["config_path"], "backup") == 0
    assert job.restore(env["config"], first, dry_run=False, out=io.StringIO()) == 0
    assert env["client"].api("GET", "/api/dashboards/uid/business")["dashboard"]["title"] == "Business"


def test_restore_reports_a_read_back_difference(env, monkeypatch, capsys):
    assert run(env["config_path"], "backup") == 0
    real_export = job.export
    calls = {"n": 0}

    def export_that_loses_a_dashboard(api):
        calls["n"] += 1
        state = real_export(api)
        if calls["n"] == 2:  # the read-back
            state["dashboards"] = state["dashboards"][1:]
        return state

    monkeypatch.setattr(job, "export", export_that_loses_a_dashboard)
    assert job.restore(env["config"], None, dry_run=False, out=io.StringIO()) == job.EXIT_MISMATCH
    assert "read-back differs" in capsys.readouterr().err


def test_plan_restore_names_creates_updates_and_unchanged():
    empty = {"folders": [], "dashboards": [], "rule_groups": [], "contact_points": [], "policies": {}, "mute_timings": [], "datasources": []}
    want = {**empty, "folders": [{"uid": "a", "title": "A", "parentUid": None, "path": ["A"]}],
            "dashboards": [{"folderUid": "a", "folderPath": ["A"], "dashboard": {"uid": "d", "title": "D"}}],
            "policies": {"receiver": "x"}}
    have = {**empty, "dashboards": [{"folderUid": "a", "folderPath": ["A"], "dashboard": {"uid": "d", "title": "old"}}],
            "policies": {"receiver": "x"}}
    assert job.plan_restore(want, have) == [
        ("create", "folder", "A (a)"), ("update", "dashboard", "D (d)"), ("unchanged", "notification policies", "the policy tree"),
    ]


def test_restore_works_from_the_local_copy_when_the_git_server_is_down(env, capsys):
    assert run(env["config_path"], "backup") == 0
    env["remote"].rename(env["tmp"] / "remote-gone.git")
    env["client"].control("POST", "/standin/reset", {"keep_datasources": True})
    assert job.restore(env["config"], None, dry_run=False, out=io.StringIO()) == 0
    assert "restoring from the local working copy" in capsys.readouterr().err
    assert env["client"].api("GET", "/api/dashboards/uid/business")["dashboard"]["title"] == "Business"


def test_the_program_runs_with_crons_empty_environment(env):
    """As the crontab runs it: `env -i` with only the role's fixed variables (HOME, PATH, LANG)."""
    import sys

    from roles.grafana_backup import FIXED_ENV

    fixed = [a if not a.startswith("HOME=") else f"HOME={env['tmp']}" for a in FIXED_ENV]
    command = ["env", "-i", *fixed, sys.executable, str(job.__file__), "--config", str(env["config_path"]), "backup"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "committed and pushed" in result.stdout
    env["config_path"].parent.joinpath("token").write_text("glsa_wrong\n")
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == job.EXIT_GRAFANA and "401" in result.stderr
    assert "glsa_wrong" not in result.stderr + result.stdout  # the token is never printed


def test_a_grafana_without_nested_folders_does_not_loop(env, monkeypatch):
    """Without nested folders Grafana ignores ?parentUid and lists every folder each time."""
    from lab.receivers import grafana_api

    def list_all(server, m, query, body):
        return 200, [{"id": f["id"], "uid": f["uid"], "title": f["title"]} for f in server.state.folders.values()]

    routes = [(meth, pat, list_all if fn is grafana_api.list_folders else fn) for meth, pat, fn in grafana_api.ROUTES]
    monkeypatch.setattr(grafana_api, "ROUTES", routes)
    folders = job.export(job.connect(env["config"]))["folders"]
    assert sorted(f["uid"] for f in folders) == ["sentinel", "sentinel-app", "stack"]
    assert {f["uid"]: f["path"] for f in folders}["sentinel-app"] == ["Sentinel", "App / Backend"]


def test_an_unwritable_textfile_dir_is_a_clear_failure(env, capsys):
    config = json.loads(env["config_path"].read_text())
    config["textfile_path"] = str(env["tmp"] / "missing-dir" / "sentinel_grafana_backup.prom")
    env["config_path"].write_text(json.dumps(config))
    assert run(env["config_path"], "backup") == job.EXIT_CONFIG
    assert "cannot write the metric" in capsys.readouterr().err


# --- the token: its role, its expiry, Grafana over https ----------------------------------


def _use_token(env, token: str, role: str, seconds_to_live: int = 0) -> None:
    env["client"].control("POST", "/standin/tokens", {"token": token, "role": role, "secondsToLive": seconds_to_live})
    env["config_path"].parent.joinpath("token").write_text(token + "\n")


def test_a_viewer_token_exports_but_cannot_restore_as_grafana_refuses_it(env, capsys):
    assert run(env["config_path"], "backup") == 0
    env["client"].control("POST", "/standin/reset", {"keep_datasources": True})
    before = env["client"].control("GET", "/standin/state")
    _use_token(env, "glsa_viewer_token", "Viewer")
    code = run(env["config_path"], "restore")
    assert code == job.EXIT_GRAFANA
    err = capsys.readouterr().err
    assert "403" in err and "additional permissions" in err and "glsa_viewer_token" not in err
    assert env["client"].control("GET", "/standin/state") == before  # nothing was written
    refused = [r for r in env["client"].control("GET", "/standin/requests")["requests"] if r.get("refused")]
    assert refused and all(r["refused"] == 403 and r["method"] != "GET" for r in refused)


def test_an_editor_token_the_documented_role_restores_everything(env):
    assert run(env["config_path"], "backup") == 0
    api = job.connect(env["config"])
    original = job.export(api)
    env["client"].control("POST", "/standin/reset", {"keep_datasources": True})
    _use_token(env, "glsa_editor_token", "Editor", 3600)
    assert run(env["config_path"], "restore") == 0
    assert job.export(job.connect(env["config"])) == original


def test_an_expired_token_is_refused_with_401(env, capsys):
    import time

    _use_token(env, "glsa_short_lived", "Editor", 1)
    time.sleep(1.1)
    assert run(env["config_path"], "backup") == job.EXIT_GRAFANA
    assert "401" in capsys.readouterr().err


def _with_expiry(env, expiry: float):
    expires = env["tmp"] / "token.expires"
    expires.write_text(f"{int(expiry)}\n")
    config = json.loads(env["config_path"].read_text())
    config["token_expiry_file"] = str(expires)
    env["config_path"].write_text(json.dumps(config))


def _token_metric(env) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = (env["tmp"] / "textfile" / job.TOKEN_METRIC_FILE_NAME).read_text()
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}


def test_every_run_exports_the_tokens_expiry_even_a_failing_one(env, capsys):
    import time

    expiry = time.time() + 60 * 86400
    _with_expiry(env, expiry)
    assert run(env["config_path"], "backup") == 0
    assert _token_metric(env) == {"sentinel_grafana_backup_token_expiry_seconds": int(expiry)}
    assert "expires" not in capsys.readouterr().err  # far from it: no warning
    # Near its end: the job warns in the journal, and a failing run still exports it.
    _with_expiry(env, time.time() + 3 * 86400)
    env["client"].control("POST", "/standin/fault", {"mode": "error"})
    assert run(env["config_path"], "backup") == job.EXIT_GRAFANA
    assert _token_metric(env)["sentinel_grafana_backup_token_expiry_seconds"] < time.time() + 4 * 86400
    assert "token expires in 3.0 days" in capsys.readouterr().err


def test_without_a_recorded_expiry_no_token_metric_is_written(env):
    assert run(env["config_path"], "backup") == 0
    assert not (env["tmp"] / "textfile" / job.TOKEN_METRIC_FILE_NAME).exists()


def _https_standin(tmp_path, ca_name: str):
    """The stand-in behind TLS with a certificate for 127.0.0.1 from a CA made here."""
    from roles._pki import CertificateAuthority

    ca = CertificateAuthority.open(ca_name, tmp_path / ca_name)
    leaf = ca.issue("mon1", "grafana", (), ("127.0.0.1",))
    for name, text in (("ca.crt", leaf.ca_pem), ("grafana.crt", leaf.cert_pem), ("grafana.key", leaf.key_pem)):
        (tmp_path / f"{ca_name}-{name}").write_text(text)
    return _tls_standin(tmp_path / f"{ca_name}-grafana.crt", tmp_path / f"{ca_name}-grafana.key"), tmp_path / f"{ca_name}-ca.crt"


def _tls_standin(cert_file, key_file):
    """The stand-in behind TLS, serving `cert_file` (a chain may follow the certificate) with `key_file`."""
    import ssl

    from lab.receivers.grafana_api import make_server
    from lab.receivers.recording import start_in_thread
    from tests.unit.grafana_backup_fixtures import TOKEN

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    server = make_server("127.0.0.1", free_port(PORTS), TOKEN)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    start_in_thread(server)
    return server


def test_the_job_reaches_grafana_over_https_verified_with_the_environment_ca(env, tmp_path, capsys):
    server, ca_file = _https_standin(tmp_path, "envca")
    other, other_ca = _https_standin(tmp_path, "otherca")
    try:
        config = json.loads(env["config_path"].read_text())
        config.update(grafana_url=f"https://127.0.0.1:{server.server_address[1]}", ca_file=str(ca_file))
        env["config_path"].write_text(json.dumps(config))
        server.state = env["server"].state  # the seeded objects, now behind TLS
        assert run(env["config_path"], "backup") == 0
        # A certificate of another CA: refused before the token is sent.
        config["ca_file"] = str(other_ca)
        env["config_path"].write_text(json.dumps(config))
        assert run(env["config_path"], "backup") == job.EXIT_GRAFANA
        assert "unreachable" in capsys.readouterr().err
    finally:
        for standin in (server, other):  # cheroot's workers are not daemons: one left running keeps pytest from exiting
            standin.shutdown()
            standin.server_close()


def test_the_job_verifies_grafanas_public_certificate_for_its_name_while_connecting_to_its_url(env, tmp_path, capsys):
    """Grafana's public certificate names root_url's host, not the address the job connects to (the topology's):
    the job sends that name (tls_server_name) and checks the certificate for it. A public CA's root is in the
    host's trust store (ca_file ""); here a throwaway root stands in for it as a CA file."""
    from tests.unit.public_cert_fixtures import chain

    pair = chain(("grafana.example.test",))
    (tmp_path / "public.crt").write_text(pair.chain_pem)
    (tmp_path / "public.key").write_text(pair.key_pem)
    (tmp_path / "root.pem").write_text(pair.root_pem)
    server = _tls_standin(tmp_path / "public.crt", tmp_path / "public.key")
    try:
        server.state = env["server"].state  # the seeded objects, now behind the public certificate
        config = json.loads(env["config_path"].read_text())
        config.update(grafana_url=f"https://127.0.0.1:{server.server_address[1]}", ca_file=str(tmp_path / "root.pem"),
                      tls_server_name="grafana.example.test")
        env["config_path"].write_text(json.dumps(config))
        assert run(env["config_path"], "backup") == 0
        # Without the name, the address is checked against the certificate: refused before the token is sent.
        for name in ("", "dashboards.example.test"):
            config["tls_server_name"] = name
            env["config_path"].write_text(json.dumps(config))
            assert run(env["config_path"], "backup") == job.EXIT_GRAFANA, name
            assert "unreachable" in capsys.readouterr().err
    finally:
        server.shutdown()
        server.server_close()
