"""Hostile values through every template and generated command, preflight bypassed.

Each value (newline, quotes, `$()`, `;`, backslash, `%`, space, unicode...) goes
straight into the settings, secrets or building-block inputs, skipping
preflight on purpose: the output side must hold on its own. For every format
the test proves that the output parses AND carries the value literally, or that
the quoting layer refused it (`QuotingError`), never a third outcome:

- systemd units: `systemd-analyze verify` accepts them without a warning, and
  systemd itself (`systemd --test`, which dumps the parsed units) reads back
  every ExecStart argument, path and description exactly;
- env files: systemd's own env-file parser (the environment.d generator) and
  `parse_env_file` read back exactly the values;
- YAML: `yaml.safe_load` of the output equals the structure, key for key;
- shell: the scripts run for real in a scratch directory with stand-ins for
  curl, tar, systemctl and sentry-cli that record their arguments, and a value
  such as `$(touch PWNED)` leaves no PWNED file behind.

systemd comes from the `systemd` Debian package (.ci/run installs it); the
systemd checks skip with the reason when it is missing.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import textwrap
import unicodedata
from pathlib import Path

import pytest
import yaml
from pyinfra.api import QuoteString, StringCommand

from roles._service import ServiceSpec, quoting, ready_check, unit_file
from roles._service.artifacts import Artifact
from roles._service.facts import MARKER, InstalledArtifactSha256
from roles._service.operations import install_script, validate_script
from roles._service.quoting import QuotingError
from roles._environment import group_data as load_group_data, host_settings as build

VALUES = {
    "newline": "a\nExecStartPre=/bin/touch PWNED",
    "carriage return": "a\rb",
    "tab": "a\tb",
    "line separator": "a\u2028b",
    "nul": "a\x00b",
    "double quote": 'say "hi"',
    "single quote": "it's",
    "command substitution": "$(touch PWNED)",
    "backticks": "`touch PWNED`",
    "variables": "$HOME and ${PATH} $$",
    "semicolon word": ";",
    "semicolon": "a; touch PWNED",
    "escaped semicolon": "\\;",
    "backslash": "back\\slash\\",
    "percent specifiers": "%n %% 100%",
    "space": "two words",
    "leading space": " lead",
    "trailing space": "trail ",
    "unicode": "dönée ✓ 日本",
    "hash": "#not-a-comment",
    "glob and pipe": "*?[a] | (b) {c} <d> &e",
    "dash option": "--version",
    "yaml words": "no",
    "empty": "",
}
IDS = list(VALUES)
SECRET = "a$(touch PWNED);b'\"\\ c %n `id` ${HOME} é"


def has_control(value: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in value)


def evolve(obj, **changes):
    """A copy with `changes`, without validation (pydantic models or dataclasses)."""
    if hasattr(obj, "model_copy"):
        return obj.model_copy(update=changes)
    return dataclasses.replace(obj, **changes)


# The store's credentials as preflight hands them to the role (roles/_secrets.py).
S3_SECRETS = {"SENTINEL_S3_ACCESS_KEY": "lab-key", "SENTINEL_S3_SECRET_KEY": "lab-secret"}


@pytest.fixture(scope="module")
def base_settings():
    data = {**load_group_data("all"), **load_group_data("lab"), "address": "10.0.0.1", "artifact_base_url": "http://10.0.0.9:8080"}
    return build("h1", ["monitoring", "telemetry", "app", "lab"], data)


# --- systemd ------------------------------------------------------------------------------

SYSTEMD = Path("/usr/lib/systemd/systemd")


def _decode_command_line(line: str) -> list[str]:
    """Words of systemd's own quoting of a command line (quote_command_line: POSIX double quotes)."""
    words, i = [], 0
    while i < len(line):
        if line[i] == " ":
            i += 1
            continue
        word = []
        if line[i] == '"':
            i += 1
            while line[i] != '"':
                if line[i] == "\\":
                    assert line[i + 1] in '"\\`$', f"unexpected escape in {line!r}"
                    i += 1
                word.append(line[i])
                i += 1
            i += 1
        else:
            while i < len(line) and line[i] != " ":
                word.append(line[i])
                i += 1
        words.append("".join(word))
    return words


def _exec_argv(words: list[str]) -> list[str]:
    """What the process gets: systemd replaces `$$` by `$` at exec time; any other `$` would be a variable."""
    argv = []
    for word in words:
        assert "$" not in word.replace("$$", ""), f"unescaped $ would expand: {word!r}"
        argv.append(word.replace("$$", "$"))
    return argv


