"""The environment CA (roles/_pki.py): names from the topology, renewal only inside its window, key modes,
the operator's own CA."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from roles._pki import (
    BACKDATE, LIFETIME, RENEW_BEFORE, CertificateAuthority, PkiError, check_operator_ca, check_own_ca, identity_uri, pki_dir,
)
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


def _operator_pair(days: int = 3650, ca: bool = True, key=None, cert_sign: bool | None = None,
                   before: dt.timedelta = dt.timedelta(days=1)) -> tuple[str, str]:
    """An operator's CA (certificate, key) PEMs valid from NOW - `before` to NOW + `days`; `cert_sign`: a
    key usage extension with (True) or without (False) keyCertSign, none when None."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Operator CA")])
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - before).not_valid_after(NOW + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if cert_sign is not None:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, cert_sign, cert_sign, False, False), critical=True
        )
    cert = builder.sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
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


# --- lifetime and renewal window from the settings (tls.lifetime_days, tls.renew_within_days) --------


def test_the_default_lifetime_and_window_are_the_settings_defaults():
    from roles._tls_settings import TlsSettings

    assert (TlsSettings().lifetime, TlsSettings().renew_before) == (LIFETIME, RENEW_BEFORE) == (dt.timedelta(days=30), dt.timedelta(days=10))


def test_a_leaf_lives_the_lifetime_it_is_given(tmp_path):
    leaf = _ca(tmp_path).issue("mon1", "prometheus", ("mon1",), ("10.0.0.11",), lifetime=dt.timedelta(days=7), now=NOW)
    assert leaf.not_after == NOW + dt.timedelta(days=7)


def test_a_shorter_window_keeps_the_leaf_longer(tmp_path):
    ca, args = _ca(tmp_path), ("mon1", "prometheus", ("mon1",), ("10.0.0.11",))
    first = ca.issue(*args, now=NOW)
    # 15 days left: inside the default window of 10? No; inside a window of 20: yes.
    at = NOW + dt.timedelta(days=15)
    assert ca.issue(*args, renew_before=dt.timedelta(days=10), now=at).cert_pem == first.cert_pem
    assert ca.issue(*args, renew_before=dt.timedelta(days=20), now=at).cert_pem != first.cert_pem


def test_reissued_when_the_lifetime_changes_then_kept(tmp_path):
    """A new tls.lifetime_days applies at the next converge (a shortened one above all), and only once."""
    ca, args = _ca(tmp_path), ("mon1", "prometheus", ("mon1",), ("10.0.0.11",))
    first = ca.issue(*args, now=NOW)
    week = dt.timedelta(days=7)
    shorter = ca.issue(*args, lifetime=week, renew_before=dt.timedelta(days=2), now=NOW + dt.timedelta(hours=1))
    assert shorter.cert_pem != first.cert_pem and shorter.not_after == NOW + dt.timedelta(hours=1) + week
    again = ca.issue(*args, lifetime=week, renew_before=dt.timedelta(days=2), now=NOW + dt.timedelta(days=1))
    assert again.cert_pem == shorter.cert_pem
    cert = x509.load_pem_x509_certificate(again.cert_pem.encode())
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == week + BACKDATE


def test_the_same_settings_twice_issue_nothing_new(tmp_path):
    """A second converge with unchanged settings, a day later, keeps every file as it is."""
    ca = _ca(tmp_path)
    first = ca.issue("mon1", "prometheus", ("mon1",), ("10.0.0.11",), lifetime=LIFETIME, renew_before=RENEW_BEFORE, now=NOW)
    files = {p: p.read_bytes() for p in (tmp_path / "pki" / "leaves").iterdir()}
    again = _ca(tmp_path).issue("mon1", "prometheus", ("mon1",), ("10.0.0.11",), now=NOW + dt.timedelta(days=1))
    assert (again.cert_pem, again.key_pem) == (first.cert_pem, first.key_pem)
    assert {p: p.read_bytes() for p in (tmp_path / "pki" / "leaves").iterdir()} == files


# --- the operator's CA, as preflight checks it (check_operator_ca) -------------------------------


