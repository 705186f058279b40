"""The environment CA: TLS certificates for the stack's listeners and identities for its clients.

Everything here runs on the controller. The CA's key is read or made in the PKI
directory (`pki_dir`) and never leaves it: roles get a leaf certificate, its key and
the CA's certificate, nothing else.

- **The CA**: the operator's (the secrets SENTINEL_TLS_CA_CERT and SENTINEL_TLS_CA_KEY,
  PEM), else one made once per environment and kept in the PKI directory.
- **Leaves**: one per host and component (`issue`), ECDSA P-256. A server
  certificate names the host as the topology does (its address and name as DNS names,
  its IP as an IP address; 127.0.0.1 for checks on the host itself). Every leaf also
  carries its identity as a URI (`identity_uri`): exporter-toolkit's
  `client_allowed_sans` admits a client by it, so a valid certificate of the wrong
  component (app1's node_exporter against Alertmanager) is refused.
- **Renewal**: a leaf lives the host's `tls.lifetime_days` (LIFETIME by default,
  roles/_tls_settings.py) and is issued again only inside the renewal window
  (`tls.renew_within_days`, RENEW_BEFORE by default, before its end), or when what it
  should say changed (names, CA, lifetime). A second converge finds the same files and
  changes nothing.
- **The operator's CA** is checked by preflight before any host is touched
  (`check_operator_ca`: the pair matches, it is a CA, it outlives a leaf issued now), and
  again when opened here; the refusals name the secret and the fix, never key material.

The directory is 0700 and every key in it 0600; the operator's client certificate
("operator", for amtool, the lab's tests and benches) is issued here too.

- **A rollover** of the toolkit's own CA (`python -m roles.ca_rollover`, docs/tls.md "CA rollover")
  keeps a second CA beside the current one: `next/ca.{crt,key}` after `begin`, `retiring/ca.crt`
  (the certificate only: its key is deleted) after `promote`, none after `finish`. `ca_pem` is the
  trust bundle every host and the operator's files get: the current CA first, then the next or the
  retiring one. Leaves are always issued by the current CA.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from roles._tls_settings import DEFAULT_LIFETIME_DAYS, DEFAULT_RENEW_WITHIN_DAYS

# The defaults of the `tls` settings block; a host's own come from its settings (roles/_tls.py).
LIFETIME = dt.timedelta(days=DEFAULT_LIFETIME_DAYS)
RENEW_BEFORE = dt.timedelta(days=DEFAULT_RENEW_WITHIN_DAYS)
CA_LIFETIME = dt.timedelta(days=3650)
# Clocks of hosts a little behind the controller still accept a certificate issued now.
BACKDATE = dt.timedelta(minutes=5)

CA_CERT_SECRET = "SENTINEL_TLS_CA_CERT"
CA_KEY_SECRET = "SENTINEL_TLS_CA_KEY"
# A rollover of the operator's CA: certificates trusted beside it during the overlap (docs/tls.md
# "CA rollover": the next CA before the switch, the previous one after it). Certificates only.
ALSO_TRUSTED_SECRET = "SENTINEL_TLS_ALSO_TRUSTED_CA"
OPERATOR = "operator"


class PkiError(ValueError):
    """The CA cannot be used; the message names the fix and never holds key material.

    `key`: the secret (or file) at fault, for preflight's report; `problem` and `fix` as in SettingsError."""

    def __init__(self, problem: str, fix: str, key: str = CA_CERT_SECRET):
        self.key, self.problem, self.fix = key, problem, fix
        super().__init__(f"{problem}. Fix: {fix}")


def pki_dir(environment: str) -> Path:
    """$SENTINEL_PKI_DIR/<environment>, else the operator's config dir (~/.config/sentinel/pki/<environment>)."""
    base = os.environ.get("SENTINEL_PKI_DIR")
    if not base:
        config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        base = str(Path(config) / "sentinel" / "pki")
    return Path(base) / environment


