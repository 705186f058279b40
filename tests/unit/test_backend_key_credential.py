"""The backend's OTLP client key reaches it as a systemd credential (roles/backend/tls.py, issue 22).

The key on disk is 0600 root:root, so the collector agent (a member of the `sentinel` group, for the
backend's log) cannot read it; a drop-in for the backend's unit has systemd load it as the credential
`otlp-client.key`, and the env file names systemd's copy in /run/credentials/<unit>/. The drop-in is
checked on the host with the real systemd-analyze before it replaces the live one; here that check
runs against this machine's systemd.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

import roles.backend as backend_role
import roles.backend.tls as role
import roles.node_exporter
from roles._service.operations import validate_script
from roles._service.quoting import QuotingError, parse_env_file, sh_quote
from roles.backend import render_env
from tests.unit.test_tracing import lab_environment
from tests.unit.op_recorder import Recorder

pytestmark = [pytest.mark.tls, pytest.mark.tracing]


# --- names and paths ------------------------------------------------------------------------------


@pytest.mark.parametrize("unit", ["sentinel-backend.service", "sentinel-backend"])
def test_the_dropin_and_the_credential_are_named_after_the_unit_with_or_without_its_suffix(unit):
    assert role.dropin_path(unit) == "/etc/systemd/system/sentinel-backend.service.d/sentinel-otlp-credential.conf"
    assert role.credential_path(unit) == "/run/credentials/sentinel-backend.service/otlp-client.key"
    assert role.render_dropin(unit).endswith("[Service]\nLoadCredential=otlp-client.key:/etc/sentinel/tls/sentinel.key\n")


def test_an_instance_of_a_template_unit_keeps_its_instance():
    assert role.credential_path("backend@blue") == "/run/credentials/backend@blue.service/otlp-client.key"
    assert role.dropin_path("backend@blue.service") == "/etc/systemd/system/backend@blue.service.d/sentinel-otlp-credential.conf"


@pytest.mark.parametrize("unit", [
    "sentinel-backend.service\nExecStartPre=/bin/evil", "sentinel\tbackend", "sentinel-backend\r", "backend\u2028x",
    "../../etc/passwd", "a/b.service", "x@.service", "", ".service", "sentinel backend.service", "back\\x2dend.service",
    "backend.service%n", "backend.socket.d/../x",
])
def test_a_unit_name_that_is_no_service_name_is_refused(unit):
    for render in (role.dropin_path, role.credential_path, role.render_dropin):
        with pytest.raises(QuotingError) as refused:
            render(unit)
        assert "backend.unit" in str(refused.value)
        assert len(unit) < 10 or unit not in str(refused.value)  # the message names the setting, never the value


def test_a_key_path_systemd_cannot_carry_is_refused():
    with pytest.raises(QuotingError):
        role.render_dropin("sentinel-backend.service", "/etc/sentinel/tls/a:b.key")
    with pytest.raises(QuotingError):
        role.render_dropin("sentinel-backend.service", "relative/sentinel.key")


def test_the_env_file_names_systemds_copy_of_the_key():
    app = lab_environment()["app1"]
    env = role.otlp_sdk_env(role.TLS, key=role.credential_path(app.settings.backend.unit))
    text = render_env(app.settings, "https://127.0.0.1:4319", "", app.bind_ip("backend.http"), env)
    values = parse_env_file(text)
    assert values["OTEL_EXPORTER_OTLP_CLIENT_KEY"] == "/run/credentials/sentinel-backend.service/otlp-client.key"
    assert values["OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"] == "/etc/sentinel/tls/sentinel.crt"
    assert values["OTEL_EXPORTER_OTLP_CERTIFICATE"] == "/etc/sentinel/tls/ca.crt"
    assert "/etc/sentinel/tls/sentinel.key" not in text


# --- the drop-in, checked by the real systemd-analyze ---------------------------------------------


def _check(tmp_path, content: str, key=None) -> subprocess.CompletedProcess:
    """The role's check of a staged drop-in, run as validated_file runs it on the host."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is missing; run: apt-get install systemd")
    if key is None:
        key = tmp_path / "sentinel.key"
        key.write_text("not a real key\n")
    staged = tmp_path / "sentinel-otlp-credential.conf.staged"
    staged.write_text(content)
    script = "set -eu\n" + "\n".join(validate_script(role.dropin_check(str(key)), str(staged), "/etc/systemd/system/x.d/y.conf"))
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)


