"""A rollover of the toolkit's own CA (roles/_pki.py, python -m roles.ca_rollover): the trust bundle of each
phase, leaves that follow the current CA, out-of-order steps refused, the old key gone, idempotence."""

from __future__ import annotations

import datetime as dt
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from roles import _pki, ca_rollover
from roles._pki import CA_LIFETIME, CertificateAuthority, PkiError, check_own_ca
from roles._tls import tls_files

pytestmark = pytest.mark.tls

ENV = "roll"


@pytest.fixture
def pki(tmp_path, monkeypatch):
    """An empty SENTINEL_PKI_DIR and no operator's CA in the secrets; the environment's directory."""
    monkeypatch.setenv("SENTINEL_PKI_DIR", str(tmp_path / "pki"))
    monkeypatch.setenv("SENTINEL_SECRETS_DIR", str(tmp_path / "secrets"))
    monkeypatch.delenv(_pki.CA_CERT_SECRET, raising=False)
    monkeypatch.delenv(_pki.CA_KEY_SECRET, raising=False)
    return tmp_path / "pki" / ENV


def _open(directory: Path) -> CertificateAuthority:
    return CertificateAuthority.open(ENV, directory)


def _pem(directory: Path, sub: str = "") -> str:
    return (directory / sub / "ca.crt").read_text()


def _certs(bundle: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(bundle.encode())


def _verifies(tmp_path: Path, bundle: str, leaf_pem: str) -> bool:
    """openssl verify -CAfile <bundle> <leaf>, as the hosts' checks and every OpenSSL-based peer do."""
    ca_file, leaf_file = tmp_path / "bundle.pem", tmp_path / "leaf.pem"
    ca_file.write_text(bundle)
    leaf_file.write_text(leaf_pem)
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca_file), str(leaf_file)], capture_output=True).returncode == 0


def _leaf(ca: CertificateAuthority):
    return ca.issue("mon1", "prometheus", ("mon1",), ("10.0.0.1",))


def test_each_phase_trusts_its_bundle_in_a_fixed_order_and_leaves_follow_the_current_ca(pki, tmp_path):
    ca = _open(pki)
    old_pem, old_leaf = _pem(pki), _leaf(ca)
    assert ca.ca_pem == old_pem and len(_certs(ca.ca_pem)) == 1

    next_cert = _pki.rollover_begin(pki, ENV)
    begun = _open(pki)
    new_pem = _pem(pki, "next")
    assert begun.ca_pem == old_pem + new_pem  # current first, then next
    assert begun.cert_pem == old_pem
    assert next_cert.subject != ca.cert.subject  # no two CAs of the environment share a subject
    assert _leaf(begun).cert_pem == old_leaf.cert_pem  # begin changes no leaf
    assert _leaf(begun).ca_pem == begun.ca_pem  # what a host's ca.crt gets
    assert _verifies(tmp_path, begun.ca_pem, old_leaf.cert_pem)

    _pki.rollover_promote(pki)
    promoted = _open(pki)
    assert promoted.ca_pem == new_pem + old_pem  # new current first, then retiring
    assert promoted.cert.subject == next_cert.subject
    new_leaf = _leaf(promoted)
    assert new_leaf.cert_pem != old_leaf.cert_pem  # issued again by the new CA
    cert = x509.load_pem_x509_certificate(new_leaf.cert_pem.encode())
    assert cert.issuer == next_cert.subject
    cert.verify_directly_issued_by(next_cert)
    assert _verifies(tmp_path, promoted.ca_pem, new_leaf.cert_pem)
    assert _verifies(tmp_path, promoted.ca_pem, old_leaf.cert_pem)  # a host not yet converged still gets in

    _pki.rollover_finish(pki)
    finished = _open(pki)
    assert finished.ca_pem == new_pem and not (pki / "retiring").exists() and not (pki / "next").exists()
    assert _verifies(tmp_path, finished.ca_pem, new_leaf.cert_pem)
    assert not _verifies(tmp_path, finished.ca_pem, old_leaf.cert_pem)  # the old CA's certificate is refused


def test_the_hosts_ca_file_is_the_bundle_and_passes_its_openssl_checks(pki, tmp_path):
    _open(pki)
    _pki.rollover_begin(pki, ENV)
    leaf = _leaf(_open(pki))
    ca_file, cert_file, _ = tls_files("prometheus", leaf)
    assert ca_file.content == leaf.ca_pem and len(_certs(ca_file.content)) == 2
    bundle = tmp_path / "ca.crt"
    bundle.write_text(ca_file.content)
    assert subprocess.run(["openssl", "x509", "-noout", "-in", str(bundle)], capture_output=True).returncode == 0
    assert _verifies(tmp_path, ca_file.content, cert_file.content)


