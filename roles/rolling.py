"""A rolling converge: one host at a time, the next only once the converged one is healthy again.

    python -m roles.rolling inventory/prod.py [pyinfra options, e.g. --data key=value]

`pyinfra inventory/prod.py deploy.py` converges every host at once. For a release or a flag
change that restarts Prometheus and Alertmanager, that restarts both members of the monitoring
pair together: for the length of a restart no Alertmanager holds the alerts and no Prometheus
evaluates. This runs the same deploy host by host (`--limit`), in inventory order, and before
moving on waits until what the converged host serves for the pair answers again, from the
controller with the operator's certificate:

- each Prometheus (`prometheus.web`): `/-/ready`;
- each Alertmanager (`alertmanager.web`): `/-/ready`, and its cluster `ready` with every
  monitoring host as a peer, so that it holds the notification log again before its
  partner restarts (an Alertmanager that restarts alone learns what was sent from the other).

The collector gateways are a pool: while one restarts, the agents send to the others (and what
it failed is retried from their disk queues). The other components run on one host each, or their
senders queue on disk while they restart (docs/tracing.md), and the deploy already waits for every
unit to be ready before it ends.
A host that does not come back within `--wait` stops the roll: the hosts after it keep the old
release and config, and the pair keeps its other member.
"""

from __future__ import annotations

# pyinfra's CLI patches the standard library for gevent on import; the inventory is read with its
# loader, so it comes first, as in tests/conftest.py: imported after ssl, every TLS handshake of
# the health checks recursed in SSLContext.minimum_version.
import pyinfra_cli  # noqa: F401, I001

import argparse
import subprocess
import sys
from pathlib import Path

import requests
from tenacity import RetryError, retry, retry_if_result, stop_after_delay, wait_fixed

from roles._environment import EnvHost, Environment, load_environment
from roles._pki import environment_ca

ROOT = Path(__file__).resolve().parent.parent


class RollStopped(RuntimeError):
    pass


def _operator(environment: str) -> dict:
    ca, cert, key = environment_ca(environment).operator_files()
    return {"cert": (str(cert), str(key)), "verify": str(ca), "timeout": 5}


def health_checks(env: Environment, host: EnvHost) -> list[tuple[str, str, object]]:
    """(what, url, check(response) -> bool) of what `host` serves for the pair."""
    monitoring = sorted(h.name for h in env.group("monitoring"))
    checks: list[tuple[str, str, object]] = []
    for listener in env.topology.on(host.name):
        base = f"https://{listener.address}:{listener.port}"
        if listener.name == "prometheus.web":
            checks.append(("Prometheus ready", f"{base}/-/ready", lambda r: r.ok))
        elif listener.name == "alertmanager.web":
            checks.append(("Alertmanager ready", f"{base}/-/ready", lambda r: r.ok))
            if len(monitoring) > 1:  # one Alertmanager runs without a cluster
                checks.append(
                ("Alertmanager cluster whole", f"{base}/api/v2/status",
                 lambda r, names=monitoring: r.ok and r.json()["cluster"]["status"] == "ready"
                 and sorted(p["name"] for p in r.json()["cluster"]["peers"]) == names),
                )
    return checks


def _passes(url: str, check, operator: dict) -> bool:
    try:
        return bool(check(requests.get(url, **operator)))
    except (requests.RequestException, ValueError, KeyError):
        return False


def wait_healthy(env: Environment, host: EnvHost, wait: float, operator: dict | None = None) -> None:
    """Block until every check of `host` passes; RollStopped, naming the first failing one, after `wait` s."""
    operator = operator or _operator(env.name)
    for what, url, check in health_checks(env, host):
        poll = retry(stop=stop_after_delay(wait), wait=wait_fixed(2), retry=retry_if_result(lambda ok: not ok))
        try:
            poll(_passes)(url, check, operator)
        except RetryError:
            raise RollStopped(f"{host.name}: {what} ({url}) not within {wait:.0f} s; the hosts after it are unchanged") from None


def roll(inventory: str, pyinfra_options: list[str], wait: float = 300.0) -> None:
    env = load_environment(ROOT / inventory)
    pyinfra = str(Path(sys.executable).parent / "pyinfra")
    for host in env.hosts:
        print(f"--> rolling: {host.name}", flush=True)
        run = subprocess.run([pyinfra, "-y", *pyinfra_options, "--limit", host.name, inventory, "deploy.py"], cwd=ROOT)
        if run.returncode != 0:
            raise RollStopped(f"{host.name}: the converge failed (exit {run.returncode}); the hosts after it are unchanged")
        wait_healthy(env, host, wait)
        print(f"--> rolling: {host.name} healthy", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m roles.rolling", description=__doc__.splitlines()[0])
    parser.add_argument("inventory", help="the environment's inventory, e.g. inventory/prod.py")
    parser.add_argument("--wait", type=float, default=300.0, help="seconds a converged host has to be healthy again")
    args, pyinfra_options = parser.parse_known_args(argv)
    try:
        roll(args.inventory, pyinfra_options, args.wait)
    except RollStopped as stopped:
        print(f"rolling converge stopped: {stopped}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
