"""Connection attempts from one place in the lab to many ports, all at once.

Run as a script it reads a JSON list of [address, port] pairs on stdin and prints a
JSON object {"address:port": "open" | "refused" | "filtered"}: "refused" is a TCP
reset (nothing listens, or a firewall rejects), "filtered" a timeout (a firewall
dropped the SYN). It needs nothing but Python 3's standard library, so it runs
unchanged on the lab hosts (over SSH), inside the intruder's network namespace,
and on the controller.

`probe_from(place, targets)` runs it from a lab host, from the intruder, or from here.
`request_from_intruder(method, url)` sends one HTTP request from the intruder.
"""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TIMEOUT = 2.0  # seconds: a dropped SYN waits this long; a reset answers at once


def _connect(target: tuple[str, int]) -> str:
    address, port = target
    try:
        with socket.create_connection((address, port), timeout=TIMEOUT):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except (TimeoutError, socket.timeout):
        return "filtered"
    except OSError as err:  # unreachable, no route: nothing got through either way
        return f"error {err.errno}"


def probe(targets: list[tuple[str, int]]) -> dict[str, str]:
    with ThreadPoolExecutor(max(1, min(64, len(targets)))) as pool:
        results = pool.map(_connect, [(a, int(p)) for a, p in targets])
        return {f"{a}:{p}": r for (a, p), r in zip(targets, results)}


def _main() -> None:
    print(json.dumps(probe([tuple(t) for t in json.load(sys.stdin)])))


if __name__ == "__main__":
    _main()


# --- running it from a place in the lab (controller side) ------------------------------

# The probe half of this file: what runs at the far end.
SOURCE = Path(__file__).read_text().split("# --- running it from a place")[0]


def _argv(place: str, script: str) -> list[str]:
    """`python3 -c script` at `place`: the controller, the intruder's namespace, or a lab host over SSH."""
    from lab.hosts import ssh_argv
    from lab.network import netns_name
    from lab.paths import INTRUDER

    if place == "controller":
        return [sys.executable, "-c", script]
    if place == INTRUDER:
        return ["ip", "netns", "exec", netns_name(INTRUDER), sys.executable, "-c", script]
    # ssh hands the remote shell one string: the script is one quoted word in it.
    return ssh_argv(place, f"python3 -c {shlex.quote(script)}")


def probe_from(place: str, targets: list[tuple[str, int]]) -> dict[str, str]:
    """Probe `targets` from `place`: a lab host's name, "intruder" or "controller"."""
    result = subprocess.run(_argv(place, SOURCE), input=json.dumps(targets), capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"probe from {place} failed: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout)


_REQUEST = """
import json, ssl, sys, urllib.request, urllib.error
method, url, body, tls = json.load(sys.stdin)
req = urllib.request.Request(url, data=body.encode() if body is not None else None, method=method,
                             headers={"Content-Type": "application/json"})
context = None
if tls:
    context = ssl.create_default_context(cafile=tls[0])
    if tls[1]:
        context.load_cert_chain(tls[1], tls[2])
try:
    with urllib.request.urlopen(req, timeout=5, context=context) as resp:
        print(json.dumps([resp.status, resp.read(2000).decode(errors="replace")]))
except urllib.error.HTTPError as err:
    print(json.dumps([err.code, err.read(2000).decode(errors="replace")]))
except Exception as err:
    print(json.dumps([None, f"{type(err).__name__}: {err}"]))
"""


def request_from(place: str, method: str, url: str, body: str | None = None,
                 tls: tuple[str, str | None, str | None] | None = None) -> tuple[int | None, str]:
    """One HTTP request from `place`: (status, body), or (None, the error) when nothing answered.
    `tls`: (CA file, certificate file, key file) at `place` for an https URL (no certificate: None, None)."""
    result = subprocess.run(_argv(place, _REQUEST), input=json.dumps([method, url, body, tls]), capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"request from {place} failed: {result.stderr.strip()[-500:]}")
    status, text = json.loads(result.stdout)
    return status, text
