"""Grafana's public certificate (grafana.public_certificate_secret / public_key_secret), without Grafana:
the names it covers as browsers match them, the refusals of a pair that cannot serve (preflight's table
cases are in test_preflight.py), what the role renders and puts on the host with it and without it, and
how Grafana's own clients verify it. Rendering-checked only: Grafana cannot run in the lab.

Certificates are made here (tests/unit/public_cert_fixtures.py); no key material is committed."""

from __future__ import annotations

import datetime as dt

import pytest

from roles.grafana.public_certificate import PublicCertificateProblem, check_pair, covers, dns_name_matches
from tests.unit.public_cert_fixtures import chain, key_pem, other_key, secret_lines

pytestmark = pytest.mark.grafana


# --- names, as browsers match them ----------------------------------------------------------


@pytest.mark.parametrize("pattern, host, matches", [
    ("grafana.example.test", "grafana.example.test", True),
    ("Grafana.Example.TEST", "grafana.example.test.", True),  # case and the root's trailing dot do not matter
    ("grafana.example.test", "grafana2.example.test", False),
    ("*.example.test", "grafana.example.test", True),
    ("*.example.test", "a.grafana.example.test", False),  # one label only
    ("*.example.test", "example.test", False),  # not the bare domain
    ("*.example.test", ".example.test", False),  # not an empty label
    ("*.test", "example.test", False),  # never over a bare suffix
    ("g*.example.test", "grafana.example.test", False),  # no partial wildcards
    ("*rafana.example.test", "grafana.example.test", False),
    ("grafana.*.test", "grafana.example.test", False),  # only the left-most label
    ("*.*.test", "a.example.test", False),
])
def test_dns_names_match_as_browsers_match_them(pattern, host, matches):
    assert dns_name_matches(pattern, host) is matches


def test_an_ip_is_covered_by_an_ip_entry_only_and_a_certificate_without_names_covers_nothing():
    from cryptography import x509

    def first(pair):
        return x509.load_pem_x509_certificates(pair.chain_pem.encode())[0]

    by_ip = first(chain(("10.9.0.11",)))
    assert covers(by_ip, "10.9.0.11") and not covers(by_ip, "10.9.0.12")
    # A DNS entry spelling the IP is not an IP entry: browsers do not accept it.
    assert not covers(first(chain(("dns:10.9.0.11",))), "10.9.0.11")
    # The common name alone (no subjectAltName) is ignored, as browsers ignore it.
    assert not covers(first(chain((), cn="grafana.example.test")), "grafana.example.test")


# --- the pair's refusals, straight from check_pair ---------------------------------------------------


def _refusal(chain_pem: str, key_pem: str, host: str = "grafana.example.test", now=None) -> PublicCertificateProblem:
    with pytest.raises(PublicCertificateProblem) as err:
        check_pair(chain_pem, key_pem, host, now=now)
    return err.value


def test_a_good_pair_passes_and_each_refusal_names_its_secret_without_its_value():
    good = chain()
    check_pair(good.chain_pem, good.key_pem, "grafana.example.test")
    expired, future, elsewhere = chain(ends_in_days=-1, starts_in_days=-30), chain(starts_in_days=3), chain(("other.example.test",))
    cases = [
        (_refusal(good.chain_pem, other_key()), "key", "is not the key"),
        (_refusal(expired.chain_pem, expired.key_pem), "certificate", "expired on"),
        (_refusal(future.chain_pem, future.key_pem), "certificate", "not valid before"),
        (_refusal(elsewhere.chain_pem, elsewhere.key_pem), "certificate", "is not for grafana.example.test"),
    ]
    lines = [line for pair in (good, expired, future, elsewhere) for line in secret_lines(pair)]
    for problem, which, words in cases:
        assert problem.which == which and words in problem.problem, problem
        assert problem.fix
        assert not [line for line in lines if line in str(problem)]


def test_an_expired_intermediate_is_refused_too():
    good = chain()
    # Checked at a time after the server certificate's end: the dates of every certificate of the chain count.
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=4000)
    problem = _refusal(good.chain_pem, good.key_pem, now=later)
    assert problem.which == "certificate" and "expired on" in problem.problem
    # Within the server's dates but past the intermediate's (made ten years long): certificate 2 is named.
    long_lived = chain(ends_in_days=5000)
    problem = _refusal(long_lived.chain_pem, long_lived.key_pem, now=later)
    assert "certificate 2 of the chain" in problem.problem


def test_a_client_certificate_is_not_a_server_certificate():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "grafana.example.test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("grafana.example.test")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    problem = _refusal(cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem(key))
    assert "serverAuth" in problem.problem