def identity_uri(environment: str, host: str | None, component: str) -> str:
    """The identity a certificate carries (a URI SAN), e.g. spiffe://sentinel/lab/mon1/prometheus."""
    return f"spiffe://sentinel/{environment}/{host}/{component}" if host else f"spiffe://sentinel/{environment}/{component}"


@dataclass(frozen=True)
class Leaf:
    """A leaf certificate for a host: its PEMs and the trust bundle (`ca_pem`: the current CA, then a rollover's
    next or retiring one), as the role writes them. The certificate itself names its issuer."""

    name: str
    cert_pem: str
    key_pem: str
    ca_pem: str
    not_after: dt.datetime

    def __repr__(self) -> str:  # the key never in a repr
        return f"Leaf({self.name!r}, not_after={self.not_after.isoformat()})"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Atomically, created with `mode` (never briefly readable by others)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


class CertificateAuthority:
    """The environment's CA and the leaves it issued, in one directory on the controller."""

    def __init__(self, directory: Path, environment: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | object,
                 also_trusted: tuple[x509.Certificate, ...] = ()):
        self.directory, self.environment, self.cert, self._key = directory, environment, cert, key
        self.also_trusted = tuple(also_trusted)  # a rollover's next or retiring CA (certificates only)

    def __repr__(self) -> str:
        return f"CertificateAuthority({self.environment!r}, {self.cert.subject.rfc4514_string()!r})"

    @property
    def cert_pem(self) -> str:
        """The current CA's certificate alone: the issuer of every leaf issued now."""
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def ca_pem(self) -> str:
        """The trust bundle (PEM): the current CA, then a rollover's next or retiring CA. What hosts and
        the operator's files trust; the same text for the same phase (a second converge changes nothing)."""
        return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in (self.cert, *self.also_trusted))

    # --- the CA -----------------------------------------------------------------------

    @classmethod
    def open(cls, environment: str, directory: Path | None = None, operator_cert: str | None = None,
             operator_key: str | None = None, now: dt.datetime | None = None,
             lifetime: dt.timedelta = LIFETIME, also_trusted: str | None = None) -> "CertificateAuthority":
        """The operator's CA when given (PEMs), else the directory's own, made on first use.
        `lifetime`: the longest a leaf it issues lives (the operator's CA must outlive one issued now).
        `also_trusted`: CA certificates trusted beside the current one (ALSO_TRUSTED_SECRET: an operator's CA
        rollover, or the switch between the toolkit's own CA and an operator's)."""
        directory = directory or pki_dir(environment)
        now = now or _now()
        _private_dir(directory)
        if operator_cert or operator_key:
            cert, key = check_operator_ca(operator_cert, operator_key, lifetime, now)
            return cls(directory, environment, cert, key, check_also_trusted(also_trusted, cert, now))
        with _locked(directory):
            cert_path, key_path = directory / "ca.crt", directory / "ca.key"
            if not key_path.exists():
                _new_ca(directory, _ca_name(environment), now)
            key = serialization.load_pem_private_key(key_path.read_bytes(), None)
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            os.chmod(key_path, 0o600)
            # Its own rollover's next or retiring CA; and an operator's CA while the environment switches to it.
            also = rollover_trust(directory) + check_also_trusted(also_trusted, cert, now)
        return cls(directory, environment, cert, key, also)

    # --- leaves -----------------------------------------------------------------------

    def issue(self, host: str | None, component: str, dns: tuple[str, ...] = (), ips: tuple[str, ...] = (),
              lifetime: dt.timedelta = LIFETIME, renew_before: dt.timedelta = RENEW_BEFORE,
              now: dt.datetime | None = None) -> Leaf:
        """The leaf of `component` on `host` (None: the operator's): the one on file while it still says
        the same and is outside its renewal window, else a new one."""
        now = now or _now()
        name = f"{host}.{component}" if host else component
        uri = identity_uri(self.environment, host, component)
        wanted = _names(uri, dns, ips)
        leaves = self.directory / "leaves"
        with _locked(self.directory):
            _private_dir(leaves)
            cert_path, key_path = leaves / f"{name}.crt", leaves / f"{name}.key"
            if cert_path.exists() and key_path.exists():
                cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
                key = serialization.load_pem_private_key(key_path.read_bytes(), None)
                if self._still_good(cert, key, wanted, now, lifetime, renew_before):
                    return self._leaf(name, cert, key_path.read_bytes())
            key = ec.generate_private_key(ec.SECP256R1())
            builder = (
                x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - BACKDATE).not_valid_after(now + lifetime)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
                # Every leaf is a server (its listener) and a client (its scrapes, pushes, checks).
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.SubjectAlternativeName(wanted), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.cert.public_key()), critical=False)
            )
            cert = builder.sign(self._key, hashes.SHA256())
            key_bytes = _key_pem(key)
            _write_private(key_path, key_bytes)
            _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
            return self._leaf(name, cert, key_bytes)

    def _leaf(self, name: str, cert: x509.Certificate, key_pem: bytes) -> Leaf:
        return Leaf(name, cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode(), self.ca_pem,
                    cert.not_valid_after_utc)

    def _still_good(self, cert: x509.Certificate, key, wanted: list[x509.GeneralName], now: dt.datetime,
                    lifetime: dt.timedelta, renew_before: dt.timedelta) -> bool:
        if cert.public_key().public_numbers() != key.public_key().public_numbers():
            return False
        if cert.issuer != self.cert.subject or not _signed_by(cert, self.cert):
            return False  # another CA's (a rollover): issue from the current one
        try:
            names = list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            return False
        if sorted(map(repr, names)) != sorted(map(repr, wanted)):
            return False
        if cert.not_valid_after_utc - cert.not_valid_before_utc != lifetime + BACKDATE:
            return False  # issued for another tls.lifetime_days: the new lifetime applies now, not at the next renewal
        return cert.not_valid_after_utc - now > renew_before

    def operator_files(self, lifetime: dt.timedelta = LIFETIME, renew_before: dt.timedelta = RENEW_BEFORE) -> tuple[Path, Path, Path]:
        """(CA, certificate, key) files of the operator's client identity, issued when due: for amtool,
        curl, the lab's tests. They stay on the controller."""
        leaf = self.issue(None, OPERATOR, lifetime=lifetime, renew_before=renew_before)
        leaves = self.directory / "leaves"
        ca = self.directory / "ca-bundle.crt"
        if not ca.exists() or ca.read_text() != self.ca_pem:
            _write_private(ca, self.ca_pem.encode(), 0o644)
        cert, key = leaves / f"{leaf.name}.crt", leaves / f"{leaf.name}.key"
        # amtool's (and promtool's) --http.config.file: the operator's identity for the TLS listeners.
        http_config = self.directory / "operator-http-config.yml"
        text = (f"# amtool --alertmanager.url=https://<monitoring host>:9093 --http.config.file={http_config} ...\n"
                f"tls_config:\n  ca_file: {ca}\n  cert_file: {cert}\n  key_file: {key}\n  min_version: TLS12\n")
        if not http_config.exists() or http_config.read_text() != text:
            _write_private(http_config, text.encode(), 0o600)
        return ca, cert, key


