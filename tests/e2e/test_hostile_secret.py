"""A secret full of shell metacharacters reaches the S3 store intact and runs nothing.

The lab converges the telemetry host with an S3 secret key holding `$()`, `;`,
quotes, a backslash, a space, `%` and `$VAR`. The store must then accept a
request signed (on the controller, no shell anywhere) with exactly that secret,
sent from the host to the store's loopback listener,
and refuse one signed with the lab's usual secret; the role's own curl config
must work too; and the `$(touch /tmp/PWNED)` inside must never have run on the
host. Afterwards the lab's secret is restored by a normal converge.

Traffic goes only to lab hosts (the telemetry host's S3 port, on its loopback).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lab import secrets as lab_secrets
from roles._service.quoting import parse_env_file
from roles.object_store import CREDENTIALS, CURL_CONFIG, s3_request
from tests import lab_session
from tests.s3_sigv4 import sign
from tests.stack import hosts_in

pytestmark = [pytest.mark.lab, pytest.mark.secrets]

HOSTILE_SECRET = "a$(touch /tmp/PWNED);b'\"\\ c %n ${HOME} `id` é"
CANARY = "/tmp/PWNED"


@pytest.fixture(scope="module")
def telemetry(first_converge):
    assert first_converge.returncode == 0, first_converge.output[-3000:]
    return hosts_in("telemetry")[0]


@dataclass
class Answer:
    status_code: int
    text: str


def _list_buckets(tel, access_key: str, secret_key: str) -> Answer:
    """ListBuckets signed here with `secret_key`, sent from the host itself: the store listens on
    the loopback only (the topology: only the stores on its own host use it)."""
    store = tel.settings.object_store
    url = tel.local("object_store.s3", "/")
    headers = sign("GET", url, access_key, secret_key, store.region)
    args = ["curl", "-sS", "-o", "/dev/stdout", "-w", "\n%{http_code}"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = tel.testinfra.check_output(" ".join(["%s"] * (len(args) + 1)), *args, url)
    body, _, status = out.rpartition("\n")
    return Answer(int(status), body)


def _converge_telemetry(tel, *options: str, **secrets: str) -> lab_session.Converge:
    return lab_session.converge(*options, "--limit", tel.name, env=secrets)


def _service_environment(tel) -> dict[str, str]:
    """The environment versitygw's main process runs with, from /proc on the host."""
    pid = tel.testinfra.check_output("systemctl show -p MainPID --value versitygw")
    assert pid.isdigit() and pid != "0", f"versitygw is not running (MainPID={pid!r})"
    raw = tel.testinfra.check_output("tr '\\0' '\\n' < /proc/%s/environ", pid)
    return dict(line.split("=", 1) for line in raw.splitlines() if "=" in line)


def test_a_secret_with_shell_metacharacters_reaches_the_store_intact(telemetry):
    tel = telemetry
    lab_secret = lab_secrets.read("SENTINEL_S3_SECRET_KEY")
    access_key = lab_secrets.read("SENTINEL_S3_ACCESS_KEY")
    assert _list_buckets(tel, access_key, lab_secret).status_code == 200  # the baseline the test changes
    tel.testinfra.run(f"rm -f {CANARY}")
    try:
        # read_secret takes the environment before the secrets directory; -vvv prints every command.
        run = _converge_telemetry(tel, "-vvv", SENTINEL_S3_SECRET_KEY=HOSTILE_SECRET)
        assert run.returncode == 0, run.output[-5000:]
        assert HOSTILE_SECRET not in run.output and "touch /tmp/PWNED" not in run.output

        assert not tel.testinfra.file(CANARY).exists, "a secret became shell code on the host"
        # The env file systemd loads holds exactly the secret, quoted per systemd.
        env = parse_env_file(tel.testinfra.file(CREDENTIALS).content_string)
        assert env["ROOT_SECRET_KEY"] == HOSTILE_SECRET
        # The service's process got exactly the secret from systemd...
        assert _service_environment(tel)["ROOT_SECRET_KEY"] == HOSTILE_SECRET
        # ...and versitygw uses it: a request signed with it is accepted...
        accepted = _list_buckets(tel, access_key, HOSTILE_SECRET)
        assert accepted.status_code == 200, accepted.text[:500]
        for bucket in tel.settings.object_store.buckets:
            assert f"<Name>{bucket}</Name>" in accepted.text
        # ...and one signed with the previous secret is not, so the check above can fail.
        assert _list_buckets(tel, access_key, lab_secret).status_code in (401, 403)
        # The role's own client config (curl -K, no shell) carries it as well.
        store = tel.settings.object_store
        request = s3_request("GET", tel.local("object_store.s3", "/"), store.region)
        tel.testinfra.check_output(" ".join(["%s"] * len(request)), *request)
        assert tel.testinfra.file(CURL_CONFIG).mode == 0o600

        again = _converge_telemetry(tel, SENTINEL_S3_SECRET_KEY=HOSTILE_SECRET)
        assert again.returncode == 0, again.output[-5000:]
        assert again.changed == {tel.name: 0}, again.output[-5000:]
        assert not tel.testinfra.file(CANARY).exists
    finally:
        restore = _converge_telemetry(tel)
        assert restore.returncode == 0, restore.output[-5000:]
    assert _list_buckets(tel, access_key, lab_secret).status_code == 200
    assert not tel.testinfra.file(CANARY).exists
