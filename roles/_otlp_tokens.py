"""The gateway's bearer tokens: one per OTLP sender, generated on the controller, rotated in two phases.

A certificate of the environment CA is not enough to send telemetry: configtls admits any certificate of
the CA (it has no list of names, docs/tls.md), so a host in the OTLP flow could send with another
service's certificate. Each sender the topology names (the clients of the flows to the gateway's OTLP
listeners, `<host>.agent`) and the operator's tools (`operator`) also get a token of their own, and the
gateway's receivers admit a request only with one of them (the contrib `bearertokenauth` extension,
which reads one token per line from a file and follows the file's changes).

The tokens live beside the environment CA, in `<pki dir>/otlp-tokens/` (0700; each file 0600): the
file `<sender>` is the token the sender uses; during a rotation `<sender>.next` (begun: accepted, not
used yet) or `<sender>.previous` (promoted: still accepted, no longer used). Nothing here prints a token.

    python -m roles.otlp_token_rotation <environment> status|begin|promote|finish   # each step, then converge
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from roles._pki import OPERATOR, PkiError, _locked, _private_dir, _write_private, pki_dir

if TYPE_CHECKING:
    from roles._topology import Topology

DIRECTORY = "otlp-tokens"
# The gateway's listeners whose senders need a token (the agent's own receiver on its host's loopback
# admits the backend by its certificate alone).
GATEWAY_LISTENERS = ("gateway.otlp_grpc", "gateway.otlp_http")
NEXT, PREVIOUS = ".next", ".previous"
STEADY, BEGUN, PROMOTED = "steady", "begun", "promoted"
CLI = "python -m roles.otlp_token_rotation"


def token_dir(environment: str) -> Path:
    return pki_dir(environment) / DIRECTORY


def senders(topology: "Topology") -> list[str]:
    """Every sender that gets a token: each client host of a flow to the gateway (`<host>.<component>`, the
    name its certificate carries), then the operator's tools."""
    from roles._tls import common_name

    names = {common_name(host, flow.client) for listener in GATEWAY_LISTENERS for host, flow in topology.clients(listener)}
    return sorted(names) + [OPERATOR]


def _new_token() -> str:
    # 256 bits, URL-safe: no whitespace (the gateway's file splits on it) and nothing a header must quote.
    return secrets.token_urlsafe(32)


def _check_sender(sender: str) -> None:
    if not sender or "/" in sender or sender.startswith(".") or sender.endswith((NEXT, PREVIOUS)):
        raise ValueError(f"not a sender name: {sender!r}")


def token(environment: str, sender: str) -> str:
    """The token `sender` sends: made on first use."""
    _check_sender(sender)
    directory = token_dir(environment)
    path = directory / sender
    if not path.exists():
        _private_dir(directory)
        with _locked(directory):
            if not path.exists():
                _write_private(path, _new_token().encode())
    return path.read_text().strip()


def accepted(environment: str, names: Iterable[str]) -> str:
    """The gateway's token file: one line per accepted token, `<token> <sender>[ next|previous]` (the
    extension reads the first word of each line), every sender's current token made where missing."""
    lines = []
    for sender in names:
        lines.append(f"{token(environment, sender)} {sender}")
        for suffix in (NEXT, PREVIOUS):
            path = token_dir(environment) / f"{sender}{suffix}"
            if path.exists():
                lines.append(f"{path.read_text().strip()} {sender} {suffix[1:]}")
    return "\n".join(lines) + "\n"


def phase(environment: str) -> str:
    directory = token_dir(environment)
    if not directory.is_dir():
        return STEADY
    names = [p.name for p in directory.iterdir()]
    if any(n.endswith(PREVIOUS) for n in names):
        return PROMOTED
    if any(n.endswith(NEXT) for n in names):
        return BEGUN
    return STEADY


def _refusal(environment: str, step: str, current: str) -> PkiError:
    fixes = {
        STEADY: f"no rotation is under way: start one with `{CLI} {environment} begin`",
        BEGUN: f"a rotation has begun: converge every gateway, then `{CLI} {environment} promote`",
        PROMOTED: f"the senders use their new tokens and the gateways still accept the old ones: converge every host, "
                  f"then `{CLI} {environment} finish`",
    }
    return PkiError(f"`{step}` does not follow the phase {current!r} of the OTLP tokens", fixes[current],
                    str(token_dir(environment)))


def _current_senders(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith(".") and not p.name.endswith((NEXT, PREVIOUS, ".tmp")))


def begin(environment: str) -> list[str]:
    """A next token for every sender on file: the gateways accept it after a converge; no sender uses it yet."""
    directory = token_dir(environment)
    if not directory.is_dir():
        raise PkiError(f"{directory} holds no OTLP tokens", "converge once first (it makes them); there is nothing to rotate",
                       str(directory))
    with _locked(directory):
        if (now := phase(environment)) != STEADY:
            raise _refusal(environment, "begin", now)
        names = _current_senders(directory)
        for sender in names:
            _write_private(directory / f"{sender}{NEXT}", _new_token().encode())
        return names


def promote(environment: str) -> list[str]:
    """Each sender's next token becomes its current one; the old one stays accepted as `previous`."""
    directory = token_dir(environment)
    with _locked(directory):
        if (now := phase(environment)) != BEGUN:
            raise _refusal(environment, "promote", now)
        moved = []
        for sender in _current_senders(directory):
            nxt = directory / f"{sender}{NEXT}"
            if nxt.exists():
                (directory / sender).replace(directory / f"{sender}{PREVIOUS}")
                nxt.replace(directory / sender)
                moved.append(sender)
        return moved


def finish(environment: str) -> list[str]:
    """Stop accepting the previous tokens (after the converge that gave every sender its new one)."""
    directory = token_dir(environment)
    with _locked(directory):
        if (now := phase(environment)) != PROMOTED:
            raise _refusal(environment, "finish", now)
        dropped = []
        for path in sorted(directory.glob(f"*{PREVIOUS}")):
            path.unlink()
            dropped.append(path.name[: -len(PREVIOUS)])
        return dropped