def _ca_name(environment: str, generation: str | None = None) -> x509.Name:
    """The CA's subject; a rollover's next CA carries when it was made, so that no two CAs of the
    environment share a subject (every TLS stack then picks the issuer by name, not by trial)."""
    cn = f"Sentinel {environment} CA" + (f" {generation}" if generation else "")
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sentinel observability"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def _new_ca(directory: Path, name: x509.Name, now: dt.datetime) -> x509.Certificate:
    """A self-signed CA (EC P-256, CA_LIFETIME) in `directory` (ca.crt 0644, ca.key 0600). Call it locked."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE).not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(directory / "ca.key", _key_pem(key))
    _write_private(directory / "ca.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert


# --- a rollover of the toolkit's own CA (python -m roles.ca_rollover) ----------------------------------

NEXT, RETIRING = "next", "retiring"
STEADY, BEGUN, PROMOTED = "steady", "begun", "promoted"  # the phases, as `rollover_phase` names them


def rollover_phase(directory: Path) -> str:
    """STEADY (one CA), BEGUN (a next CA beside the current) or PROMOTED (the retiring CA's certificate
    beside the new current). PkiError when both are there: a promote was interrupted."""
    has_next, has_retiring = (directory / NEXT / "ca.crt").exists(), (directory / RETIRING / "ca.crt").exists()
    if has_next and has_retiring:
        raise PkiError(f"a CA rollover's promote was interrupted in {directory} (both {NEXT}/ and {RETIRING}/ are there)",
                       f"run `python -m roles.ca_rollover {directory.name} promote` again to complete it", str(directory))
    return BEGUN if has_next else PROMOTED if has_retiring else STEADY


def ca_state(directory: Path) -> tuple:
    """What a rollover step (or a new CA) changes: the current, next and retiring CA files' inode and mtime.
    A key for caches of an opened CA in long-lived processes (a test session), so none outlives a step."""
    state = []
    for path in (directory / "ca.crt", directory / NEXT / "ca.crt", directory / RETIRING / "ca.crt"):
        try:
            st = path.stat()
            state.append((st.st_ino, st.st_mtime_ns))
        except FileNotFoundError:
            state.append(None)
    return tuple(state)


def rollover_trust(directory: Path) -> tuple[x509.Certificate, ...]:
    """The certificates trusted beside the current CA: the next one (BEGUN) or the retiring one (PROMOTED)."""
    phase = rollover_phase(directory)
    if phase == STEADY:
        return ()
    path = directory / (NEXT if phase == BEGUN else RETIRING) / "ca.crt"
    try:
        return (x509.load_pem_x509_certificate(path.read_bytes()),)
    except ValueError:
        raise PkiError(f"{path} is not a PEM certificate", "restore the PKI directory from its backup (docs/tls.md)",
                       str(path)) from None


def _rollover_refusal(directory: Path, step: str, phase: str) -> PkiError:
    env = directory.name
    cli = f"python -m roles.ca_rollover {env}"
    fixes = {
        STEADY: f"no rollover is under way: start one with `{cli} begin`",
        BEGUN: f"a rollover has begun (a next CA is in {NEXT}/): converge every host, then `{cli} promote`",
        PROMOTED: f"the new CA is current and the old one retiring: converge every host, then `{cli} finish`",
    }
    return PkiError(f"`{step}` does not follow the phase {phase!r} of {directory}", fixes[phase], str(directory))


def rollover_begin(directory: Path, environment: str, now: dt.datetime | None = None) -> x509.Certificate:
    """Make the next CA in `next/` (the current one keeps issuing); the hosts trust both after a converge."""
    now = now or _now()
    if not (directory / "ca.key").exists():
        raise PkiError(f"{directory} holds no CA of the toolkit's own",
                       "converge once first (it makes the CA); there is nothing to roll over yet", str(directory))
    with _locked(directory):
        phase = rollover_phase(directory)
        if phase != STEADY:
            raise _rollover_refusal(directory, "begin", phase)
        staging = directory / NEXT
        _private_dir(staging)
        return _new_ca(staging, _ca_name(environment, now.strftime("%Y-%m-%dT%H%M%SZ")), now)


def rollover_promote(directory: Path) -> None:
    """The next CA becomes the current one; the current one's certificate goes to `retiring/` (still trusted)
    and its key is deleted. Completes an interrupted promote when run again."""
    with _locked(directory):
        nxt, retiring = directory / NEXT, directory / RETIRING
        has_next, has_retiring = (nxt / "ca.crt").exists(), (retiring / "ca.crt").exists()
        if not has_next:
            raise _rollover_refusal(directory, "promote", PROMOTED if has_retiring else STEADY)
        if not has_retiring:  # not yet begun: the current certificate is the one to retire
            _private_dir(retiring)
            _write_private(retiring / "ca.crt", (directory / "ca.crt").read_bytes(), 0o644)
        if (nxt / "ca.key").exists():  # replacing ca.key unlinks the old key: it signs nothing again
            os.replace(nxt / "ca.key", directory / "ca.key")
        os.replace(nxt / "ca.crt", directory / "ca.crt")
        for leftover in nxt.iterdir():
            leftover.unlink()
        nxt.rmdir()


def stale_leaves(directory: Path) -> list[str]:
    """The leaves on file not issued by the current CA (hosts, or controller identities, not converged or
    used since promote)."""
    current = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    stale = []
    for path in sorted((directory / "leaves").glob("*.crt")):
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except ValueError:
            continue
        if not _signed_by(cert, current):
            stale.append(path.stem)
    return stale


def rollover_finish(directory: Path, force: bool = False) -> None:
    """Stop trusting the retiring CA. Refused while a leaf on file is still the retiring CA's, unless `force`."""
    with _locked(directory):
        phase = rollover_phase(directory)
        if phase != PROMOTED:
            raise _rollover_refusal(directory, "finish", phase)
        stale = stale_leaves(directory)
        if stale and not force:
            shown = ", ".join(stale[:10]) + (f" and {len(stale) - 10} more" if len(stale) > 10 else "")
            raise PkiError(f"{len(stale)} certificate(s) on file are still the retiring CA's: {shown}",
                           "converge every host (and run the tools that use a controller identity, e.g. the erasure "
                           "command) so they are issued again by the new CA; or pass --force for certificates of hosts "
                           "that are gone", str(directory))
        retiring = directory / RETIRING
        for path in retiring.iterdir():
            path.unlink()
        retiring.rmdir()


