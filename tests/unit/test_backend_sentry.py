"""Sentry for the backend: env rendering, DSN validation in the preflight, settings, the release step.

Nothing here contacts a host or a Sentry server.
"""

from __future__ import annotations

import http.client
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from roles._model import SettingsError
from roles._environment import group_data as load_group_data, host_settings as build
from roles.backend import render_env
from roles.backend.sentry import mask_dsn, release_name, validate_dsn
from roles.backend.sentry_release import (
    Decision,
    HostState,
    SentryReleaseState,
    auth_env,
    decide,
    marker_path,
    skip_before_host,
    upload_script,
)
from roles.preflight import check_sentry
from tests.mirror_binaries import MISSING_TOOL

pytestmark = pytest.mark.sentry

REPO = Path(__file__).resolve().parents[2]
KEY = "0123456789abcdef0123456789abcdef"
DSN = f"https://{KEY}@o1.ingest.sentry.io/4504"
TOKEN = "sntrys_not-a-real-token_7f3a"
UPLOADING = {"sourcemaps_dir": "/opt/sentinel-backend/dist", "sentry_org": "sentinel", "sentry_project": "backend"}


def app_settings(backend=None, env="prod"):
    data = {"artifact_base_url": "https://github.com", **load_group_data("all"), **load_group_data(env)}
    if backend is not None:
        data["backend"] = {**data.get("backend", {}), **backend}
    return build("app1", ["app", env], data)


def env_values(content: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in content.splitlines() if line and not line.startswith("#"))


@pytest.fixture
def secrets(monkeypatch, tmp_path):
    """Secrets as the toolkit reads them, from an empty secrets directory and a clean environment."""
    for name in ("SENTRY_DSN", "SENTRY_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SENTINEL_SECRETS_DIR", str(tmp_path))
    return lambda name, value: (tmp_path / name).write_text(value + "\n")


# -- the env file ----------------------------------------------------------------


@pytest.mark.parametrize("env, profiles", [("prod", 0.05), ("staging", 0.0), ("dev", 0.0), ("lab", 0.0)])
def test_env_file_carries_sentry_settings_per_environment(env, profiles):
    settings = app_settings(env=env)
    values = env_values(render_env(settings, "http://tel1:4318", DSN))
    assert values["SENTRY_DSN"] == DSN
    assert values["SENTRY_ENVIRONMENT"] == env
    assert values["SENTRY_RELEASE"] == f"sentinel-backend@{settings.backend.version}"
    # No Sentry sampling: its spans would give events another trace id than OpenTelemetry's.
    assert "SENTRY_TRACES_SAMPLE_RATE" not in values
    assert float(values["SENTRY_PROFILES_SAMPLE_RATE"]) == profiles


def test_env_file_without_dsn_turns_sentry_off():
    values = env_values(render_env(app_settings(), "http://tel1:4318", ""))
    assert values["SENTRY_DSN"] == ""  # the SDKs stay disabled on an empty DSN
    assert values["SENTRY_RELEASE"] == release_name("sentinel-backend", "0.0.0")


# -- one DSN validator -----------------------------------------------------------