def systemd_read_units(units: dict[str, str], executables: set[str]) -> dict[str, dict]:
    """Verify `units` with systemd-analyze and read them back as systemd parses them.

    Returns, per unit name, the fields of `systemd --test`'s dump. Fails on any
    warning that systemd-analyze prints about the units.
    """
    if not SYSTEMD.exists() or not shutil.which("systemd-analyze"):
        pytest.skip("systemd is not installed (apt-get install systemd; .ci/run does)")
    root = Path(tempfile.mkdtemp(prefix="hostile-units-"))
    try:
        unit_dir = root / "etc/systemd/system"
        unit_dir.mkdir(parents=True)
        shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
        for name, text in units.items():
            (unit_dir / f"{name}.service").write_text(text)
        for executable in executables:
            path = root / executable.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("#!/bin/sh\n")
            path.chmod(0o755)
        wants = " ".join(f"{name}.service" for name in units)
        (unit_dir / "hostile.target").write_text(f"[Unit]\nDescription=all hostile units\nWants={wants}\n")
        for path in [root, *root.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o755 if path.is_dir() else path.stat().st_mode | 0o644)

        verify = subprocess.run(
            ["systemd-analyze", "verify", f"--root={root}", *(f"{name}.service" for name in units)],
            capture_output=True, text=True,
        )  # fmt: skip
        complaints = [line for line in verify.stderr.splitlines() if str(unit_dir) in line or ".service" in line]
        assert verify.returncode == 0 and not complaints, verify.stderr

        # systemd refuses to run its test mode as root: read the units as nobody.
        drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
        dump = subprocess.run(
            [*drop, "env", "-i", f"SYSTEMD_UNIT_PATH={unit_dir}:", str(SYSTEMD), "--test", "--system", "--unit=hostile.target"],
            capture_output=True, text=True, cwd=root,
        )  # fmt: skip
        assert dump.returncode == 0, dump.stderr[-3000:]
        warnings = [line for line in dump.stderr.splitlines() if str(unit_dir) in line]
        assert not warnings, warnings
        return _parse_dump(dump.stdout, set(units))
    finally:
        shutil.rmtree(root)


def _parse_dump(text: str, names: set[str]) -> dict[str, dict]:
    found: dict[str, dict] = {}
    current, section = None, None
    for line in text.splitlines():
        match = re.match(r"^\t-> Unit (.+)\.service:$", line)
        if match:
            current = found.setdefault(match.group(1), {"ReadWritePaths": []}) if match.group(1) in names else None
            continue
        if line.startswith("\t-> Unit "):
            current = None
        if current is None:
            continue
        if line.startswith("\t\t-> "):
            section = line.strip()
        if line.startswith("\t\t\tCommand Line: ") and section == "-> ExecStart:":
            current["ExecStart"] = _exec_argv(_decode_command_line(line.removeprefix("\t\t\tCommand Line: ")))
        elif line.startswith("\t\t") and not line.startswith("\t\t\t") and ": " in line:
            key, value = line[2:].split(": ", 1)
            if key == "ReadWritePaths":
                current[key].append(value)
            else:
                current.setdefault(key, value)
    assert set(found) == names, f"systemd did not load {names - set(found)}"
    return found


def _unit_cases(base_settings):
    """(unit name, unit text or the QuotingError, expectations) for every hostile value and role."""
    from roles.alertmanager import service_spec as alertmanager_spec
    from roles.lab_backend import service_spec as lab_backend_spec
    from roles.node_exporter import service_spec as node_exporter_spec
    from roles.object_store import service_spec as object_store_spec

    cases = []
    for i, (label, value) in enumerate(VALUES.items()):
        name = f"h{i}"
        args = ("{bin}/prog", f"--flag={value}", value)
        argv = [f"/opt/{name}/current/prog", f"--flag={value}", value]
        arg_only = ServiceSpec(name=f"{name}a", description="arguments", exec_start=args, data_dirs=(f"/var/lib/{name}/{value}",))
        cases.append((label, arg_only, {"ExecStart": [a.replace(f"/{name}/", f"/{name}a/") for a in argv],
                                       "ReadWritePaths": [f"/var/lib/{name}/{value}"]}))  # fmt: skip
        whole_line = ServiceSpec(
            name=f"{name}w",
            description=f"hostile {value}.",
            exec_start=("{bin}/prog",),
            env_files=(f"/etc/{name}/{value}.env",),
            working_directory=f"/srv/{value}x",
        )
        cases.append((label, whole_line, {"Description": f"hostile {value}.", "EnvironmentFile": f"/etc/{name}/{value}.env",
                                          "WorkingDirectory": f"/srv/{value}x"}))  # fmt: skip

        # The roles' own specs, with the value in the settings they take paths and names from.
        s = base_settings
        ne = evolve(s, node_exporter=evolve(s.node_exporter, textfile_dir=f"/var/lib/node_exporter/{value}"))
        cases.append((label, node_exporter_spec(ne, "10.0.0.4:9100"), {"argv": [f"--collector.textfile.directory=/var/lib/node_exporter/{value}"]}))
        store = evolve(s.object_store, data_dir=f"/srv/s3/{value}", metadata_dir=f"/srv/meta {value}", region=value)
        cases.append((label, object_store_spec(evolve(s, object_store=store), S3_SECRETS),
                      {"argv": [f"--region={value}", f"--sidecar=/srv/meta {value}", f"/srv/s3/{value}"]}))  # fmt: skip
        am = alertmanager_spec(evolve(s, address=value), "config", {}, [value])
        cases.append((label, am, {"argv": [f"--web.external-url=http://{value}:{s.alerting.listen_port}", f"--cluster.peer={value}"]}))
        lab_backend = lab_backend_spec(evolve(s, backend=evolve(s.backend, env_file=f"/etc/sentinel/{value}")))
        cases.append((label, lab_backend, {"EnvironmentFile": f"/etc/sentinel/{value}"}))
    return cases