def _names(uri: str, dns: tuple[str, ...], ips: tuple[str, ...]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)]
    names += [x509.DNSName(d) for d in sorted(set(dns))]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in sorted(set(ips))]
    return names


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def check_operator_ca(cert_pem: str | None, key_pem: str | None, lifetime: dt.timedelta = LIFETIME,
                      now: dt.datetime | None = None):
    """(certificate, key) of the operator's CA, or PkiError naming the secret and the fix.

    Refused: half given, not PEM, a key that is not the certificate's, a key the CA cannot sign
    with here (EC and RSA only), a certificate that is not a CA (basicConstraints CA:TRUE, and
    keyCertSign when it has a key usage), not valid yet, expired, or ending before a leaf issued
    now (`lifetime`) would. Preflight runs this before any host is touched; no message holds key
    material."""
    now = now or _now()
    if not cert_pem or not key_pem:
        missing, given = (CA_KEY_SECRET, CA_CERT_SECRET) if cert_pem else (CA_CERT_SECRET, CA_KEY_SECRET)
        raise PkiError(f"the operator's CA is half given: {missing} is not set ({given} is)",
                       f"set both {CA_CERT_SECRET} and {CA_KEY_SECRET} (PEM), or neither to let the toolkit keep its own CA", missing)
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        cert.public_key()  # a key type cryptography cannot read is refused here, not while issuing
    except (ValueError, UnsupportedAlgorithm):
        raise PkiError(f"{CA_CERT_SECRET} is not a PEM certificate",
                       "give the CA's certificate (-----BEGIN CERTIFICATE-----)", CA_CERT_SECRET) from None
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise PkiError(f"{CA_KEY_SECRET} is not an unencrypted PEM private key",
                       "give the CA's key without a passphrase (openssl pkey -in ca.key -out ca-plain.key)", CA_KEY_SECRET) from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise PkiError(f"the key in {CA_KEY_SECRET} is neither EC nor RSA; the toolkit signs with SHA-256 and cannot use it",
                       "give a CA with an EC (P-256, P-384) or RSA key", CA_KEY_SECRET)
    if _public(cert.public_key()) != _public(key.public_key()):
        raise PkiError(f"the key in {CA_KEY_SECRET} does not match the certificate in {CA_CERT_SECRET}",
                       "give the pair that belongs together (openssl x509 -pubkey and openssl pkey -pubout print the same key)",
                       CA_KEY_SECRET)
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    try:
        signs = cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    except x509.ExtensionNotFound:
        signs = True  # no key usage: not restricted
    if not is_ca or not signs:
        what = "basicConstraints CA:TRUE" if not is_ca else "the keyCertSign key usage"
        raise PkiError(f"the certificate in {CA_CERT_SECRET} is not a CA (it lacks {what})",
                       "give the issuing CA's certificate and key, not a leaf's", CA_CERT_SECRET)
    if cert.not_valid_before_utc > now:
        raise PkiError(f"the CA in {CA_CERT_SECRET} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
                       "check the controller's clock, or give a CA valid now", CA_CERT_SECRET)
    if cert.not_valid_after_utc <= now:
        raise PkiError(f"the CA in {CA_CERT_SECRET} expired on {cert.not_valid_after_utc:%Y-%m-%d}",
                       "renew the CA and give the new pair (both secrets)", CA_CERT_SECRET)
    if cert.not_valid_after_utc <= now + lifetime:
        raise PkiError(
            f"the CA in {CA_CERT_SECRET} expires {cert.not_valid_after_utc:%Y-%m-%d}, before a certificate issued now "
            f"(tls.lifetime_days {lifetime.days}) would",
            "renew the CA and give the new pair, or lower tls.lifetime_days below the days the CA has left", CA_CERT_SECRET)
    return cert, key