def test_the_retired_key_is_gone_after_promote_and_modes_stay_tight(pki):
    _open(pki)
    old_key = (pki / "ca.key").read_bytes()
    _pki.rollover_begin(pki, ENV)
    next_key = (pki / "next" / "ca.key").read_bytes()
    _pki.rollover_promote(pki)
    keys = {p: p.read_bytes() for p in pki.rglob("*.key")}
    assert old_key not in keys.values()
    assert (pki / "ca.key").read_bytes() == next_key
    assert sorted(p.name for p in (pki / "retiring").iterdir()) == ["ca.crt"]
    for path in keys:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for path in (pki, pki / "retiring"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path


def test_the_next_directory_is_private(pki):
    _open(pki)
    _pki.rollover_begin(pki, ENV)
    assert stat.S_IMODE((pki / "next").stat().st_mode) == 0o700
    assert stat.S_IMODE((pki / "next" / "ca.key").stat().st_mode) == 0o600


def _no_key_material(text: str, directory: Path) -> None:
    assert "PRIVATE" not in text and "BEGIN" not in text
    for path in directory.rglob("*.key"):
        body = "".join(path.read_text().splitlines()[1:-1])
        assert body[:40] not in text.replace("\n", "")


@pytest.mark.parametrize("steps, refused, fix", [
    ((), "promote", "begin"),
    ((), "finish", "begin"),
    (("begin",), "begin", "promote"),
    (("begin",), "finish", "promote"),
    (("begin", "promote"), "promote", "finish"),
    (("begin", "promote"), "begin", "finish"),
])
def test_out_of_order_steps_are_refused_with_the_fix(pki, capsys, steps, refused, fix):
    _open(pki)
    for step in steps:
        assert ca_rollover.main([ENV, step]) == 0
    capsys.readouterr()
    before = {p: p.read_bytes() for p in pki.rglob("*") if p.is_file()}
    assert ca_rollover.main([ENV, refused]) == 2
    err = capsys.readouterr().err
    assert f"`{refused}` does not follow" in err and f"python -m roles.ca_rollover {ENV} {fix}" in err
    _no_key_material(err, pki)
    assert {p: p.read_bytes() for p in pki.rglob("*") if p.is_file()} == before  # a refusal changes nothing


def test_finish_is_refused_while_a_leaf_of_the_retiring_ca_is_on_file_unless_forced(pki, capsys):
    _leaf(_open(pki))
    _pki.rollover_begin(pki, ENV)
    _pki.rollover_promote(pki)
    with pytest.raises(PkiError) as err:
        _pki.rollover_finish(pki)
    assert "mon1.prometheus" in str(err.value) and "converge every host" in err.value.fix
    _no_key_material(str(err.value), pki)
    assert ca_rollover.main([ENV, "finish", "--force"]) == 0
    assert _pki.rollover_phase(pki) == _pki.STEADY


def test_an_interrupted_promote_is_refused_when_opened_and_completed_when_run_again(pki):
    _open(pki)
    _pki.rollover_begin(pki, ENV)
    old_pem, new_pem = _pem(pki), _pem(pki, "next")
    (pki / "retiring").mkdir(mode=0o700)  # promote stopped after retiring the certificate
    (pki / "retiring" / "ca.crt").write_text(old_pem)
    with pytest.raises(PkiError, match="interrupted") as err:
        _open(pki)
    assert "promote" in err.value.fix
    _pki.rollover_promote(pki)
    assert _open(pki).ca_pem == new_pem + old_pem


def test_a_second_open_in_the_same_phase_gives_the_same_bundle_and_issues_nothing(pki):
    for step in (None, "begin", "promote", "finish"):
        if step == "begin":
            _pki.rollover_begin(pki, ENV)
        elif step == "promote":
            _pki.rollover_promote(pki)
        elif step == "finish":
            _pki.rollover_finish(pki, force=True)
        first = _leaf(_open(pki))
        files = {p: p.stat().st_mtime_ns for p in pki.rglob("*") if p.is_file() and p.name != ".lock"}
        second = _leaf(_open(pki))
        assert (second.ca_pem, second.cert_pem, second.key_pem) == (first.ca_pem, first.cert_pem, first.key_pem), step
        assert {p: p.stat().st_mtime_ns for p in pki.rglob("*") if p.is_file() and p.name != ".lock"} == files, step


def test_preflight_checks_the_next_ca_too(pki):
    _open(pki)
    check_own_ca(ENV)
    # A next CA made ten years ago less 20 days: it ends before a 30-day leaf issued now would.
    _pki.rollover_begin(pki, ENV, now=dt.datetime.now(dt.timezone.utc) - CA_LIFETIME + dt.timedelta(days=20))
    with pytest.raises(PkiError) as err:
        check_own_ca(ENV)
    assert err.value.key.endswith("next/ca.crt") and "expires" in err.value.problem


def test_the_cli_end_to_end(pki, capsys):
    _leaf(_open(pki))  # a converge made the CA and a host's leaf
    assert ca_rollover.main([ENV, "status"]) == 0
    assert "steady" in capsys.readouterr().out

    assert ca_rollover.main([ENV, "begin"]) == 0
    out = capsys.readouterr().out
    assert "begun" in out and "next" in out and "serial" in out and "not after" in out
    _no_key_material(out, pki)
    bundle = (pki / "ca-bundle.crt").read_text()
    assert bundle == _pem(pki) + _pem(pki, "next")  # the operator's files follow each step

    assert ca_rollover.main([ENV, "promote"]) == 0
    out = capsys.readouterr().out
    assert "promoted" in out and "leaves still of the retiring CA: mon1.prometheus" in out
    _no_key_material(out, pki)
    current = x509.load_pem_x509_certificate(_pem(pki).encode())
    operator = x509.load_pem_x509_certificate((pki / "leaves" / "operator.crt").read_bytes())
    operator.verify_directly_issued_by(current)  # the controller's identity needs no converge
    assert (pki / "ca-bundle.crt").read_text() == _pem(pki) + _pem(pki, "retiring")

    _leaf(_open(pki))  # the converge after promote
    assert ca_rollover.main([ENV, "finish"]) == 0
    out = capsys.readouterr().out
    assert "steady" in out and "retiring" not in out
    assert (pki / "ca-bundle.crt").read_text() == _pem(pki)


def test_the_operators_own_ca_is_not_rolled_here(pki, capsys, monkeypatch):
    _open(pki)
    monkeypatch.setenv(_pki.CA_CERT_SECRET, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----")
    monkeypatch.setenv(_pki.CA_KEY_SECRET, "-----BEGIN PRIVATE KEY-----\nMIIC\n-----END PRIVATE KEY-----")
    assert ca_rollover.main([ENV, "begin"]) == 2
    err = capsys.readouterr().err
    assert "operator's CA" in err and _pki.CA_CERT_SECRET in err and "MIIC" not in err and "PRIVATE" not in err
    assert not (pki / "next").exists()


def test_a_missing_ca_is_refused(pki, capsys):
    assert ca_rollover.main([ENV, "begin"]) == 2
    assert "holds no CA" in capsys.readouterr().err


NODE_CHECK = """
const fs = require("fs"), tls = require("tls");
const [bundle, cert, key] = process.argv.slice(1).map((p) => fs.readFileSync(p));
const server = tls.createServer({ cert, key }, (socket) => socket.end());
server.listen(0, "127.0.0.1", () => {
  // What @opentelemetry/otlp-exporter-base does with OTEL_EXPORTER_OTLP_CERTIFICATE: the file's bytes as `ca`.
  const client = tls.connect({ host: "127.0.0.1", port: server.address().port, ca: bundle }, () => {
    console.log(client.authorized ? "authorized" : "refused"); client.end(); server.close();
  });
  client.on("error", (err) => { console.log("refused " + err.code); server.close(); });
});
"""


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")
def test_node_trusts_every_certificate_of_the_bundle_file(pki, tmp_path):
    """The backend's SDK reads the CA file into one buffer: a server of the bundle's second CA is trusted too."""
    _open(pki)
    old_server = _open(pki).issue("tel1", "otelcol", (), ("127.0.0.1",))
    _pki.rollover_begin(pki, ENV)
    _pki.rollover_promote(pki)
    files = {"bundle": _open(pki).ca_pem, "cert": old_server.cert_pem, "key": old_server.key_pem}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    argv = ["node", "-e", NODE_CHECK, *(str(tmp_path / n) for n in files)]
    assert subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip() == "authorized"
    _pki.rollover_finish(pki, force=True)
    (tmp_path / "bundle").write_text(_open(pki).ca_pem)
    assert subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip().startswith("refused")