@pytest.fixture(scope="module")
def unit_results(base_settings):
    rendered, refused, executables = {}, [], {"/bin/kill"}  # ExecReload's
    with pytest.MonkeyPatch.context() as patch:  # the object store's spec carries its credentials file
        patch.setenv("SENTINEL_S3_ACCESS_KEY", "lab-key")
        patch.setenv("SENTINEL_S3_SECRET_KEY", SECRET)
        cases = _unit_cases(base_settings)
    for index, (label, spec, expected) in enumerate(cases):
        unit_name = f"case{index}-{spec.name}".replace("_", "-")
        try:
            text = unit_file(spec)
        except QuotingError as err:
            refused.append((label, spec, expected, str(err)))
            continue
        rendered[unit_name] = (label, spec, expected, text)
        executables.add(spec.exec_start[0].replace("{bin}", f"/opt/{spec.name}/current"))
    parsed = systemd_read_units({name: case[3] for name, case in rendered.items()}, executables)
    return rendered, refused, parsed


def _refusal_allowed(label: str, expected: dict) -> bool:
    """Control characters are always refused; whole-line settings also refuse edge whitespace and a trailing backslash."""
    value = VALUES[label]
    if has_control(value):
        return True
    whole_line = {"Description", "EnvironmentFile", "WorkingDirectory"} & set(expected)
    if "EnvironmentFile" in expected and any(char in value for char in "*?[\\"):
        return True  # systemd globs EnvironmentFile= paths
    return bool(whole_line) and (value != value.strip() or value.endswith("\\"))


def test_units_carry_every_value_literally_or_refuse_it(unit_results):
    rendered, refused, parsed = unit_results
    for unit_name, (label, spec, expected, text) in rendered.items():
        got = parsed[unit_name]
        assert not has_control(VALUES[label]), f"{label}: a control character reached {unit_name}:\n{text}"
        for key, want in expected.items():
            if key == "argv":
                for arg in want:
                    assert arg in got["ExecStart"], f"{label}: {arg!r} not an argument of {got['ExecStart']}\n{text}"
            elif key == "ReadWritePaths":  # systemd dumps the list joined by spaces
                # ... and simplified: no trailing or doubled slashes
                want = " ".join(re.sub("/+", "/", path).rstrip("/") for path in want)
                assert want in " ".join(got["ReadWritePaths"]), f"{label}: {want!r} vs {got['ReadWritePaths']}"
            else:
                if key in ("EnvironmentFile", "WorkingDirectory"):
                    want = re.sub("/+", "/", want).rstrip("/")
                assert got[key] == want, f"{label}: {key} {got.get(key)!r} != {want!r}\n{text}"
        assert got["User"] == spec.account
    for label, spec, expected, message in refused:
        assert _refusal_allowed(label, expected), f"{label}: refused although systemd can carry it: {message}"
        assert VALUES[label] == "" or VALUES[label] not in message  # the message never echoes the value


def test_every_control_character_is_refused_in_units(unit_results):
    _, refused, _ = unit_results
    refused_labels = {label for label, *_ in refused}
    assert {label for label, value in VALUES.items() if has_control(value)} <= refused_labels