def check_also_trusted(pem: str | None, current: x509.Certificate, now: dt.datetime | None = None) -> tuple[x509.Certificate, ...]:
    """The CA certificates of ALSO_TRUSTED_SECRET, trusted beside the operator's current CA during its rollover,
    or PkiError naming the secret and the fix. Refused: not PEM certificates; one that is not a CA; one that has
    expired (nothing it signed is accepted any more: drop it); the current CA itself; another CA with the
    current one's subject (OpenSSL-based peers look an issuer up by subject and could try the wrong one)."""
    if not pem:
        return ()
    now = now or _now()
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise PkiError(f"{ALSO_TRUSTED_SECRET} is not PEM certificates",
                       "give the CA certificates to trust beside the current one (-----BEGIN CERTIFICATE-----), no key",
                       ALSO_TRUSTED_SECRET) from None
    for cert in certs:
        subject = cert.subject.rfc4514_string()
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise PkiError(f"{ALSO_TRUSTED_SECRET} holds {subject!r}, which is not a CA (no basicConstraints CA:TRUE)",
                           "give only CA certificates: the next CA before the switch, the previous one after it", ALSO_TRUSTED_SECRET)
        if cert.not_valid_after_utc <= now:
            raise PkiError(f"the CA {subject!r} in {ALSO_TRUSTED_SECRET} expired on {cert.not_valid_after_utc:%Y-%m-%d}",
                           "remove it from the secret: nothing it signed is accepted any more", ALSO_TRUSTED_SECRET)
        if _public(cert.public_key()) == _public(current.public_key()):
            raise PkiError(f"{ALSO_TRUSTED_SECRET} holds the current CA ({CA_CERT_SECRET}) itself",
                           "give the other CA of the rollover: the next one before the switch, the previous one after it",
                           ALSO_TRUSTED_SECRET)
        if cert.subject == current.subject:
            raise PkiError(f"the CA in {ALSO_TRUSTED_SECRET} has the current CA's subject {subject!r}",
                           "give the new CA a subject of its own (for example with the year in its CN): peers look an "
                           "issuer up by subject", ALSO_TRUSTED_SECRET)
    return tuple(certs)