def test_systemd_analyze_accepts_the_dropin(tmp_path):
    key = tmp_path / "sentinel.key"
    key.write_text("not a real key\n")
    result = _check(tmp_path, role.render_dropin("sentinel-backend.service", str(key)), key)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "sentinel-otlp-credential.conf.staged").exists()  # accepted: left for the swap


@pytest.mark.parametrize("broken", [
    "[Service]\nLoadCredentials=otlp-client.key:/etc/sentinel/tls/sentinel.key\n",  # an unknown key: systemd only warns
    "[Service]\nLoadCredential=otlp client/key:/etc/sentinel/tls/sentinel.key\n",  # an invalid credential name
    "[Servic\nLoadCredential=otlp-client.key:/etc/sentinel/tls/sentinel.key\n",  # a broken section header
    "LoadCredential=otlp-client.key:/etc/sentinel/tls/sentinel.key\n",  # outside any section
])
def test_a_broken_dropin_is_refused_and_removed(tmp_path, broken):
    result = _check(tmp_path, broken)
    assert result.returncode != 0
    assert "refused /etc/systemd/system/x.d/y.conf" in result.stderr
    assert not (tmp_path / "sentinel-otlp-credential.conf.staged").exists()


def test_a_dropin_whose_key_is_missing_is_refused(tmp_path):
    result = _check(tmp_path, role.render_dropin("sentinel-backend.service"), key=tmp_path / "absent.key")
    assert result.returncode != 0 and "credential source" in result.stderr


def test_the_check_passes_hostile_paths_as_single_words():
    check = role.dropin_check("/etc/sentinel/tls/sentinel.key")
    assert check.startswith("sh -c ") and check.endswith(" sentinel-dropin-check {path} /etc/sentinel/tls/sentinel.key")
    assert check.count("{path}") == 1
    with pytest.raises(QuotingError):
        role.dropin_check("/etc/sentinel/tls/x\n.key")
    assert sh_quote("/a b") in role.dropin_check("/a b")


# --- the role's operations, recorded instead of run -----------------------------------------------


def _record(monkeypatch, changed: set) -> list:
    calls: list = []
    for module in (role, backend_role):
        for name in ("files", "systemd", "server"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, Recorder(calls, name, changed))
        recorder = Recorder(calls, "", changed)
        monkeypatch.setattr(module, "validated_file", lambda recorder=recorder, **kwargs: recorder("validated_file", **kwargs))
    monkeypatch.setattr(roles.node_exporter, "certificate_expiry", lambda *a, **k: calls.append(("certificate_expiry", {})))
    monkeypatch.setattr(backend_role, "host", type("H", (), {"name": "app1"}))
    return calls


def test_the_key_is_roots_alone_and_the_dropin_is_checked_and_reloads_systemd(monkeypatch):
    app = lab_environment()["app1"]
    calls = _record(monkeypatch, changed=set())
    tls = role.backend_tls(app.settings.backend, app)
    files = {kw["dest"]: kw for op, kw in calls if op == "validated_file"}
    key, cert, ca = files["/etc/sentinel/tls/sentinel.key"], files["/etc/sentinel/tls/sentinel.crt"], files["/etc/sentinel/tls/ca.crt"]
    assert (key["user"], key["group"], key["mode"]) == ("root", "root", "0600")
    assert "openssl pkey" in key["validate"]
    assert (cert["user"], cert["group"], cert["mode"]) == ("root", "sentinel", "0644")
    assert (ca["user"], ca["group"], ca["mode"]) == ("root", "sentinel", "0644")
    dropin = files["/etc/systemd/system/sentinel-backend.service.d/sentinel-otlp-credential.conf"]
    assert (dropin["user"], dropin["group"], dropin["mode"]) == ("root", "root", "0644")
    assert dropin["content"] == role.render_dropin("sentinel-backend.service")
    assert dropin["validate"] == role.dropin_check("/etc/sentinel/tls/sentinel.key")
    directories = {kw["path"]: kw for op, kw in calls if op == "files.directory"}
    assert directories["/etc/systemd/system/sentinel-backend.service.d"]["mode"] == "0755"
    names = [kw.get("dest") or kw.get("name") for _, kw in calls]
    # The key is in place (and checked) before the drop-in that loads it; systemd is reloaded after it.
    reload = next(i for i, (op, _) in enumerate(calls) if op == "systemd.daemon_reload")
    assert names.index("/etc/sentinel/tls/sentinel.key") < names.index(dropin["dest"]) < reload
    reload_call = calls[reload][1]
    assert reload_call["_if"]() is False  # nothing changed: no reload (an idempotent second run)
    assert tls.env["OTEL_EXPORTER_OTLP_CLIENT_KEY"] == "/run/credentials/sentinel-backend.service/otlp-client.key"
    assert [op.name for op in tls.changes][-1] == "backend: key as a systemd credential"


