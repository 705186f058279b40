"""Environments for unit tests, built like the deploy builds them: a small inventory
file read by pyinfra's own loader (roles._environment.load_environment)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from roles._environment import Environment, load_environment

# Secret values of the right shape for every environment (never real ones).
GOOD_SECRETS = {
    "SENTINEL_S3_ACCESS_KEY": "testaccesskey0001",
    "SENTINEL_S3_SECRET_KEY": "test-secret-key-0001",
    "SENTINEL_S3_LOKI_ACCESS_KEY": "testlokikey0001",
    "SENTINEL_S3_LOKI_SECRET_KEY": "test-loki-secret-0001",
    "SENTINEL_S3_TEMPO_ACCESS_KEY": "testtempokey0001",
    "SENTINEL_S3_TEMPO_SECRET_KEY": "test-tempo-secret-0001",
    "SENTINEL_SLACK_CRITICAL_WEBHOOK_URL": "https://hooks.slack.com/services/T0000TEST/B0000CRIT/abcdefghijklmnop",
    "SENTINEL_SLACK_ALERTS_WEBHOOK_URL": "https://hooks.slack.com/services/T0000TEST/B0000WARN/abcdefghijklmnop",
    "SENTINEL_SMTP_PASSWORD": "smtp-password-0001",
    "SENTINEL_PAGERDUTY_ROUTING_KEY": "0123456789abcdef0123456789abcdef",
    "SENTINEL_HEARTBEAT_URL": "https://hc-ping.example/0c6e1f3a-test-heartbeat",
    "SENTINEL_GRAFANA_ADMIN_PASSWORD": "grafana-admin-password-0001",
}


def three_hosts(environment: str) -> str:
    """An inventory body with one host per role group."""
    return textwrap.dedent(
        f"""
        monitoring = [("mon1.{environment}", {{"ip": "10.9.0.11"}})]
        telemetry = [("tel1.{environment}", {{"ip": "10.9.0.12"}})]
        app = [("app1.{environment}", {{"ip": "10.9.0.13"}})]
        """
    )


def write_inventory(directory: Path, environment: str, body: str | None = None, check: bool = False) -> Path:
    """inventory file `<environment>.py` in `directory`; with `check`, it ends with the preflight call."""
    path = directory / f"{environment}.py"
    text = textwrap.dedent(body if body is not None else three_hosts(environment))
    if check:
        text = "from roles.preflight import check_inventory\n" + text + "\ncheck_inventory(globals())\n"
    path.write_text(text)
    return path


def environment(directory: Path, name: str, body: str | None = None) -> Environment:
    return load_environment(write_inventory(directory, name, body))


def environment_of_hosts(*hosts) -> Environment:
    """An Environment of already validated hosts: (name, settings) pairs whose settings hold their
    groups as `groups` in a dict, or (name, groups, settings). The environment name is the first host's."""
    from roles._environment import EnvHost

    envhosts = []
    for entry in hosts:
        name, groups, settings = entry
        envhosts.append(EnvHost(name=name, groups=tuple(sorted({*groups, settings.environment})), settings=settings))
    return Environment(name=envhosts[0].settings.environment, hosts=tuple(envhosts))


def context_of(environment: Environment, name: str, secrets=None):
    """The HostContext deploy.py would hand the roles of host `name`."""
    from roles._context import HostContext

    return HostContext.of(environment, name, secrets or {})


def offline(argv: list[str]) -> list[str]:
    """`argv` in a network namespace of its own (loopback only, and down): a pyinfra run on the dev,
    staging or prod inventories can never reach a resolver or a host, even through a regression.

    Needs root and util-linux's unshare (CI and the lab have both); elsewhere the command runs as it is.
    """
    import os
    import shutil

    if os.geteuid() == 0 and shutil.which("unshare"):
        return ["unshare", "--net", "--", *argv]
    return argv