def test_the_smoke_check_uses_the_toolkit_validator(monkeypatch):
    spec = importlib.util.spec_from_file_location("sentry_check_for_identity", REPO / "files" / "backend" / "sentry_check.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    assert module.validate_dsn is validate_dsn and module.mask_dsn is mask_dsn


def test_a_dsn_without_scheme_is_refused_without_quoting_the_key():
    with pytest.raises(ValueError) as err:
        validate_dsn(f"{KEY}:legacysecret@sentry.example.org/1")
    assert "http:// or https://" in str(err.value)
    assert KEY not in str(err.value) and "legacysecret" not in str(err.value)


def test_the_validator_needs_no_sentry_sdk():
    """The preflight runs wherever pyinfra runs; sentry-sdk is only a lab/test extra."""
    code = "import sys; sys.modules['sentry_sdk'] = None; import roles.preflight; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr


# -- preflight --------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["https://o1.ingest.sentry.io/4504", f"https://{KEY}@o1.ingest.sentry.io/project", "sentry.io"])
def test_preflight_refuses_an_invalid_dsn_naming_the_secret_and_the_fix(secrets, bad):
    secrets("SENTRY_DSN", bad)
    with pytest.raises(SettingsError) as err:
        check_sentry("app1", app_settings())
    assert err.value.key == "host app1.backend.sentry_dsn_secret"
    assert "SENTRY_DSN is not a valid Sentry DSN" in err.value.problem
    assert "SENTINEL_SECRETS_DIR/SENTRY_DSN" in err.value.fix and "unset it" in err.value.fix
    assert KEY not in str(err.value)


def test_preflight_reads_the_secret_named_in_the_settings(secrets, monkeypatch):
    monkeypatch.setenv("SENTINEL_SENTRY_DSN_BACKEND", "not-a-dsn")
    with pytest.raises(SettingsError, match="SENTINEL_SENTRY_DSN_BACKEND is not a valid Sentry DSN"):
        check_sentry("app1", app_settings({"sentry_dsn_secret": "SENTINEL_SENTRY_DSN_BACKEND"}))


def test_preflight_accepts_a_valid_or_absent_dsn(secrets):
    check_sentry("app1", app_settings())  # no DSN: Sentry off, said by the deploy
    secrets("SENTRY_DSN", DSN)
    check_sentry("app1", app_settings())


def test_preflight_wants_the_auth_token_when_source_maps_are_uploaded(secrets):
    secrets("SENTRY_DSN", DSN)
    with pytest.raises(SettingsError) as err:
        check_sentry("app1", app_settings(UPLOADING))
    assert err.value.key == "host app1.backend.sentry_auth_token_secret"
    assert "SENTRY_AUTH_TOKEN" in err.value.fix
    secrets("SENTRY_AUTH_TOKEN", TOKEN)
    check_sentry("app1", app_settings(UPLOADING))


def test_the_inventory_check_validates_the_dsn_of_app_hosts(secrets, monkeypatch, tmp_path):
    from roles.preflight import check_environment
    from tests.environments import GOOD_SECRETS, environment

    for name, value in GOOD_SECRETS.items():
        monkeypatch.delenv(name, raising=False)
        secrets(name, value)
    secrets("SENTRY_DSN", "https://nokey.example/1")
    with pytest.raises(SettingsError, match="host app1.prod.backend.sentry_dsn_secret"):
        check_environment(environment(tmp_path / "", "prod"))


# -- settings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "backend, key, fix_word",
    [
        ({"version": "1.4/2"}, "version", "1.4.2"),
        ({"version": "1.4.2 rc"}, "version", "1.4.2"),
        ({"service_name": "sentinel,backend"}, "service_name", "letters"),
        ({"sentry_traces_sample_rate": 0.5}, "sentry_traces_sample_rate", "trace_sample_ratio"),
        ({"sentry_profiles_sample_rate": 2}, "sentry_profiles_sample_rate", "fraction"),
        ({"sentry_url": "sentry.example.org"}, "sentry_url", "URL"),
        ({"sentry_org": "Sentinel Org"}, "sentry_org", "slug"),
        ({"sourcemaps_dir": "dist"}, "sourcemaps_dir", "/opt"),
        ({"sourcemaps_dir": "/opt/sentinel-backend/dist"}, "sentry_org", "sourcemaps_dir"),
        ({"sourcemaps_dir": "/opt/sentinel-backend/dist", "sentry_org": "sentinel"}, "sentry_project", "sourcemaps_dir"),
    ],
)
def test_bad_sentry_settings_are_refused(backend, key, fix_word):
    with pytest.raises(SettingsError) as err:
        app_settings(backend)
    assert err.value.key == f"host app1.backend.{key}"
    assert fix_word in err.value.fix


def test_release_settings_defaults():
    backend = app_settings().backend
    assert (backend.sourcemaps_dir, backend.sentry_org, backend.sentry_project) == (None, None, None)
    assert backend.sentry_auth_token_secret == "SENTRY_AUTH_TOKEN"
    assert backend.sentry_url == "https://sentry.io"


# -- the release step: decisions ---------------------------------------------------

UPLOADABLE = HostState(map_files=3, sentry_cli="/usr/local/bin/sentry-cli", uploaded=False)


def test_no_dsn_means_sentry_off_and_the_host_is_not_asked():
    decision = skip_before_host(app_settings(UPLOADING).backend, dsn_set=False)
    assert decision == Decision(False, "SENTRY_DSN unset: Sentry off, no release to create")


def test_no_sourcemaps_dir_is_a_quiet_skip():
    decision = skip_before_host(app_settings().backend, dsn_set=True)
    assert not decision.upload and not decision.warn and "sourcemaps_dir unset" in decision.message


def test_the_host_is_asked_when_maps_may_be_there():
    assert skip_before_host(app_settings(UPLOADING).backend, dsn_set=True) is None


@pytest.mark.parametrize(
    "state, token_set, upload, warn, words",
    [
        (HostState(0, "/usr/bin/sentry-cli", False), True, False, False, "no source maps in /opt/sentinel-backend/dist: skipped"),
        (HostState(3, "/usr/bin/sentry-cli", True), True, False, False, "already uploaded"),
        (HostState(3, None, False), True, False, True, "sentry-cli is not installed"),
        (UPLOADABLE, False, False, True, "SENTRY_AUTH_TOKEN unset"),
        (UPLOADABLE, True, True, False, "uploading 3 source maps"),
    ],
)
def test_release_decisions(state, token_set, upload, warn, words):
    decision = decide(app_settings(UPLOADING).backend, state, token_set)
    assert (decision.upload, decision.warn) == (upload, warn)
    assert words in decision.message


