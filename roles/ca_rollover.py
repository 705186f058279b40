"""Roll the environment's own CA over with no outage: old and new trusted together while leaves move.

    python -m roles.ca_rollover <environment> status
    python -m roles.ca_rollover <environment> begin     # then converge every host
    python -m roles.ca_rollover <environment> promote   # then converge every host
    python -m roles.ca_rollover <environment> finish    # then converge every host

Each step changes the PKI directory on the controller only (roles/_pki.py `pki_dir`); the converge that
follows carries it to the hosts. Between steps every live leaf's issuer is in every host's trust file:

- `begin`: a next CA (new key, self-signed, the current one's shape) in `next/`. Converge: every trust
  file holds current + next; no leaf changes.
- `promote`: the current CA's certificate goes to `retiring/`, its key is deleted, the next CA becomes
  current. Converge: every leaf is issued again by the new CA; trust files hold new + retiring.
- `finish`: the retiring certificate is removed (refused while a leaf on file is still its, unless
  --force). Converge: trust files hold the new CA only; a certificate of the old CA is refused everywhere.

Each step also refreshes the controller's identities (the operator's `ca-bundle.crt`, certificate and
http config; the erasure identity when it exists). The operator's own CA (SENTINEL_TLS_CA_CERT/_KEY)
is rolled with the secrets instead (SENTINEL_TLS_ALSO_TRUSTED_CA, docs/tls.md "CA rollover"). Nothing printed holds
key material.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cryptography import x509

from roles import _pki
from roles._pki import BEGUN, NEXT, PROMOTED, RETIRING, STEADY, CertificateAuthority, PkiError

PHASES = {
    STEADY: "steady: one CA, no rollover under way",
    BEGUN: "begun: the next CA is trusted beside the current one (converge every host, then promote)",
    PROMOTED: "promoted: the new CA issues; the retiring one is still trusted (converge every host, then finish)",
}


def describe(role: str, cert: x509.Certificate) -> str:
    """One CA, as status prints it: subject, serial, not-after. Never a key."""
    return (f"  {role:<9} {cert.subject.rfc4514_string()}\n"
            f"            serial {cert.serial_number:x}, not after {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")


def status(directory: Path) -> str:
    phase = _pki.rollover_phase(directory)
    lines = [f"{directory.name}: {PHASES[phase]}"]
    current = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    lines.append(describe("current", current))
    for role, sub in (("next", NEXT), ("retiring", RETIRING)):
        path = directory / sub / "ca.crt"
        if path.exists():
            lines.append(describe(role, x509.load_pem_x509_certificate(path.read_bytes())))
    if phase == PROMOTED:
        stale = _pki.stale_leaves(directory)
        lines.append(f"  leaves still of the retiring CA: {', '.join(stale) if stale else 'none'}")
    return "\n".join(lines)


def refresh_controller_identities(environment: str, directory: Path) -> list[str]:
    """Issue the controller's identities (leaves with no host: the operator's, the erasure command's) from the
    CA as it is now and write the operator's bundle: they need no converge. Returns their names."""
    ca = CertificateAuthority.open(environment, directory)
    ca.operator_files()
    names = [_pki.OPERATOR]
    for path in sorted((directory / "leaves").glob("*.crt")):
        if "." not in path.stem and path.stem != _pki.OPERATOR:
            ca.issue(None, path.stem)
            names.append(path.stem)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m roles.ca_rollover", description=__doc__.split("\n\n")[0])
    parser.add_argument("environment", help="the environment whose own CA rolls over (its PKI directory)")
    parser.add_argument("step", choices=("status", "begin", "promote", "finish"))
    parser.add_argument("--force", action="store_true",
                        help="finish even when a certificate on file is still the retiring CA's (hosts that are gone)")
    args = parser.parse_args(argv)
    directory = _pki.pki_dir(args.environment)
    try:
        cert, key = _pki.operator_ca_secrets()
        if cert or key:
            raise PkiError(f"the environment {args.environment!r} uses the operator's CA ({_pki.CA_CERT_SECRET}), "
                           "which this command does not roll over",
                           f"roll it with the secrets: the new CA in {_pki.ALSO_TRUSTED_SECRET} first, then the new pair "
                           f"in {_pki.CA_CERT_SECRET}/{_pki.CA_KEY_SECRET} with the old CA in {_pki.ALSO_TRUSTED_SECRET}, "
                           "then that unset, a converge of every host after each (docs/tls.md \"CA rollover\": the "
                           "operator's CA)", _pki.CA_CERT_SECRET)
        if not (directory / "ca.crt").exists():
            raise PkiError(f"{directory} holds no CA", "converge once first (it makes the CA), or set SENTINEL_PKI_DIR "
                           "to the directory that holds it", str(directory))
        if args.step == "begin":
            _pki.rollover_begin(directory, args.environment)
        elif args.step == "promote":
            _pki.rollover_promote(directory)
        elif args.step == "finish":
            _pki.rollover_finish(directory, force=args.force)
        if args.step != "status":
            names = refresh_controller_identities(args.environment, directory)
            print(f"{args.step}: done; controller identities refreshed: {', '.join(names)}")
            print(f"next: converge every host of {args.environment!r} (pyinfra inventory/<env>.py deploy.py, or "
                  "python -m roles.rolling), and stay in this phase until every host was converged")
        print(status(directory))
    except PkiError as err:
        print(f"ca_rollover: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