def check_operator_overlap(directory: Path, current: x509.Certificate, also: tuple[x509.Certificate, ...]) -> None:
    """Refuse ending an operator CA's overlap too early: with nothing trusted beside the current CA, every
    leaf on file must be the current CA's. One that is not belongs to a host no converge reached since the
    switch (or to the CA before it): its peers would refuse it after this converge."""
    if also or not (directory / "leaves").is_dir():
        return
    stale = [path.stem for path in sorted((directory / "leaves").glob("*.crt")) if not _leaf_signed_by(path, current)]
    if stale:
        shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
        raise PkiError(
            f"certificates on file in {directory / 'leaves'} are not the current CA's ({shown}), and {ALSO_TRUSTED_SECRET} "
            "trusts no other CA: after this converge their hosts' peers would refuse them",
            f"keep the previous CA in {ALSO_TRUSTED_SECRET} until one converge of every host after the switch "
            "(docs/tls.md \"CA rollover\": the operator's CA); for a host that is gone, remove its leaves/<host>.* files",
            ALSO_TRUSTED_SECRET)


def _leaf_signed_by(path: Path, ca: x509.Certificate) -> bool:
    try:
        return _signed_by(x509.load_pem_x509_certificate(path.read_bytes()), ca)
    except ValueError:
        return True  # not a certificate: not a leaf of any CA to worry about


