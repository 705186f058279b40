"""The environment CA (roles/_pki.py): names from the topology, renewal only inside its window, key modes,
the operator's own CA."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from roles._pki import LIFETIME, RENEW_BEFORE, CertificateAuthority, PkiError, identity_uri, pki_dir
from roles._tls import server_names
from tests.environments import environment

NOW = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.timezone.utc)


def _sans(pem: str) -> x509.SubjectAlternativeName:
    cert = x509.load_pem_x509_certificate(pem.encode())
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def _ca(tmp_path, **kwargs) -> CertificateAuthority:
    return CertificateAuthority.open("lab", tmp_path / "pki", now=NOW, **kwargs)


def test_leaf_names_come_from_the_topology(tmp_path):
    body = """
    monitoring = [("mon1.dev", {"ssh_hostname": "mon1.internal.example", "ip": "10.9.0.11"})]
    telemetry = [("tel1.dev", {"ip": "10.9.0.12"})]
    app = [("app1.dev", {"ip": "10.9.0.13"})]
    """
    topology = environment(tmp_path, "dev", body).topology
    mon = topology.listener("mon1.dev", "prometheus.web")
    dns, ips = server_names(topology, "mon1.dev", "prometheus.web")
    leaf = _ca(tmp_path).issue("mon1.dev", "prometheus", dns, ips, now=NOW)
    sans = _sans(leaf.cert_pem)
    assert set(sans.get_values_for_type(x509.DNSName)) == {"mon1.dev", mon.address} - {mon.ip}
    assert set(sans.get_values_for_type(x509.IPAddress)) == {ipaddress.ip_address("10.9.0.11"), ipaddress.ip_address("127.0.0.1")}
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [identity_uri("lab", "mon1.dev", "prometheus")]


def test_a_leaf_chains_to_the_ca_and_lives_30_days(tmp_path):
    ca = _ca(tmp_path)
    leaf = ca.issue("app1", "node_exporter", ("app1",), ("10.0.0.13",), now=NOW)
    cert = x509.load_pem_x509_certificate(leaf.cert_pem.encode())
    cert.verify_directly_issued_by(ca.cert)
    assert cert.not_valid_after_utc - NOW == LIFETIME
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "app1.node_exporter"
    assert isinstance(serialization.load_pem_private_key(leaf.key_pem.encode(), None), ec.EllipticCurvePrivateKey)


def test_no_reissue_inside_validity(tmp_path):
    ca = _ca(tmp_path)
    first = ca.issue("mon1", "alertmanager", ("mon1",), ("10.0.0.11",), now=NOW)
    later = NOW + LIFETIME - RENEW_BEFORE - dt.timedelta(hours=1)  # just before the window
    again = _ca(tmp_path).issue("mon1", "alertmanager", ("mon1",), ("10.0.0.11",), now=later)
    assert (again.cert_pem, again.key_pem) == (first.cert_pem, first.key_pem)


def test_reissued_inside_the_renewal_window(tmp_path):
    ca = _ca(tmp_path)
    first = ca.issue("mon1", "alertmanager", ("mon1",), ("10.0.0.11",), now=NOW)
    inside = NOW + LIFETIME - RENEW_BEFORE + dt.timedelta(hours=1)
    renewed = ca.issue("mon1", "alertmanager", ("mon1",), ("10.0.0.11",), now=inside)
    assert renewed.cert_pem != first.cert_pem and renewed.key_pem != first.key_pem
    assert renewed.not_after == inside + LIFETIME
    # ...and once renewed, the next converge keeps it.
    assert ca.issue("mon1", "alertmanager", ("mon1",), ("10.0.0.11",), now=inside).cert_pem == renewed.cert_pem


def test_reissued_when_the_names_change(tmp_path):
    ca = _ca(tmp_path)
    first = ca.issue("mon1", "prometheus", ("mon1",), ("10.0.0.11",), now=NOW)
    moved = ca.issue("mon1", "prometheus", ("mon1",), ("10.0.0.21",), now=NOW)
    assert moved.cert_pem != first.cert_pem
    assert ipaddress.ip_address("10.0.0.21") in _sans(moved.cert_pem).get_values_for_type(x509.IPAddress)


def test_reissued_when_the_ca_changes(tmp_path):
    first = _ca(tmp_path).issue("mon1", "prometheus", ("mon1",), ("10.0.0.11",), now=NOW)
    cert_pem, key_pem = _operator_pair()
    other = _ca(tmp_path, operator_cert=cert_pem, operator_key=key_pem)
    again = other.issue("mon1", "prometheus", ("mon1",), ("10.0.0.11",), now=NOW)
    assert again.cert_pem != first.cert_pem
    x509.load_pem_x509_certificate(again.cert_pem.encode()).verify_directly_issued_by(other.cert)


def test_the_ca_is_made_once(tmp_path):
    first = _ca(tmp_path)
    assert _ca(tmp_path).cert == first.cert


def test_modes_on_the_controller(tmp_path):
    ca = _ca(tmp_path)
    ca.issue("mon1", "prometheus", ("mon1",), ("10.0.0.11",), now=NOW)
    _, cert, key = ca.operator_files()
    directory = tmp_path / "pki"

    def mode(path):
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(directory) == 0o700 and mode(directory / "leaves") == 0o700
    assert mode(directory / "ca.key") == 0o600
    assert mode(directory / "leaves" / "mon1.prometheus.key") == 0o600
    assert mode(key) == 0o600
    assert identity_uri("lab", None, "operator") in _sans(cert.read_text()).get_values_for_type(x509.UniformResourceIdentifier)


def test_no_key_in_reprs(tmp_path):
    ca = _ca(tmp_path)
    leaf = ca.issue("mon1", "prometheus", ("mon1",), ("10.0.0.11",), now=NOW)
    assert "PRIVATE" not in repr(leaf) and "PRIVATE" not in repr(ca)


def test_pki_dir_is_per_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SENTINEL_PKI_DIR", str(tmp_path))
    assert pki_dir("prod") == tmp_path / "prod"
    monkeypatch.delenv("SENTINEL_PKI_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert pki_dir("lab") == tmp_path / "cfg" / "sentinel" / "pki" / "lab"


# --- the operator's CA ----------------------------------------------------------------


def _operator_pair(days: int = 3650, ca: bool = True) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Operator CA")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def test_the_operators_ca_issues_and_stays_off_disk(tmp_path):
    cert_pem, key_pem = _operator_pair()
    ca = _ca(tmp_path, operator_cert=cert_pem, operator_key=key_pem)
    leaf = ca.issue("tel1", "gateway", now=NOW)
    x509.load_pem_x509_certificate(leaf.cert_pem.encode()).verify_directly_issued_by(ca.cert)
    assert leaf.ca_pem == cert_pem
    assert not (tmp_path / "pki" / "ca.key").exists()


def test_the_operators_key_must_match(tmp_path):
    cert_pem, _ = _operator_pair()
    _, other_key = _operator_pair()
    with pytest.raises(PkiError, match="does not match") as err:
        _ca(tmp_path, operator_cert=cert_pem, operator_key=other_key)
    assert "PRIVATE" not in str(err.value)


def test_the_operators_ca_must_not_end_before_a_leaf(tmp_path):
    cert_pem, key_pem = _operator_pair(days=10)
    with pytest.raises(PkiError, match="expires"):
        _ca(tmp_path, operator_cert=cert_pem, operator_key=key_pem)


def test_the_operators_certificate_must_be_a_ca(tmp_path):
    cert_pem, key_pem = _operator_pair(ca=False)
    with pytest.raises(PkiError, match="not a CA"):
        _ca(tmp_path, operator_cert=cert_pem, operator_key=key_pem)


def test_half_an_operators_ca_is_refused(tmp_path):
    cert_pem, _ = _operator_pair()
    with pytest.raises(PkiError, match="SENTINEL_TLS_CA_KEY is not set"):
        _ca(tmp_path, operator_cert=cert_pem)
