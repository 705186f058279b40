"""S3 keys (issue 22): one key per consumer, each limited to its own bucket; the root key only in the
store's own files.

The lab's versitygw 1.8.0 holds an account per consumer (Loki's, Tempo's: the lab creates their buckets
without running either) in its internal IAM, each a `user` owning only its bucket. Requests are signed
here, on the controller, with the lab's generated keys (tests/s3_sigv4.py, no SDK, no shell) and sent
from the telemetry host to the store's loopback listener. Then, on the host itself: where every S3 key
is (the keys go to grep on stdin, never on a command line), and a second converge changes nothing.
"""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass

import pytest

from lab import secrets as lab_secrets
from lab.paths import SSH_CONFIG
from roles.object_store import ACCOUNTS_DIR, ACCOUNTS_SCRIPT, CREDENTIALS, CURL_CONFIG
from tests import lab_session
from tests.s3_sigv4 import sign
from tests.stack import hosts_in

pytestmark = [pytest.mark.lab, pytest.mark.tls, pytest.mark.secrets]

ROOT = ("SENTINEL_S3_ACCESS_KEY", "SENTINEL_S3_SECRET_KEY")
KEYS = {
    "loki": ("SENTINEL_S3_LOKI_ACCESS_KEY", "SENTINEL_S3_LOKI_SECRET_KEY"),
    "tempo": ("SENTINEL_S3_TEMPO_ACCESS_KEY", "SENTINEL_S3_TEMPO_SECRET_KEY"),
}
# The store's own files: the only places the root key may be.
STORE_FILES = {CREDENTIALS, CURL_CONFIG}


@pytest.fixture(scope="module")
def tel(first_converge):
    assert first_converge.returncode == 0, first_converge.output[-3000:]
    return hosts_in("telemetry")[0]


@dataclass
class Answer:
    status: int
    body: str


def _request(tel, method: str, path: str, who: str, body: bytes = b"") -> Answer:
    """`method path` signed with `who`'s key ("root", "loki", "tempo"), sent from the host to the store."""
    access, secret = (lab_secrets.read(name) for name in (ROOT if who == "root" else KEYS[who]))
    return _signed(tel, method, path, access, secret, body)