def _public(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def check_own_ca(environment: str, lifetime: dt.timedelta = LIFETIME, now: dt.datetime | None = None) -> None:
    """The toolkit's own CA, when the PKI directory has one: PkiError when it ends before a leaf issued
    now would. Reads the certificate only; makes nothing."""
    directory = pki_dir(environment)
    now = now or _now()
    # During a rollover the next CA must outlive a leaf too (it issues every leaf after promote).
    paths = [directory / "ca.crt"]
    if directory.is_dir() and rollover_phase(directory) == BEGUN:
        paths.append(directory / NEXT / "ca.crt")
    for cert_path in paths:
        if cert_path.is_file():
            _check_own_ca_cert(cert_path, lifetime, now)


def _check_own_ca_cert(cert_path: Path, lifetime: dt.timedelta, now: dt.datetime) -> None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except ValueError:
        raise PkiError(f"{cert_path} is not a PEM certificate",
                       "restore the PKI directory from its backup (docs/tls.md)", str(cert_path)) from None
    if cert.not_valid_after_utc <= now + lifetime:
        raise PkiError(
            f"the environment CA {cert_path} expires {cert.not_valid_after_utc:%Y-%m-%d}, before a certificate issued now "
            f"(tls.lifetime_days {lifetime.days}) would",
            "give a new CA as SENTINEL_TLS_CA_CERT and SENTINEL_TLS_CA_KEY (or move the directory aside for a new own CA; "
            "every host's certificate is then issued again); next time roll it over in time "
            "(python -m roles.ca_rollover, docs/tls.md \"CA rollover\")", str(cert_path))


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


@contextmanager
def _locked(directory: Path):
    """One issuer at a time (a deploy and a test run may both ask for leaves)."""
    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def operator_ca_secrets() -> tuple[str | None, str | None]:
    """(certificate, key) PEMs of the operator's CA from the secrets, None where unset."""
    from roles._secrets import SecretProblem, read_secret

    values = []
    for name in (CA_CERT_SECRET, CA_KEY_SECRET):
        try:
            values.append(read_secret(name, multi_line=True))
        except SecretProblem as err:
            raise PkiError(err.problem, err.fix, name) from None
    return values[0], values[1]


def operator_also_trusted() -> str | None:
    """ALSO_TRUSTED_SECRET's PEM, None when unset."""
    from roles._secrets import SecretProblem, read_secret

    try:
        return read_secret(ALSO_TRUSTED_SECRET, multi_line=True)
    except SecretProblem as err:
        raise PkiError(err.problem, err.fix, ALSO_TRUSTED_SECRET) from None


def environment_ca(environment: str, lifetime: dt.timedelta = LIFETIME) -> CertificateAuthority:
    """The run's CA: the operator's from the secrets when set (with the CAs trusted beside it during its
    rollover), else the PKI directory's own. `lifetime`: the longest-lived leaf it will issue (the hosts'
    tls.lifetime_days)."""
    cert, key = operator_ca_secrets()
    also = operator_also_trusted()
    return CertificateAuthority.open(environment, operator_cert=cert, operator_key=key, lifetime=lifetime, also_trusted=also)
