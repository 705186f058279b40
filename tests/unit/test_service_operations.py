"""The building block's batched operations: one read of the host for every directory and for an account.

Their facts run here with the real `sh` and `stat` (the hosts' commands), so the parsing is
checked against what the tools print, not against a fixture.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from roles._service import operations
from roles._service.facts import PathStates, SystemAccount, path_states
from tests.unit.test_hostile_rendering import FakeHost


def run_fact(fact, **kwargs):
    output = subprocess.run(["sh", "-c", fact.command(**kwargs)], capture_output=True, text=True, check=True).stdout
    return fact.process(output.splitlines())


def test_path_states_reads_several_paths_in_one_command(tmp_path):
    (tmp_path / "d").mkdir(mode=0o750)
    os.chmod(tmp_path / "d", 0o750)
    (tmp_path / "f").write_text("x")
    paths = (str(tmp_path / "d"), str(tmp_path / "missing"), str(tmp_path / "f"), str(tmp_path / "with space"))
    (tmp_path / "with space").mkdir()
    states = path_states(run_fact(PathStates(), paths=paths), paths)
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    assert states[paths[0]] == {"type": "directory", "user": user, "group": states[paths[0]]["group"], "mode": "0750"}
    assert states[paths[1]] is None
    assert states[paths[2]]["type"] == "regular file"
    assert states[paths[3]]["type"] == "directory"


def test_system_account_reads_group_and_user_together():
    state = run_fact(SystemAccount(), user="root", group="root")
    assert state == {"gid": "0", "user": {"uid": "0", "gid": "0", "home": "/root", "shell": state["user"]["shell"]}}
    assert run_fact(SystemAccount(), user="no-such-user-4711", group="no-such-group-4711") == {"gid": None, "user": None}


def _commands(op, monkeypatch, facts, **kwargs):
    monkeypatch.setattr(operations, "host", FakeHost(facts))
    return [str(c) for c in op._inner(**kwargs)]


SPECS = (("/opt/x", "root", "root", "0755"), ("/etc/x", "root", "x", "0750"))


def test_directories_creates_fixes_and_leaves_alone(monkeypatch):
    rows = [["0", "directory|root|root|755"], ["1", "missing"]]
    commands = _commands(operations.directories, monkeypatch, {"PathStates": rows}, specs=SPECS)
    assert commands == ["mkdir -p /etc/x", "chown root:x /etc/x", "chmod 0750 /etc/x"]
    rows = [["0", "directory|root|root|755"], ["1", "directory|root|x|750"]]
    assert _commands(operations.directories, monkeypatch, {"PathStates": rows}, specs=SPECS) == []
    rows = [["0", "directory|root|root|777"], ["1", "directory|x|x|750"]]
    assert _commands(operations.directories, monkeypatch, {"PathStates": rows}, specs=SPECS) == ["chmod 0755 /opt/x", "chown root:x /etc/x"]


def test_directories_never_replaces_a_file(monkeypatch):
    from pyinfra.api import OperationError

    rows = [["0", "regular file|root|root|644"], ["1", "missing"]]
    with pytest.raises(OperationError, match="not a directory"):
        _commands(operations.directories, monkeypatch, {"PathStates": rows}, specs=SPECS)


def test_system_account_creates_then_keeps(monkeypatch):
    missing = {"SystemAccount": {"gid": None, "user": None}}
    commands = _commands(operations.system_account, monkeypatch, missing, user="svc", group="svc", home="/var/lib/svc")
    assert commands == [
        "groupadd --system svc",
        "useradd --system --gid svc --home-dir /var/lib/svc --no-create-home --shell /usr/sbin/nologin svc",
    ]
    present = {"SystemAccount": {"gid": "990", "user": {"uid": "990", "gid": "990", "home": "/var/lib/svc", "shell": "/usr/sbin/nologin"}}}
    assert _commands(operations.system_account, monkeypatch, present, user="svc", group="svc", home="/var/lib/svc") == []
    moved = {"SystemAccount": {"gid": "990", "user": {"uid": "990", "gid": "990", "home": "/old", "shell": "/bin/bash"}}}
    assert _commands(operations.system_account, monkeypatch, moved, user="svc", group="svc", home="/var/lib/svc") == [
        "usermod --home /var/lib/svc svc", "usermod --shell /usr/sbin/nologin svc",
    ]