def _signed(tel, method: str, path: str, access: str, secret: str, body: bytes = b"") -> Answer:
    """`method path` signed with the key pair (access, secret), sent from the host to the store."""
    store = tel.settings.object_store
    url = tel.local("object_store.s3", path)
    headers = sign(method, url, access, secret, store.region, payload=body)
    args = ["curl", "-sS", "-X", method, "-o", "/dev/stdout", "-w", "\n%{http_code}"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    if body:
        args += ["-H", "Content-Type: application/octet-stream", "--data-binary", body.decode()]
    out = tel.testinfra.check_output(" ".join(["%s"] * (len(args) + 1)), *args, url)
    text, _, status = out.rpartition("\n")
    return Answer(int(status), text)


def _on_host(tel, script: str, stdin: str = "") -> str:
    """`script` run by sh on the host over the lab's ssh, `stdin` fed to it: nothing secret on a command line."""
    result = subprocess.run(["ssh", "-F", str(SSH_CONFIG), tel.name, script], input=stdin, capture_output=True, text=True, timeout=300)
    assert result.returncode in (0, 1), result.stderr  # grep: 1 = nothing found
    return result.stdout


def _files_holding(tel, *values: str) -> set[str]:
    """Every file on the host's file systems that matter holding any of `values` (read by grep from stdin)."""
    dirs = "/etc /opt /root /home /srv /tmp /var/tmp /var/lib /var/backups /usr/local"
    out = _on_host(tel, f"grep -rlF -f - {dirs} 2>/dev/null || true", "".join(f"{v}\n" for v in values))
    return {line for line in out.splitlines() if line}


def test_each_consumer_key_reads_and_writes_its_own_bucket(tel):
    for who in KEYS:
        name = f"s3-keys-{uuid.uuid4().hex}"
        assert _request(tel, "PUT", f"/{who}/{name}", who, b"canary " + name.encode()).status == 200
        got = _request(tel, "GET", f"/{who}/{name}", who)
        assert (got.status, got.body) == (200, "canary " + name)
        listing = _request(tel, "GET", f"/{who}", who)
        assert listing.status == 200 and f"<Key>{name}</Key>" in listing.body
        # Its ListBuckets holds its bucket and no other.
        mine = _request(tel, "GET", "/", who)
        assert mine.status == 200 and f"<Name>{who}</Name>" in mine.body and mine.body.count("<Name>") == 1
        assert _request(tel, "DELETE", f"/{who}/{name}", who).status == 204


@pytest.mark.parametrize("who,other", [("loki", "tempo"), ("tempo", "loki")])
def test_a_consumer_key_cannot_touch_another_bucket(tel, who, other):
    name = f"s3-keys-{uuid.uuid4().hex}"
    assert _request(tel, "PUT", f"/{other}/{name}", other, b"the other's").status == 200
    try:
        assert _request(tel, "GET", f"/{other}", who).status == 403  # list
        assert _request(tel, "GET", f"/{other}/{name}", who).status == 403  # read
        assert _request(tel, "PUT", f"/{other}/{name}-x", who, b"intruder").status == 403  # write
        assert _request(tel, "DELETE", f"/{other}/{name}", who).status == 403
        assert _request(tel, "GET", f"/{other}/{name}-x", other).status == 404  # nothing was written
    finally:
        assert _request(tel, "DELETE", f"/{other}/{name}", other).status == 204


def test_a_consumer_key_can_neither_create_a_bucket_nor_call_the_admin_api(tel):
    bucket = f"s3keys{uuid.uuid4().hex[:12]}"
    assert _request(tel, "PUT", f"/{bucket}", "loki").status == 403
    data_dir = tel.settings.object_store.data_dir
    assert not tel.testinfra.file(f"{data_dir}/{bucket}").exists
    for path in ("/list-users", "/list-buckets", "/create-user", "/change-bucket-owner?bucket=tempo&owner=x"):
        assert _request(tel, "PATCH", path.split("?")[0], "loki").status == 403, path


def test_the_root_key_is_in_the_stores_own_files_only(tel):
    holding = _files_holding(tel, *(lab_secrets.read(name) for name in ROOT))
    assert holding and holding <= STORE_FILES, holding


def test_a_consumer_key_is_only_in_the_stores_iam_and_the_role_s_root_only_files(tel):
    iam = f"{tel.settings.object_store.iam_dir}/users.json"
    for who, names in KEYS.items():
        holding = _files_holding(tel, lab_secrets.read(names[1]))  # the secret key
        assert iam in holding, holding
        # Loki and Tempo do not run in the lab: their s3.env would be the only other place.
        # versitygw keeps users.json.backup beside users.json (0600 too).
        assert holding <= {iam, f"{iam}.backup", *(f"{ACCOUNTS_DIR}/{who}.{f}" for f in ("create.xml", "update.xml", "user"))}, holding


def test_no_s3_key_is_in_a_world_readable_file(tel):
    values = [lab_secrets.read(n) for n in (*ROOT, *KEYS["loki"], *KEYS["tempo"])]
    holding = sorted(_files_holding(tel, *values))
    assert holding
    modes = _on_host(tel, "xargs -d '\\n' stat -c '%a %U:%G %n'", "".join(f"{p}\n" for p in holding))
    for line in modes.splitlines():
        mode, owner, path = line.split(" ", 2)
        assert int(mode, 8) & 0o007 == 0, line  # nothing for others
        assert path.startswith(("/etc/versitygw/", "/var/lib/versitygw/")), line
    accounts = tel.testinfra.file(ACCOUNTS_DIR)
    assert (accounts.user, accounts.group, accounts.mode) == ("root", "root", 0o700)
    iam = tel.testinfra.file(f"{tel.settings.object_store.iam_dir}/users.json")
    assert (iam.user, iam.mode) == ("versitygw", 0o600)


def test_the_accounts_are_in_sync_and_a_second_converge_changes_nothing(tel):
    assert tel.testinfra.check_output(f"{ACCOUNTS_SCRIPT} check") == "in sync"
    again = lab_session.converge("--limit", tel.name)
    assert again.returncode == 0, again.output[-3000:]
    assert again.changed.get(tel.name) == 0, again.output[-5000:]


def test_a_rotated_secret_key_replaces_the_old_one(tel):
    """A converge with a new secret for Loki: the old one is refused, the new one works; then the lab's is back."""
    new_secret = "rotated-" + uuid.uuid4().hex
    access = lab_secrets.read(KEYS["loki"][0])
    store = tel.settings.object_store
    url = tel.local("object_store.s3", "/loki")
    try:
        run = lab_session.converge("-vvv", "--limit", tel.name, env={KEYS["loki"][1]: new_secret})
        assert run.returncode == 0, run.output[-3000:]
        # Nothing secret in pyinfra's output, even at -vvv: not the new secret, not the key id, not the root key.
        for value in (new_secret, access, *(lab_secrets.read(n) for n in ROOT)):
            assert value not in run.output
        headers = sign("GET", url, access, new_secret, store.region)
        args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"]
        for name, value in headers.items():
            args += ["-H", f"{name}: {value}"]
        assert tel.testinfra.check_output(" ".join(["%s"] * (len(args) + 1)), *args, url) == "200"
        assert _request(tel, "GET", "/loki", "loki").status == 403  # the lab's usual secret, now refused
    finally:
        back = lab_session.converge("--limit", tel.name)
        assert back.returncode == 0, back.output[-3000:]
    assert _request(tel, "GET", "/loki", "loki").status == 200


PREVIOUS = {"loki": "SENTINEL_S3_LOKI_PREVIOUS_ACCESS_KEY"}


def test_a_new_key_id_rotates_in_two_phases_with_both_keys_accepted_in_between(tel):
    """Phase 1 (new pair, previous key id set): both keys read and write Loki's bucket, neither touches Tempo's, and a
    second converge changes nothing. Phase 2 (previous unset): the old key is refused, the new one reads what the old
    one wrote. Then the lab's own keys again."""
    old = tuple(lab_secrets.read(name) for name in KEYS["loki"])
    new = ("rot" + uuid.uuid4().hex[:16], "rotated-" + uuid.uuid4().hex)
    before, during = f"/loki/rotation-before-{uuid.uuid4().hex}", f"/loki/rotation-during-{uuid.uuid4().hex}"
    assert _signed(tel, "PUT", before, *old, body=b"written with the old key").status == 200
    first_phase = {KEYS["loki"][0]: new[0], KEYS["loki"][1]: new[1], PREVIOUS["loki"]: old[0]}
    try:
        run = lab_session.converge("-vvv", "--limit", tel.name, env=first_phase)
        assert run.returncode == 0, run.output[-3000:]
        for value in (*new, *old):  # nothing secret in pyinfra's output at -vvv, key ids included
            assert value not in run.output
        for pair in (old, new):  # both accepted on the bucket, for every right the consumer needs
            assert _signed(tel, "GET", before, *pair).status == 200
            assert _signed(tel, "PUT", during, *pair, body=b"written during the overlap").status == 200
            assert _signed(tel, "GET", "/loki", *pair).status == 200  # the listing (tests/s3_sigv4 signs no query)
            assert _signed(tel, "GET", "/tempo", *pair).status == 403  # and nothing beyond its bucket
        assert tel.testinfra.check_output(f"{ACCOUNTS_SCRIPT} check") == "in sync"
        again = lab_session.converge("--limit", tel.name, env=first_phase)
        assert again.returncode == 0 and again.changed.get(tel.name) == 0, again.output[-5000:]

        run = lab_session.converge("--limit", tel.name, env={KEYS["loki"][0]: new[0], KEYS["loki"][1]: new[1]})
        assert run.returncode == 0, run.output[-3000:]
        assert _signed(tel, "GET", "/loki", *old).status == 403  # the old key id is gone
        assert _signed(tel, "GET", before, *new).status == 200  # what the old key wrote stays readable
        assert _signed(tel, "GET", during, *new).status == 200
        assert tel.testinfra.check_output(f"{ACCOUNTS_SCRIPT} check") == "in sync"
    finally:
        back = lab_session.converge("--limit", tel.name)
        assert back.returncode == 0, back.output[-3000:]
        for path in (before, during):  # the lab's own key again, which owns what both others wrote
            _request(tel, "DELETE", path, "loki")
    assert _request(tel, "GET", "/loki", "loki").status == 200
    assert tel.testinfra.check_output(f"{ACCOUNTS_SCRIPT} check") == "in sync"