def _refusal(cert_pem, key_pem, lifetime=LIFETIME) -> PkiError:
    with pytest.raises(PkiError) as err:
        check_operator_ca(cert_pem, key_pem, lifetime, NOW)
    message = str(err.value)
    for pem in (cert_pem, key_pem):
        for line in (pem or "").splitlines()[1:-1]:  # no line of either PEM in the message
            assert line not in message
    assert "PRIVATE KEY" not in message and "BEGIN" not in err.value.problem
    return err.value


def test_an_operators_ca_ending_inside_the_configured_lifetime_is_refused():
    cert_pem, key_pem = _operator_pair(days=60)
    check_operator_ca(cert_pem, key_pem, dt.timedelta(days=30), NOW)  # 60 days left: a 30-day leaf fits
    err = _refusal(cert_pem, key_pem, dt.timedelta(days=90))
    assert err.key == "SENTINEL_TLS_CA_CERT" and "tls.lifetime_days 90" in err.problem and "lower tls.lifetime_days" in err.fix


def test_an_expired_operators_ca_is_refused():
    cert_pem, key_pem = _operator_pair(days=-1, before=dt.timedelta(days=400))
    err = _refusal(cert_pem, key_pem)
    assert err.key == "SENTINEL_TLS_CA_CERT" and "expired on" in err.problem and "renew the CA" in err.fix


def test_an_operators_ca_not_valid_yet_is_refused():
    cert_pem, key_pem = _operator_pair(before=-dt.timedelta(days=2))
    err = _refusal(cert_pem, key_pem)
    assert "not valid before" in err.problem and "clock" in err.fix


def test_a_mismatched_operators_key_names_the_key_secret():
    cert_pem, _ = _operator_pair()
    _, other_key = _operator_pair()
    err = _refusal(cert_pem, other_key)
    assert err.key == "SENTINEL_TLS_CA_KEY" and "does not match" in err.problem and "belongs together" in err.fix


def test_an_operators_ca_without_key_cert_sign_is_refused():
    err = _refusal(*_operator_pair(cert_sign=False))
    assert err.key == "SENTINEL_TLS_CA_CERT" and "keyCertSign" in err.problem
    check_operator_ca(*_operator_pair(cert_sign=True), LIFETIME, NOW)


def test_an_operators_leaf_is_not_a_ca():
    err = _refusal(*_operator_pair(ca=False))
    assert "basicConstraints CA:TRUE" in err.problem and "not a leaf's" in err.fix


def test_an_operators_ed25519_ca_is_refused_before_it_fails_to_sign():
    err = _refusal(*_operator_pair(key=ed25519.Ed25519PrivateKey.generate()))
    assert err.key == "SENTINEL_TLS_CA_KEY" and "neither EC nor RSA" in err.problem and "RSA key" in err.fix


def test_an_operators_rsa_ca_issues(tmp_path):
    cert_pem, key_pem = _operator_pair(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    ca = _ca(tmp_path, operator_cert=cert_pem, operator_key=key_pem)
    x509.load_pem_x509_certificate(ca.issue("tel1", "gateway", now=NOW).cert_pem.encode()).verify_directly_issued_by(ca.cert)


def test_an_operators_key_that_is_not_pem_is_refused_without_echoing_it():
    cert_pem, _ = _operator_pair()
    err = _refusal(cert_pem, "hunter2-not-a-key")
    assert err.key == "SENTINEL_TLS_CA_KEY" and "hunter2" not in str(err)


def test_half_an_operators_ca_names_the_missing_secret():
    _, key_pem = _operator_pair()
    err = _refusal(None, key_pem)
    assert err.key == "SENTINEL_TLS_CA_CERT" and "set both" in err.fix


def test_the_own_ca_must_outlive_a_leaf(monkeypatch, tmp_path):
    monkeypatch.setenv("SENTINEL_PKI_DIR", str(tmp_path))
    check_own_ca("lab", LIFETIME, NOW)  # no CA yet: nothing to check, nothing made
    assert not (tmp_path / "lab").exists()
    CertificateAuthority.open("lab", now=NOW)  # ten years
    check_own_ca("lab", LIFETIME, NOW)
    with pytest.raises(PkiError, match="expires") as err:
        check_own_ca("lab", LIFETIME, NOW + dt.timedelta(days=3650) - dt.timedelta(days=29))
    assert err.value.key.endswith("lab/ca.crt") and "SENTINEL_TLS_CA_CERT" in err.value.fix
