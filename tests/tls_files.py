"""A service's TLS files written under a temporary root, for checkers that open them (promtool)."""

from __future__ import annotations

from pathlib import Path

from roles._pki import CertificateAuthority
from roles._tls import TlsPaths


def tls_on_disk(root: Path, service: str, host: str = "mon1") -> TlsPaths:
    """TlsPaths of `service` under `root`, with a CA, a certificate for `host` and its key in place."""
    ca = CertificateAuthority.open("test", root / "pki")
    leaf = ca.issue(host, service, (host,), ("127.0.0.1",))
    paths = TlsPaths(service, base=str(root / "etc"))
    Path(paths.dir).mkdir(parents=True, exist_ok=True)
    Path(paths.ca).write_text(leaf.ca_pem)
    Path(paths.cert).write_text(leaf.cert_pem)
    Path(paths.key).write_text(leaf.key_pem)
    return paths