def test_ordinary_arguments_stay_as_they_were(base_settings):
    """No churn for normal values: plain words are not quoted; the regex gets its backslash doubled once."""
    from roles.node_exporter import service_spec as node_exporter_spec, watched_units

    unit = unit_file(node_exporter_spec(base_settings, "10.0.0.4:9100"))
    assert "ExecStart=/opt/node_exporter/current/node_exporter \\\n    --web.listen-address=10.0.0.4:9100 \\\n" in unit
    include = watched_units(base_settings)
    assert include.endswith(r")\.service") and include.count("\\") == include.count(".")
    # systemd reads \\ as one backslash; a lone \. only drew a warning
    assert "--collector.systemd.unit-include=" + include.replace("\\", "\\\\") in unit


@pytest.mark.parametrize(
    "spec, refused",
    [
        (ServiceSpec(name="x", description="x", exec_start=("relative/prog",)), "absolute path"),
        (ServiceSpec(name="x", description="x", exec_start=("-/opt/prog",)), "absolute path"),
        (ServiceSpec(name="x", description="x", exec_start=("/opt/p%nrog",)), "absolute path"),
        (ServiceSpec(name="x", description="x", exec_start=("/opt/prog",), user="root\nExecStartPre=/bin/sh"), "account"),
        (ServiceSpec(name="x", description="x", exec_start=("/opt/prog",), data_dirs=("relative",)), "absolute path"),
        (ServiceSpec(name="x", description="x", exec_start=("/opt/prog",), capabilities=("CAP_X AF_INET",)), "capability"),
    ],
)
def test_units_refuse_what_systemd_would_misread(spec, refused):
    with pytest.raises(QuotingError, match=refused):
        unit_file(spec)


# --- env files ----------------------------------------------------------------------------

ENV_GENERATOR = Path("/usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator")