def test_a_changed_dropin_reloads_systemd_and_restarts_the_backend(monkeypatch):
    app = lab_environment()["app1"]
    calls = _record(monkeypatch, changed={"backend: key as a systemd credential"})
    tls = role.backend_tls(app.settings.backend, app)
    reload = next(kw for op, kw in calls if op == "systemd.daemon_reload")
    assert reload["_if"]()
    backend_role.backend_env._inner(app.settings.backend, app, tls)
    restart = next(kw for op, kw in calls if op == "server.shell")
    assert restart["_if"](), "a new drop-in must restart the backend: systemd loads credentials at start"
    assert restart["commands"] == [backend_role.restart_command("sentinel-backend.service")]


def test_nothing_changed_restarts_nothing(monkeypatch):
    app = lab_environment()["app1"]
    calls = _record(monkeypatch, changed=set())
    backend_role.backend_env._inner(app.settings.backend, app, role.backend_tls(app.settings.backend, app))
    assert not next(kw for op, kw in calls if op == "server.shell")["_if"]()


def test_the_env_file_with_the_sentry_dsn_is_roots_alone(monkeypatch):
    """systemd reads it as root for EnvironmentFile= (docs/contract.md section 1); the collector agent, in the
    backend's group for the log directory, must not read the DSN, so no group may."""
    app = lab_environment()["app1"]
    calls = _record(monkeypatch, changed=set())
    backend_role.backend_env._inner(app.settings.backend, app, role.backend_tls(app.settings.backend, app))
    env = next(kw for op, kw in calls if op == "validated_file" and kw["dest"] == app.settings.backend.env_file)
    assert (env["user"], env["group"], env["mode"]) == ("root", "root", "0600")
    assert "SENTRY_DSN=" in env["content"]


def test_an_operators_own_endpoint_gets_no_dropin_and_a_stale_one_is_removed(monkeypatch):
    from roles._environment import host_settings

    app = lab_environment()["app1"]
    settings = host_settings("app1", ["app", "lab"], {"artifact_base_url": "http://10.213.0.1:8080",
                                                      "backend": {"otlp_endpoint": "https://otlp.example.org"}})
    monkeypatch.setattr(type(app), "settings", property(lambda self: settings), raising=False)
    calls = _record(monkeypatch, changed=set())
    assert role.backend_tls(settings.backend, app) is None
    assert [op for op, _ in calls] == ["files.file", "systemd.daemon_reload"]
    (_, removed), (_, reload) = calls
    assert removed["path"] == role.dropin_path("sentinel-backend.service") and removed["present"] is False
    assert reload["_if"]() is False  # nothing to remove: nothing to reload


def test_the_lab_units_systemd_loads_the_dropin_beside_its_hardening():
    """The lab's own unit (roles/lab_backend, hardened) with the drop-in: systemd-analyze verify is silent
    about both, and systemd itself (`systemd --test`) lists the drop-in as part of the unit."""
    import os
    import tempfile
    from pathlib import Path

    from roles._service import unit_file
    from roles.lab_backend import NODE, service_spec

    systemd = "/lib/systemd/systemd"
    if not shutil.which("systemd-analyze") or not os.path.exists(systemd) or not os.path.exists(NODE):
        pytest.skip(f"needs systemd-analyze, {systemd} and {NODE}; run: apt-get install systemd nodejs")
    app = lab_environment()["app1"]
    # Not pytest's tmp_path (0700): systemd --test runs as nobody and must read the units.
    root = Path(tempfile.mkdtemp(prefix="backend-credential-"))
    try:
        unit = root / "sentinel-backend.service"
        unit.write_text(unit_file(service_spec(app.settings), True))
        dropin = root / "sentinel-backend.service.d" / role.DROPIN
        dropin.parent.mkdir()
        dropin.write_text(role.render_dropin(app.settings.backend.unit))
        for path in (root, *root.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
        assert verify.returncode == 0 and str(root) not in verify.stderr, verify.stderr
        drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
        dump = subprocess.run([*drop, "env", "-i", f"SYSTEMD_UNIT_PATH={root}:", systemd, "--test", "--system",
                               "--unit=sentinel-backend.service"], capture_output=True, text=True, cwd=root, timeout=120)
        assert dump.returncode == 0, dump.stderr[-3000:]
        assert f"DropIn Path: {dropin}" in dump.stdout
        assert not [line for line in dump.stderr.splitlines() if str(root) in line]
    finally:
        shutil.rmtree(root)