def test_a_new_version_is_a_new_release_with_its_own_marker():
    first = release_name("sentinel-backend", "1.4.2")
    second = release_name("sentinel-backend", "1.4.3")
    assert marker_path(first) != marker_path(second)
    assert marker_path(first) == "/var/lib/sentinel-observability/sentry-releases/sentinel-backend@1.4.2.uploaded"


def test_host_state_fact_parses_its_output():
    fact = SentryReleaseState()
    assert fact.process(["3|/usr/local/bin/sentry-cli|0"]) == UPLOADABLE
    assert fact.process(["0||1"]) == HostState(0, None, True)
    assert "'/opt/my maps'" in fact.command("/opt/my maps", "/m")


def test_host_state_fact_command_on_a_real_directory(tmp_path):
    (tmp_path / "dist" / "lib").mkdir(parents=True)
    for name in ("server.js.map", "lib/db.js.map", "server.js"):
        (tmp_path / "dist" / name).write_text("{}")
    marker = tmp_path / "marker"
    command = SentryReleaseState().command(str(tmp_path / "dist"), str(marker))
    output = subprocess.run(["sh", "-c", command], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}).stdout
    assert SentryReleaseState().process([output]) == HostState(2, None, False)
    marker.write_text("")
    missing = SentryReleaseState().command(str(tmp_path / "nowhere"), str(marker))
    output = subprocess.run(["sh", "-c", missing], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}).stdout
    assert SentryReleaseState().process([output]) == HostState(0, None, True)


# -- the release step: the script on the host -----------------------------------------

FAKE_CLI = """#!/bin/sh
# Records how it was called: argv, and whether the environment carried the settings.
printf 'argv:%s\\n' "$*" >> "$CALLS"
printf 'env:%s|%s|%s|%s\\n' "$SENTRY_AUTH_TOKEN" "$SENTRY_ORG" "$SENTRY_PROJECT" "$SENTRY_URL" >> "$CALLS"
[ "$1" != "$FAIL_ON" ]
"""


@pytest.fixture
def host_dir(tmp_path):
    """A stand-in for the host's file system: auth file, marker dir and a recording sentry-cli."""
    cli = tmp_path / "sentry-cli"
    cli.write_text(FAKE_CLI)
    cli.chmod(0o755)
    auth = tmp_path / "auth.env"
    auth.write_text(auth_env(TOKEN + " 'quoted' $x", app_settings(UPLOADING).backend))
    auth.chmod(0o600)
    return tmp_path


def run_upload(host_dir, fail_on=""):
    script = upload_script("sentinel-backend@1.4.2", "/opt/sentinel-backend/dist", str(host_dir / "sentry-cli"),
                           auth_file=str(host_dir / "auth.env"), marker_dir=str(host_dir / "markers"))
    env = {"PATH": "/usr/bin:/bin", "CALLS": str(host_dir / "calls"), "FAIL_ON": fail_on}
    return script, subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, timeout=30)


def test_upload_script_runs_the_three_steps_with_the_token_in_the_environment_only(host_dir):
    script, result = run_upload(host_dir)
    assert result.returncode == 0, result.stderr
    calls = (host_dir / "calls").read_text().splitlines()
    assert [c for c in calls if c.startswith("argv:")] == [
        "argv:releases new sentinel-backend@1.4.2",
        "argv:sourcemaps upload --release sentinel-backend@1.4.2 /opt/sentinel-backend/dist",
        "argv:releases finalize sentinel-backend@1.4.2",
    ]
    assert set(c for c in calls if c.startswith("env:")) == {f"env:{TOKEN} 'quoted' $x|sentinel|backend|https://sentry.io"}
    assert TOKEN not in script + result.stdout + result.stderr
    assert not (host_dir / "auth.env").exists(), "the token file must be deleted"
    assert (host_dir / "markers" / "sentinel-backend@1.4.2.uploaded").exists()


def test_a_failed_upload_writes_no_marker_and_still_deletes_the_token(host_dir):
    _, result = run_upload(host_dir, fail_on="sourcemaps")
    assert result.returncode != 0
    assert not (host_dir / "auth.env").exists()
    assert not (host_dir / "markers").exists()
    assert "releases finalize" not in (host_dir / "calls").read_text()