def systemd_read_env(text: str) -> dict[str, str]:
    """`text` as systemd's env-file parser reads it (the environment.d generator prints what it parsed)."""
    if not ENV_GENERATOR.exists():
        pytest.skip("systemd is not installed (apt-get install systemd; .ci/run does)")
    home = Path(tempfile.mkdtemp(prefix="hostile-env-"))
    try:
        (home / "environment.d").mkdir()
        (home / "environment.d" / "50-hostile.conf").write_text(text)
        for path in [home, *home.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
        out = subprocess.run([*drop, "env", "-i", f"XDG_CONFIG_HOME={home}", str(ENV_GENERATOR)], capture_output=True, text=True)
        assert out.returncode == 0 and str(home) not in out.stderr, out.stderr
        values = {}
        for line in out.stdout.splitlines():
            name, _, quoted = line.partition("=")
            values[name] = _decode_command_line(quoted)[0] if quoted else ""
        return values
    finally:
        shutil.rmtree(home)


# The generator expands $NAME and ${NAME} after parsing (EnvironmentFile= does not),
# so it checks the values without those; parse_env_file checks them all.
def _no_variables(value: str) -> bool:
    return not re.search(r"\$[A-Za-z_{]", value)


def test_env_file_values_round_trip_through_systemd_parsers():
    carried = {f"V{i}": v for i, v in enumerate(VALUES.values()) if not has_control(v)}
    text = quoting.env_file(carried, "test")
    assert quoting.parse_env_file(text) == carried
    # systemd's generator ignores `NAME=` (empty); EnvironmentFile= reads it as "" (systemd.exec(5)).
    checkable = {k: v for k, v in carried.items() if _no_variables(v) and v}
    got = systemd_read_env(quoting.env_file(checkable, "test"))
    assert {k: got.get(k) for k in checkable} == checkable


@pytest.mark.parametrize("label", [label for label in IDS if has_control(VALUES[label])])
def test_env_file_refuses_control_characters_without_echoing_them(label):
    with pytest.raises(QuotingError) as err:
        quoting.env_file({"SECRET": VALUES[label]}, "test")
    assert VALUES[label] not in str(err.value)


def test_env_file_refuses_bad_names():
    with pytest.raises(QuotingError):
        quoting.env_file({"LD_PRELOAD=/x\nA": "1"}, "test")


def test_s3_credentials_env_carries_the_secret_literally(base_settings, monkeypatch):
    from roles.object_store import credentials_env

    text = credentials_env(base_settings, {"SENTINEL_S3_ACCESS_KEY": "lab-key", "SENTINEL_S3_SECRET_KEY": SECRET})
    assert quoting.parse_env_file(text) == {"ROOT_ACCESS_KEY": "lab-key", "ROOT_SECRET_KEY": SECRET}
    assert "LD_PRELOAD" not in text
    # Preflight refuses such a secret (roles/_secrets.py); the building block refuses it again.
    with pytest.raises(QuotingError) as err:
        credentials_env(base_settings, {"SENTINEL_S3_ACCESS_KEY": "lab-key", "SENTINEL_S3_SECRET_KEY": "x\nLD_PRELOAD=/tmp/evil.so"})
    assert "evil" not in str(err.value)


def test_s3_secret_in_env_file_reads_back_through_systemd(base_settings, monkeypatch):
    from roles.object_store import credentials_env

    secret = SECRET.replace("${HOME}", "{HOME}")  # the generator, unlike EnvironmentFile=, expands ${NAME}
    secrets = {"SENTINEL_S3_ACCESS_KEY": "lab-key", "SENTINEL_S3_SECRET_KEY": secret}
    assert systemd_read_env(credentials_env(base_settings, secrets))["ROOT_SECRET_KEY"] == secret


@pytest.mark.parametrize("label", IDS)
def test_backend_env_carries_hostile_values(base_settings, label):
    from roles.backend import env_values, render_env

    value = VALUES[label]
    settings = evolve(base_settings, environment=value)
    try:
        text = render_env(settings, f"http://{value}:4318", value)
    except QuotingError as err:
        assert has_control(value), err
        return
    assert not has_control(value)
    assert quoting.parse_env_file(text) == env_values(settings, f"http://{value}:4318", value)


def test_backend_unit_cannot_inject_env_lines(base_settings):
    from roles.backend import render_env

    settings = evolve(base_settings, backend=evolve(base_settings.backend, unit="x.service\nLD_PRELOAD=/tmp/evil.so"))
    with pytest.raises(QuotingError):
        render_env(settings, "http://t:4318", "")


def test_curl_config_carries_the_secret_literally(tmp_path):
    """curl reads back exactly the user and secret (its --libcurl output shows the parsed option)."""
    from roles.object_store import curl_config

    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    config = tmp_path / "admin.curlrc"
    config.write_text(curl_config("lab-key", SECRET))
    source = tmp_path / "out.c"
    subprocess.run(["curl", "-sK", str(config), "--libcurl", str(source), "file:///dev/null"], capture_output=True, check=True)
    line = next(line for line in source.read_text().splitlines() if "CURLOPT_USERPWD" in line)
    literal = re.search(r'CURLOPT_USERPWD, "(.*)"\);', line).group(1)
    decoded = bytes(literal, "ascii").decode("unicode_escape").encode("latin-1").decode("utf-8")
    assert decoded == f"lab-key:{SECRET}"
    with pytest.raises(QuotingError):
        curl_config("key:with-colon", "s")
    with pytest.raises(QuotingError):
        curl_config("key", "s\nurl = http://elsewhere")


# --- YAML ---------------------------------------------------------------------------------

YAML_WORDS = ["no", "yes", "off", "null", "~", "1e3", "0o17", "- a", "a: b", "{x: 1}", "key: injected\nevil: 1", "*alias", "&anchor", "!!python/object x"]


@pytest.mark.parametrize("value", list(VALUES.values()) + YAML_WORDS, ids=IDS + YAML_WORDS)
def test_prometheus_yaml_carries_values_literally(base_settings, value):
    from roles.prometheus import ScrapeJob, Target, config, render_config

    prom = evolve(base_settings.prometheus, scrape_interval=value, external_labels={value: value, "region": value})
    settings = evolve(base_settings, prometheus=prom, environment=value)
    jobs = [ScrapeJob(value, (Target(value, value), Target("no", "yes:9100")), value)]
    text = render_config(settings, jobs, [value])
    loaded = yaml.safe_load(text)
    assert loaded == config(settings, jobs, [value])
    assert list(loaded) == ["global", "rule_files", "alerting", "scrape_configs"]  # no injected top-level key
    assert loaded["global"]["external_labels"]["environment"] == value
    assert loaded["global"]["external_labels"]["region"] == value
    target = loaded["scrape_configs"][0]["static_configs"][1]
    assert target == {"targets": ["yes:9100"], "labels": {"host": "no", "environment": value}}  # a host named no stays "no"


def test_external_labels_cannot_replace_the_environment_label(base_settings):
    from roles.prometheus import render_config

    prom = evolve(base_settings.prometheus, external_labels={"environment": "prod"})
    loaded = yaml.safe_load(render_config(evolve(base_settings, prometheus=prom), []))
    assert loaded["global"]["external_labels"] == {"environment": base_settings.environment}


@pytest.mark.parametrize("value", list(VALUES.values()) + YAML_WORDS, ids=IDS + YAML_WORDS)
def test_alertmanager_yaml_carries_values_literally(base_settings, value):
    from roles.alertmanager import config, render_config
    from roles.alerting.catalog import load_catalog

    a = base_settings.alerting
    alerting = evolve(
        a,
        slack_critical=evolve(a.slack_critical, channel=value),
        slack_warning=evolve(a.slack_warning, channel=value),
        email=evolve(a.email, to=value, from_address=value, smarthost=value, auth_username=value or "x"),
        pagerduty=evolve(a.pagerduty, enabled=True, url=value or "x"),
        critical=evolve(a.critical, group_wait=value),
    )
    settings = evolve(base_settings, alerting=alerting)
    alerts = load_catalog()
    try:
        text = render_config(settings, alerts)
    except QuotingError:
        pytest.fail("the alertmanager config has no value that YAML cannot carry")
    loaded = yaml.safe_load(text)
    assert loaded == config(settings, alerts)
    assert list(loaded) == ["global", "templates", "route", "inhibit_rules", "receivers"]
    assert loaded["receivers"][0]["slack_configs"][0]["channel"] == value
    assert loaded["global"]["smtp_smarthost"] == value
    critical = next(r for r in loaded["route"]["routes"] if r["receiver"] == "slack-critical")
    assert critical["group_wait"] == value


# --- shell --------------------------------------------------------------------------------

# A stand-in records its name and arguments: each separated by RS (\036), each call ended by GS (\035).
RECORDER = """#!/bin/sh
{ printf '%s\\036' "$(basename "$0")" "$@"; printf '\\035'; } >> "$RECORD"
"""


def fake_bin(directory: Path, name: str, body: str = "") -> Path:
    """A stand-in for a command that records its arguments, then runs the sh `body`."""
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(RECORDER + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def run_sh(script: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    syntax = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    path = f"{cwd / 'bin'}:{os.environ['PATH']}"
    result = subprocess.run(["sh", "-c", script], cwd=cwd, capture_output=True, env={**os.environ, "PATH": path, "RECORD": str(cwd / "calls"), **(env or {})})
    # decoded by hand: text=True would turn a carriage return in the output into a newline
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


def calls(cwd: Path) -> list[list[str]]:
    record = cwd / "calls"
    if not record.exists():
        return []
    return [call.split("\036")[:-1] if "\036" in call else [call] for call in record.read_bytes().decode().split("\035")[:-1]]


# File names cannot hold "/" or NUL; the rest of each value stays.
SHELL_VALUES = {label: value.replace("/", "|") for label, value in VALUES.items() if "\x00" not in value}


@pytest.mark.parametrize("label", list(SHELL_VALUES))
def test_install_script_installs_into_exactly_the_named_paths(tmp_path, label):
    value = SHELL_VALUES[label]
    sha = "ab" * 32
    work = tmp_path / "work"
    work.mkdir()
    artifact = Artifact(
        name="thing",
        version="1.0.0",
        url=f"https://mirror.example/dl/{value}x.tar.gz",
        sha256=sha,
        archive_dir=f"dir {value}",
        binaries=(f"bin{value}", "plain"),
    )
    install_dir = str(tmp_path / f"opt {value}" / "1.0.0")
    try:
        lines = install_script(artifact, install_dir)
    except QuotingError as err:
        assert has_control(value), err
        return
    assert not has_control(value)
    Path(install_dir).parent.mkdir()
    fake_bin(work / "bin", "curl", 'while [ $# -gt 0 ]; do [ "$1" != -o ] || echo archive > "$2"; shift; done')
    fake_bin(work / "bin", "sha256sum", 'echo "$SHA  $1"')
    fake_bin(
        work / "bin",
        "tar",
        """
        set -f
        while [ $# -gt 0 ]; do [ "$1" != -C ] || target="$2/$ARCHIVE_DIR"; shift; done
        mkdir -p "$target"
        IFS=/
        for binary in $BINARIES; do printf %s "$binary" > "$target/$binary"; done
        """,
    )
    env = {"ARCHIVE_DIR": artifact.archive_dir, "BINARIES": "/".join(artifact.binaries), "SHA": sha}
    result = run_sh("set -eu\n" + "\n".join(lines), work, env)
    assert result.returncode == 0, result.stderr
    assert [c for c in calls(work) if c[0] == "curl"][0][-1] == artifact.url
    for binary in artifact.binaries:
        assert (Path(install_dir) / binary).read_text() == binary
    assert (Path(install_dir) / MARKER).read_text().strip() == sha
    assert sorted(p.name for p in Path(install_dir).parent.iterdir()) == ["1.0.0"]
    assert not list(tmp_path.rglob("PWNED"))


def test_install_script_refuses_binaries_outside_the_archive():
    for binary in ("../../etc/passwd", "a/b", "..", ""):
        artifact = Artifact("thing", "1.0.0", "https://m/x.tar.gz", "ab" * 32, "", (binary,))
        with pytest.raises(QuotingError):
            install_script(artifact, "/opt/thing/1.0.0")
    with pytest.raises(QuotingError):
        install_script(Artifact("thing", "1.0.0", "https://m/x.tar.gz", "$(id)", "", ("x",)), "/opt/thing/1.0.0")


@pytest.mark.parametrize("label", list(SHELL_VALUES))
@pytest.mark.parametrize("accepted", [True, False], ids=["accepted", "refused"])
def test_validate_script_checks_exactly_the_staged_file(tmp_path, label, accepted):
    value = SHELL_VALUES[label]
    dest = tmp_path / f"conf {value}.yml"
    staged = Path(f"{dest}.staged")
    staged.write_text("new")
    checker = fake_bin(tmp_path / "bin", "checker", f"exit {0 if accepted else 1}")
    result = run_sh("set -eu\n" + "\n".join(validate_script(f"{checker} --config={{path}} {{path}}", str(staged), str(dest))), tmp_path)
    assert calls(tmp_path) == [["checker", f"--config={staged}", str(staged)]]
    assert (result.returncode == 0) == accepted, result.stderr
    assert staged.exists() == accepted
    if not accepted:
        assert f"refused {dest}: the checker failed" in result.stderr
    assert not list(tmp_path.rglob("PWNED"))


@pytest.mark.parametrize("label", list(SHELL_VALUES))
def test_ready_check_asks_exactly_the_url(tmp_path, label):
    url = f"http://127.0.0.1:9/{SHELL_VALUES[label]}"
    fake_bin(tmp_path / "bin", "curl")
    try:
        script = ready_check(url)
    except QuotingError as err:
        assert has_control(url), err
        return
    assert run_sh(script, tmp_path).returncode == 0
    assert calls(tmp_path) == [["curl", "-fsS", "-o", "/dev/null", url]]
    assert not list(tmp_path.rglob("PWNED"))


@pytest.mark.parametrize("label", list(SHELL_VALUES))
def test_backend_restart_names_exactly_the_unit(tmp_path, label):
    from roles.backend import restart_command

    unit = f"{SHELL_VALUES[label]}.service"
    fake_bin(tmp_path / "bin", "systemctl")
    try:
        script = restart_command(unit)
    except QuotingError as err:
        assert has_control(unit), err
        return
    assert run_sh(script, tmp_path).returncode == 0
    assert calls(tmp_path) == [["systemctl", "cat", "--", unit], ["systemctl", "reset-failed", "--", unit], ["systemctl", "try-restart", "--", unit]]
    assert not list(tmp_path.rglob("PWNED"))


@pytest.mark.parametrize("label", list(SHELL_VALUES))
def test_installed_artifact_fact_reads_exactly_the_marker(tmp_path, label):
    install_dir = tmp_path / f"opt {SHELL_VALUES[label]}"
    install_dir.mkdir()
    (install_dir / MARKER).write_text("cafe\n")
    result = run_sh(InstalledArtifactSha256().command(str(install_dir)), tmp_path)
    assert InstalledArtifactSha256().process(result.stdout.splitlines()) == "cafe"
    assert not list(tmp_path.rglob("PWNED"))


@pytest.mark.parametrize("label", list(SHELL_VALUES))
def test_s3_bucket_request_is_an_argument_list(tmp_path, label):
    from roles.object_store import CURL_CONFIG, s3_request

    value = SHELL_VALUES[label]
    url = f"http://127.0.0.1:7070/{value}"
    try:
        argv = s3_request("PUT", url, value)
    except QuotingError:
        assert not re.fullmatch(r"[a-z0-9-]+", value)  # a region is a plain name or nothing
        argv = s3_request("PUT", url, "us-east-1")
    assert argv[argv.index("-K") + 1] == CURL_CONFIG and argv[-1] == url
    command = StringCommand(*[QuoteString(arg) for arg in argv]).get_raw_value()
    fake_bin(tmp_path / "bin", "curl")
    assert run_sh(command, tmp_path).returncode == 0
    assert calls(tmp_path) == [argv]


@pytest.mark.parametrize("label", list(SHELL_VALUES))
def test_sentry_upload_script_passes_values_and_token_literally(tmp_path, base_settings, label):
    """The Sentry auth file is sourced by sh (its one reader), so it is shell-quoted: the token arrives intact."""
    from roles.backend.sentry_release import auth_env, marker_path, upload_script

    value = SHELL_VALUES[label]
    release = f"rel{value}".replace("/", "")
    cli = fake_bin(tmp_path / f"cli {value}".replace("/", ""), "sentry-cli", 'printf "%s\\035" "$SENTRY_AUTH_TOKEN" >> "$RECORD"')
    auth = tmp_path / "auth.env"
    auth.write_text(auth_env(SECRET, base_settings.backend))
    maps, markers = tmp_path / f"maps {value}", tmp_path / f"markers {value}"
    result = run_sh(upload_script(release, str(maps), str(cli), str(auth), str(markers)), tmp_path)
    assert result.returncode == 0, result.stderr
    recorded = calls(tmp_path)
    assert recorded[0::2] == [
        ["sentry-cli", "releases", "new", release],
        ["sentry-cli", "sourcemaps", "upload", "--release", release, str(maps)],
        ["sentry-cli", "releases", "finalize", release],
    ]
    assert recorded[1::2] == [[SECRET]] * 3
    assert Path(marker_path(release, str(markers))).exists()
    assert not auth.exists()
    assert not list(tmp_path.rglob("PWNED"))


# --- secrets never in commands ------------------------------------------------------------


class FakeHost:
    """Just enough of pyinfra's host for an operation's command generator."""

    def __init__(self, facts=None):
        self.facts = facts or {}

    def get_fact(self, fact, **kwargs):
        return self.facts.get(fact.__name__)

    def get_temp_filename(self, hash_key=None):
        return "/tmp/pyinfra-staged"


def command_texts(commands) -> list[str]:
    """Everything pyinfra may print about `commands`: raw and masked command lines, file-upload descriptions."""
    texts = []
    for command in commands:
        texts.append(repr(command))
        texts.append(str(command))
        if hasattr(command, "get_raw_value"):
            texts.append(command.get_raw_value())
            texts.append(command.get_masked_value())
    return texts


def test_no_secret_value_in_the_object_store_commands(base_settings, monkeypatch):
    import roles.object_store as object_store
    from roles._service import operations

    monkeypatch.setattr(operations, "host", FakeHost())
    monkeypatch.setattr(object_store, "host", FakeHost())
    spec = object_store.service_spec(base_settings, {"SENTINEL_S3_ACCESS_KEY": "lab-access-key-4711", "SENTINEL_S3_SECRET_KEY": SECRET})
    texts = [unit_file(spec)]
    for config in spec.configs:
        texts += command_texts(operations.validated_file._inner(config.dest, config.content, config.validate, "root", "versitygw", config.mode))
    curlrc = object_store.curl_config("lab-access-key-4711", SECRET)
    texts += command_texts(operations.validated_file._inner(object_store.CURL_CONFIG, curlrc, None, "root", "root", "0600"))
    store = base_settings.object_store
    texts += command_texts(object_store.bucket._inner("loki", store.data_dir, store.listen_port, store.region))
    assert len(texts) > 10
    for text in texts:
        for secret in (SECRET, "lab-access-key-4711", "touch PWNED"):
            assert secret not in text


def test_no_secret_value_in_the_backend_commands(base_settings, monkeypatch):
    from roles._service import operations
    from roles.backend import render_env, restart_command
    from roles.backend import sentry_release

    dsn = "https://k3y$(touch PWNED)@sentry.example/1"
    monkeypatch.setattr(operations, "host", FakeHost())
    monkeypatch.setattr(sentry_release, "host", FakeHost())
    env = render_env(base_settings, "http://t:4318", dsn)
    assert quoting.parse_env_file(env)["SENTRY_DSN"] == dsn
    texts = command_texts(operations.validated_file._inner(base_settings.backend.env_file, env, None, "root", "sentinel", "0640"))
    texts.append(restart_command(base_settings.backend.unit))
    texts += command_texts(sentry_release.upload_release._inner(
        "sentinel-backend@1.0.0", "/srv/maps", "/usr/bin/sentry-cli", base_settings.backend, {"SENTRY_AUTH_TOKEN": SECRET}
    ))
    assert len(texts) > 8
    for text in texts:
        for secret in (SECRET, dsn, "k3y"):
            assert secret not in text


def test_parse_env_file_reads_like_systemd():
    """The reference parser agrees with systemd's on the file forms systemd documents."""
    text = textwrap.dedent(
        """\
        # a comment
        ; another comment
        PLAIN=value
        SPACED =   inner  space   
        ESCAPED=a\\ b\\\\c\\"d
        SINGLE='it is "verbatim" \\ here'
        DOUBLE="quote \\" backslash \\\\ dollar \\$ tick \\` other \\q"
        MULTI="line one\\
        continued"
        LONG=joined \\
        here
        no equals sign on this line
        UNICODE="dönée ✓"
        """
    )
    ours = quoting.parse_env_file(text)
    assert ours["DOUBLE"] == 'quote " backslash \\ dollar $ tick ` other \\q'
    assert ours["SINGLE"] == 'it is "verbatim" \\ here'
    got = systemd_read_env(text)  # also holds the machine's own environment.d settings
    assert len(ours) == 8
    assert {name: got.get(name) for name in ours} == ours
