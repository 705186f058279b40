"""A rollover of the OPERATOR's CA (SENTINEL_TLS_CA_CERT/_KEY) with SENTINEL_TLS_ALSO_TRUSTED_CA, and the switch from
the toolkit's own CA to an operator's: each phase's trust bundle, leaves that follow the current CA, `openssl verify`
as the hosts' peers check, and the refusals (docs/tls.md "CA rollover": the operator's CA)."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from roles._pki import ALSO_TRUSTED_SECRET, CertificateAuthority, PkiError, check_also_trusted, check_operator_overlap

pytestmark = pytest.mark.tls

NOW = dt.datetime.now(dt.timezone.utc)


def _ca(cn: str, days: int = 3650, ca: bool = True) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=400)).not_valid_after(NOW + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


OLD, NEW = _ca("Operator CA 2026"), _ca("Operator CA 2027")


def _open(directory: Path, pair: tuple[str, str] | None, also: str | None = None) -> CertificateAuthority:
    """The run's CA as a converge opens it: the operator's `pair` (None: the toolkit's own) and the extra trust."""
    cert, key = pair or (None, None)
    return CertificateAuthority.open("op", directory, operator_cert=cert, operator_key=key, also_trusted=also)


def _leaf(ca: CertificateAuthority):
    return ca.issue("mon1", "prometheus", ("mon1",), ("10.0.0.1",))


def _verifies(tmp_path: Path, bundle: str, leaf_pem: str) -> bool:
    """openssl verify -CAfile <bundle> <leaf>, as every OpenSSL-based peer checks."""
    ca_file, leaf_file = tmp_path / "bundle.pem", tmp_path / "leaf.pem"
    ca_file.write_text(bundle)
    leaf_file.write_text(leaf_pem)
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca_file), str(leaf_file)], capture_output=True).returncode == 0


def _current(pair: tuple[str, str]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pair[0].encode())


def test_each_phase_of_the_operators_rollover_trusts_old_and_new_while_leaves_move(tmp_path):
    pki = tmp_path / "pki"
    steady = _open(pki, OLD)
    old_leaf = _leaf(steady)
    assert steady.ca_pem == OLD[0]

    # begin: the next CA trusted beside the current one; no leaf is issued again.
    begun = _open(pki, OLD, also=NEW[0])
    assert begun.ca_pem == OLD[0] + NEW[0]
    assert _leaf(begun).cert_pem == old_leaf.cert_pem
    check_operator_overlap(pki, _current(OLD), check_also_trusted(NEW[0], _current(OLD)))

    # promote (the operator swaps the pair and trusts the previous CA): every leaf is issued again by the new CA.
    promoted = _open(pki, NEW, also=OLD[0])
    assert promoted.ca_pem == NEW[0] + OLD[0]
    new_leaf = _leaf(promoted)
    assert new_leaf.cert_pem != old_leaf.cert_pem
    x509.load_pem_x509_certificate(new_leaf.cert_pem.encode()).verify_directly_issued_by(_current(NEW))
    # A host the begin converge reached accepts the new leaf; a host not yet converged in this phase still has
    # the old leaf, which every bundle of this phase accepts.
    assert _verifies(tmp_path, begun.ca_pem, new_leaf.cert_pem)
    assert _verifies(tmp_path, promoted.ca_pem, old_leaf.cert_pem)

    # finish (the extra trust unset): the old CA's certificates are refused.
    check_operator_overlap(pki, _current(NEW), ())
    finished = _open(pki, NEW)
    assert finished.ca_pem == NEW[0]
    assert _verifies(tmp_path, finished.ca_pem, new_leaf.cert_pem)
    assert not _verifies(tmp_path, finished.ca_pem, old_leaf.cert_pem)
    # A second converge in the same phase issues nothing.
    assert _leaf(_open(pki, NEW)).cert_pem == new_leaf.cert_pem


def test_ending_the_overlap_before_every_leaf_moved_is_refused_with_the_fix(tmp_path):
    pki = tmp_path / "pki"
    _leaf(_open(pki, OLD))
    # The pair swapped without trusting the previous CA: the leaves on file are still the old CA's.
    with pytest.raises(PkiError) as err:
        check_operator_overlap(pki, _current(NEW), ())
    assert err.value.key == ALSO_TRUSTED_SECRET
    assert "mon1.prometheus" in err.value.problem and "keep the previous CA" in err.value.fix
    assert "leaves/<host>" in err.value.fix  # hosts that are gone
    # With the previous CA trusted, the same state is the promote phase: accepted.
    check_operator_overlap(pki, _current(NEW), check_also_trusted(OLD[0], _current(NEW)))


def test_the_switch_from_the_toolkits_own_ca_to_the_operators_has_an_overlap_too(tmp_path):
    pki = tmp_path / "pki"
    own = _open(pki, None)
    own_pem, own_leaf = own.ca_pem, _leaf(own)
    # 1. the operator's CA trusted beside the toolkit's own one.
    begun = _open(pki, None, also=NEW[0])
    assert begun.ca_pem == own_pem + NEW[0] and _leaf(begun).cert_pem == own_leaf.cert_pem
    # 2. the operator's pair, the toolkit's CA trusted beside it: leaves move.
    promoted = _open(pki, NEW, also=own_pem)
    new_leaf = _leaf(promoted)
    assert _verifies(tmp_path, begun.ca_pem, new_leaf.cert_pem) and _verifies(tmp_path, promoted.ca_pem, own_leaf.cert_pem)
    # 3. the extra trust unset.
    check_operator_overlap(pki, _current(NEW), ())
    assert not _verifies(tmp_path, _open(pki, NEW).ca_pem, own_leaf.cert_pem)


@pytest.mark.parametrize("pem, problem, fix", [
    ("TODO paste the old CA", "not PEM certificates", "no key"),
    (_ca("A Leaf", ca=False)[0], "not a CA", "only CA certificates"),
    (_ca("Operator CA 2025", days=-1)[0], "expired on", "remove it"),
    (OLD[0], "the current CA", "the other CA of the rollover"),
    (_ca("Operator CA 2026")[0], "the current CA's subject", "a subject of its own"),
])
def test_extra_trust_that_cannot_serve_the_overlap_is_refused_without_echoing_it(pem, problem, fix):
    with pytest.raises(PkiError) as err:
        check_also_trusted(pem, _current(OLD))
    assert err.value.key == ALSO_TRUSTED_SECRET and problem in err.value.problem and fix in err.value.fix
    for line in pem.splitlines()[1:-1]:
        assert line not in str(err.value)


def test_the_deploy_refuses_the_same_when_it_opens_the_ca(tmp_path):
    with pytest.raises(PkiError) as err:
        _open(tmp_path / "pki", OLD, also=OLD[0])
    assert err.value.key == ALSO_TRUSTED_SECRET