def test_auth_env_quotes_every_value():
    content = auth_env("a'b c", app_settings({**UPLOADING, "sentry_url": "https://sentry.example.org"}).backend)
    result = subprocess.run(["sh", "-c", f"set -a; {content}\nprintf %s \"$SENTRY_AUTH_TOKEN|$SENTRY_URL\""],
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert result.stdout == "a'b c|https://sentry.example.org"


# -- the lab's receiver daemon ---------------------------------------------------------


def test_lab_sentry_receiver_matches_the_lab_dsn_and_keeps_the_key_out_of_argv():
    from lab import daemons, secrets as lab_secrets

    [receiver] = [d for d in daemons.DAEMONS if d.name == "sentry-receiver"]
    assert (receiver.address, receiver.port) == ("10.213.0.1", lab_secrets.SENTRY_STANDIN_PORT)
    assert receiver.argv[receiver.argv.index("--key-file") + 1] == str(lab_secrets.SECRETS_DIR / "SENTRY_STANDIN_KEY")
    assert "--key" not in receiver.argv


def _post_envelope(port: int, key: str) -> int:
    body = b'{}\n{"type":"event"}\n{"message":"key file test"}\n'
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", "/api/1/envelope/", body, {"X-Sentry-Auth": f"Sentry sentry_key={key}, sentry_version=7"})
    return conn.getresponse().status


def test_receiver_reads_its_key_from_a_file(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab.receivers.sentry", "--port", "0", "--key-file", str(key_file), "--store", str(tmp_path / "e.jsonl")],
        cwd=REPO, stderr=subprocess.PIPE, text=True,
    )
    try:
        banner = proc.stderr.readline()
        port = int(banner.split("http://127.0.0.1:")[1].split()[0])
        assert _post_envelope(port, KEY) == 200
        assert _post_envelope(port, "0" * 32) == 401
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    assert KEY not in " ".join(proc.args)
    missing = subprocess.run([sys.executable, "-m", "lab.receivers.sentry", "--key-file", str(tmp_path / "nope"), "--store", "x"],
                             cwd=REPO, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=30)
    assert missing.returncode == 2 and "cannot read --key-file" in missing.stderr


# -- the smoke check's event ----------------------------------------------------------


def test_the_smoke_check_event_belongs_to_no_release(tmp_path, monkeypatch):
    """Otherwise the SDK guesses one (SENTRY_RELEASE, the git commit) and Sentry lists it as a release."""
    from lab.receivers.sentry import make_server, start_in_thread

    spec = importlib.util.spec_from_file_location("sentry_check_release", REPO / "files" / "backend" / "sentry_check.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    monkeypatch.setenv("SENTRY_RELEASE", "sentinel-backend@9.9.9")
    server = make_server("127.0.0.1", 0, KEY, str(tmp_path / "events.jsonl"))
    start_in_thread(server)
    try:
        result = module.check_dsn(f"http://{KEY}@127.0.0.1:{server.server_address[1]}/1", timeout=5)
        [record] = server.store.read_all()
    finally:
        server.shutdown()
        server.server_close()
    assert result.ok and record["event_id"] == result.event_id
    assert "release" not in record["event"]


def sentry_cli_binary() -> str | None:
    """sentry-cli from this virtualenv (the test extras install it) or from PATH."""
    return shutil.which("sentry-cli", path=str(Path(sys.executable).parent)) or shutil.which("sentry-cli")


@pytest.mark.skipif(sentry_cli_binary() is None, reason=f"{MISSING_TOOL} sentry-cli; run: pip install -e '.[test]'")
def test_real_sentry_cli_takes_the_token_org_and_url_from_the_sourced_file(tmp_path):
    """The upload script with the real sentry-cli, against a loopback server that records the
    first API call and refuses it: the token travels in the Authorization header only."""
    import http.server
    import threading

    seen = []

    class Refuse(http.server.BaseHTTPRequestHandler):
        def _refuse(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append((self.command, self.path, self.headers.get("Authorization")))
            body = b'{"detail": "Invalid token"}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = _refuse

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cli = sentry_cli_binary()
    # A plain http Sentry is the lab's only (preflight refuses it elsewhere: the token would travel in clear).
    backend = app_settings({**UPLOADING, "sentry_url": f"http://127.0.0.1:{server.server_address[1]}"}, env="lab").backend
    auth = tmp_path / "auth.env"
    auth.write_text(auth_env(TOKEN, backend))
    script = upload_script("sentinel-backend@1.4.2", str(tmp_path), cli, auth_file=str(auth), marker_dir=str(tmp_path / "markers"))
    try:
        result = subprocess.run(["sh", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                                env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode != 0
    assert seen, result.stderr
    method, path, authorization = seen[0]
    assert (method, path) == ("POST", "/api/0/organizations/sentinel/releases/")  # `releases new`, org from the file
    assert authorization == f"Bearer {TOKEN}"
    assert TOKEN not in result.stdout + result.stderr
    assert not auth.exists() and not (tmp_path / "markers").exists()
