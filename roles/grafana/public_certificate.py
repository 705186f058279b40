"""The operator's public certificate for Grafana (grafana.public_certificate_secret and public_key_secret),
checked on the controller before any host is touched.

A public CA's certificate lets browsers that do not trust the environment CA reach Grafana. What
makes it usable is checked here, from the two PEMs: the key is the first certificate's, every
certificate of the chain is valid now, the first one is for a server, the chain is in order, and the
first one's subjectAltNames cover the host users reach Grafana at, matched as browsers match them.
The refusals say which secret and what to do; they never hold a line of either value.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

Which = Literal["certificate", "key"]


class PublicCertificateProblem(ValueError):
    """The pair cannot be served; `which` secret is at fault. The message never holds the value."""

    def __init__(self, which: Which, problem: str, fix: str):
        self.which, self.problem, self.fix = which, problem, fix
        super().__init__(f"{problem}. Fix: {fix}")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_pair(chain_pem: str, key_pem: str) -> tuple[list[x509.Certificate], object]:
    """The chain's certificates and the key; the secrets' shape checks passed already, this is their second line."""
    try:
        chain = x509.load_pem_x509_certificates(chain_pem.encode())
    except ValueError:
        raise PublicCertificateProblem("certificate", "is not a PEM certificate chain",
                                       "give the certificate and its intermediates, PEM (-----BEGIN CERTIFICATE-----)") from None
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise PublicCertificateProblem("key", "is not an unencrypted PEM private key",
                                       "give the key without a passphrase (openssl pkey -in <key> -out <copy>)") from None
    return chain, key


# --- names, as browsers match them ----------------------------------------------------------


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return None


def dns_name_matches(pattern: str, host: str) -> bool:
    """Whether a certificate's DNS name covers `host` as browsers decide (RFC 6125 as the CA/Browser Forum
    restricts it): case-insensitive; a wildcard only as the whole left-most label, standing for exactly one
    non-empty label, and never over a bare suffix (`*.com`); no partial wildcards (`f*.example.com`)."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if "*" not in pattern:
        return pattern == host
    first, _, rest = pattern.partition(".")
    if first != "*" or "*" in rest or rest.count(".") < 1:
        return False
    label, _, host_rest = host.partition(".")
    return bool(label) and host_rest == rest


def covers(certificate: x509.Certificate, host: str) -> bool:
    """Whether the certificate's subjectAltNames cover `host` (a name, or an IP which only an IP entry covers).
    The subject's common name is not read: browsers stopped reading it."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    address = _ip(host)
    if address is not None:
        return address in names.get_values_for_type(x509.IPAddress)
    return any(dns_name_matches(pattern, host) for pattern in names.get_values_for_type(x509.DNSName))


# --- the checks ------------------------------------------------------------------------------


def _check_key(chain: list[x509.Certificate], key) -> None:
    if _spki(chain[0].public_key()) != _spki(key.public_key()):
        raise PublicCertificateProblem(
            "key", "is not the key of the chain's first certificate",
            "give the key the certificate was issued for, and the server's own certificate first in the chain "
            "(openssl x509 -pubkey -noout and openssl pkey -pubout print the same key for a matching pair)",
        )


def _check_dates(chain: list[x509.Certificate], now: dt.datetime) -> None:
    for position, cert in enumerate(chain, 1):
        which = "the certificate" if position == 1 else f"certificate {position} of the chain (an intermediate)"
        if cert.not_valid_before_utc > now:
            raise PublicCertificateProblem(
                "certificate", f"holds {which}, not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
                "check the controller's clock, or wait until it is valid before converging",
            )
        if cert.not_valid_after_utc <= now:
            raise PublicCertificateProblem(
                "certificate", f"holds {which}, expired on {cert.not_valid_after_utc:%Y-%m-%d}",
                "renew the certificate at its CA and give the new chain and key (both secrets)",
            )


def _check_server_use(certificate: x509.Certificate) -> None:
    # Browsers refuse a certificate whose extended key usage leaves out serverAuth (a client certificate, say).
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if ExtendedKeyUsageOID.SERVER_AUTH not in usages:
        raise PublicCertificateProblem("certificate", "is not a server certificate (its extended key usage lacks serverAuth)",
                                       "give the TLS server certificate issued for Grafana's name")


def _check_order(chain: list[x509.Certificate]) -> None:
    # Grafana sends the chain as given; clients build the path from it in order.
    for position, (cert, issuer) in enumerate(zip(chain, chain[1:]), 2):
        if cert.issuer != issuer.subject:
            raise PublicCertificateProblem(
                "certificate", f"is out of order: certificate {position} of the chain did not issue the one before it",
                "put the server's certificate first, then the intermediate that signed it, and so on (the root may be left out)",
            )


def _check_names(certificate: x509.Certificate, host: str, where: str) -> None:
    if not covers(certificate, host):
        raise PublicCertificateProblem(
            "certificate", f"is not for {host} ({where}): none of its subjectAltNames covers it",
            f"give a certificate for {host} (`openssl x509 -noout -ext subjectAltName` lists its names), or set "
            "grafana.root_url to the name users reach Grafana at, which the certificate covers",
        )


def check_pair(chain_pem: str, key_pem: str, host: str, where: str = "the host of grafana.root_url",
               now: dt.datetime | None = None) -> None:
    """Refuse a pair Grafana cannot serve to browsers reaching `host`: PublicCertificateProblem, first problem only."""
    chain, key = load_pair(chain_pem, key_pem)
    _check_key(chain, key)
    _check_dates(chain, now or _now())
    _check_server_use(chain[0])
    _check_order(chain)
    _check_names(chain[0], host, where)
