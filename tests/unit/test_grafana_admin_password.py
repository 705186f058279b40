"""Applying a new Grafana admin password (files/grafana/backup_token.py --apply-admin-password, roles/grafana).

Grafana is AGPL and never runs here. The helper is run against a small stand-in of the two endpoints it calls
(GET /api/user and PUT /api/user/password, Basic auth, 401 on a wrong password, as Grafana's user API
documents them), over real HTTP: what it sends and how it handles the answers. That a real Grafana accepts
the same body is from its HTTP API reference, not from a run.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from roles._model import SettingsError
from roles.grafana.operations import password_applied
from roles.grafana.preflight import check_admin_password_rotation

REPO = Path(__file__).resolve().parents[2]
OLD, NEW = "the-old-admin-pw-1234", "a-brand-new-admin-pw-5678"

pytestmark = [pytest.mark.grafana, pytest.mark.secrets]


def _helper():
    spec = importlib.util.spec_from_file_location("backup_token", REPO / "files" / "grafana" / "backup_token.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeGrafanaUsers(ThreadingHTTPServer):
    """STAND-IN (not Grafana): the admin user's two endpoints, with Basic auth."""

    def __init__(self, password: str):
        self.password, self.requests = password, []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        user, _, password = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":") if header.startswith("Basic ") else ("", "", "")
        return user == "admin" and password == self.server.password

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append((method, self.path, body))
        if not self._authorized():
            return self._answer(401, {"message": "Invalid username or password"})
        if (method, self.path) == ("GET", "/api/user"):
            return self._answer(200, {"id": 1, "login": "admin", "isGrafanaAdmin": True})
        if (method, self.path) == ("PUT", "/api/user/password"):
            if body.get("oldPassword") != self.server.password:
                return self._answer(401, {"message": "Invalid old password"})
            self.server.password = body["newPassword"]
            return self._answer(200, {"message": "User password changed"})
        return self._answer(404, {"message": "Not found"})

    def do_GET(self):
        self._handle("GET")

    def do_PUT(self):
        self._handle("PUT")


@pytest.fixture
def grafana():
    server = FakeGrafanaUsers(OLD)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def _run(tmp_path, grafana, password: str, previous: str | None, capsys) -> tuple[int, str]:
    (tmp_path / "admin_password").write_text(password + "\n")
    argv = ["--apply-admin-password", f"--url=http://127.0.0.1:{grafana.server_address[1]}",
            f"--admin-password-file={tmp_path / 'admin_password'}", f"--stamp-file={tmp_path / 'applied'}"]
    if previous is not None:
        (tmp_path / "previous").write_text(previous + "\n")
        argv.append(f"--previous-password-file={tmp_path / 'previous'}")
    code = _helper().main(argv)
    out = capsys.readouterr()
    text = out.out + out.err
    assert OLD not in text and NEW not in text, "a password was printed"
    return code, text


def test_a_new_password_is_applied_with_the_previous_one_and_the_old_one_stops_working(tmp_path, grafana, capsys):
    code, text = _run(tmp_path, grafana, NEW, OLD, capsys)
    assert code == 0 and "changed Grafana's admin password" in text
    assert grafana.password == NEW
    assert [(m, p) for m, p, _ in grafana.requests] == [
        ("GET", "/api/user"),  # the new one: 401
        ("GET", "/api/user"),  # the previous one: 200
        ("PUT", "/api/user/password"),
        ("GET", "/api/user"),  # the new one works
    ]
    assert grafana.requests[2][2] == {"oldPassword": OLD, "newPassword": NEW}
    stamp = (tmp_path / "applied").read_text()
    assert stat.S_IMODE(os.stat(tmp_path / "applied").st_mode) == 0o600
    assert password_applied(stamp, NEW) and not password_applied(stamp, OLD) and NEW not in stamp


def test_the_password_grafana_already_has_is_only_stamped(tmp_path, grafana, capsys):
    code, text = _run(tmp_path, grafana, OLD, None, capsys)
    assert code == 0 and "already has" in text
    assert [(m, p) for m, p, _ in grafana.requests] == [("GET", "/api/user")]
    assert password_applied((tmp_path / "applied").read_text(), OLD)


def test_a_new_password_without_the_previous_one_is_refused_with_the_fix(tmp_path, grafana, capsys):
    code, text = _run(tmp_path, grafana, NEW, None, capsys)
    assert code == 1 and "SENTINEL_GRAFANA_ADMIN_PREVIOUS_PASSWORD" in text
    assert grafana.password == OLD and not (tmp_path / "applied").exists()


def test_a_wrong_previous_password_changes_nothing(tmp_path, grafana, capsys):
    code, text = _run(tmp_path, grafana, NEW, "not-what-grafana-has-0000", capsys)
    assert code == 1 and "refuses both" in text
    assert grafana.password == OLD and not (tmp_path / "applied").exists()
    assert all(m == "GET" for m, _, _ in grafana.requests)


@pytest.mark.parametrize("stamp", [None, "", "garbage", "scrypt$zz$00", "md5$00$00"])
def test_no_stamp_or_a_broken_one_means_apply(stamp):
    assert not password_applied(stamp, NEW)


def test_a_rotation_whose_previous_password_is_the_new_one_is_refused_before_any_host():
    settings = SimpleNamespace(grafana=SimpleNamespace(admin_password_secret="SENTINEL_GRAFANA_ADMIN_PASSWORD",
                                                       admin_previous_password_secret="SENTINEL_GRAFANA_ADMIN_PREVIOUS_PASSWORD"))
    same = {"SENTINEL_GRAFANA_ADMIN_PASSWORD": NEW, "SENTINEL_GRAFANA_ADMIN_PREVIOUS_PASSWORD": NEW}
    with pytest.raises(SettingsError) as refused:
        check_admin_password_rotation("mon1", settings, same)
    assert "admin_previous_password_secret" in str(refused.value) and NEW not in str(refused.value)
    check_admin_password_rotation("mon1", settings, {**same, "SENTINEL_GRAFANA_ADMIN_PREVIOUS_PASSWORD": OLD})
    check_admin_password_rotation("mon1", settings, {"SENTINEL_GRAFANA_ADMIN_PASSWORD": NEW})
