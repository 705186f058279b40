"""Throwaway certificate chains for the tests of Grafana's public certificate, made here with `cryptography`
(nothing is committed): a root, an intermediate and a server certificate, PEM, like a public CA's.

`chain(...)` returns the PEMs the operator would put in the two secrets; the root stays out of the chain
(public CAs' roots are in the browsers' and hosts' trust stores, not in the served chain) and is kept for
tests that verify against it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class PublicPair:
    """What the operator names as grafana.public_certificate_secret and public_key_secret, and the root it chains to."""

    chain_pem: str  # the server's certificate, then the intermediate
    key_pem: str
    root_pem: str

    def __repr__(self) -> str:  # the key never in a test's output
        return "PublicPair(...)"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def _ca(cn: str, key, issuer: x509.Name | None = None, issuer_key=None) -> x509.Certificate:
    now = _now()
    return (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer or _name(cn)).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30)).not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(issuer_key or key, hashes.SHA256())
    )


def _san(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    """IPs become IP entries, other names DNS entries; "dns:<name>" is a DNS entry whatever it spells."""
    entries: list[x509.GeneralName] = []
    for name in names:
        if name.startswith("dns:"):
            entries.append(x509.DNSName(name[4:]))
            continue
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def chain(names: tuple[str, ...] = ("grafana.example.test",), starts_in_days: float = -1, ends_in_days: float = 90,
          server_key=None, cn: str = "grafana.example.test") -> PublicPair:
    """A root, an intermediate it signed, and a server certificate for `names` (DNS names or IPs) valid from
    `starts_in_days` to `ends_in_days` from now (negative: in the past). `names` empty: no subjectAltName at all."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _ca("Test Public Root", root_key)
    mid_key = ec.generate_private_key(ec.SECP256R1())
    mid = _ca("Test Public Intermediate", mid_key, root.subject, root_key)
    key = server_key or ec.generate_private_key(ec.SECP256R1())
    now = _now()
    builder = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(mid.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=starts_in_days)).not_valid_after(now + dt.timedelta(days=ends_in_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    if names:
        builder = builder.add_extension(_san(names), critical=False)
    server = builder.sign(mid_key, hashes.SHA256())
    return PublicPair(_pem(server) + _pem(mid), key_pem(key), _pem(root))


def other_key() -> str:
    """A key that belongs to no certificate of any chain here."""
    return key_pem(ec.generate_private_key(ec.SECP256R1()))


def secret_lines(pair: PublicPair) -> list[str]:
    """Every line of the two secrets' values that must never reach a message (the BEGIN/END markers are not values)."""
    return [line for pem in (pair.chain_pem, pair.key_pem) for line in pem.splitlines() if not line.startswith("-----")]


def serve_https(pair: PublicPair, directory, body: bytes = b'{"database": "ok"}'):
    """A local https server on 127.0.0.1 serving `pair`'s chain (server certificate and intermediate) and
    answering every GET and POST with `body`: Grafana's certificate as a client sees it. Shut it down after."""
    import http.server
    import ssl
    import threading
    from pathlib import Path

    directory = Path(directory)
    (directory / "chain.pem").write_text(pair.chain_pem)
    (directory / "key.pem").write_text(pair.key_pem)

    class Answer(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "chain.pem", directory / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
