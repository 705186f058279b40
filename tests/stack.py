"""The converged environment as the tests see it: hosts, their groups and settings.

Built from the same inventory and group data as the deploy, through pyinfra's own
inventory loader, so the tests check what was asked for, not a second copy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import testinfra

from roles._environment import load_environment
from roles._settings import Settings
from roles._tls import TlsPaths, is_tls
from tests.lab_session import INVENTORY, ROOT


@dataclass(frozen=True)
class StackHost:
    name: str
    groups: tuple[str, ...]
    settings: Settings
    connection: str
    ssh_options: str

    @functools.cached_property
    def testinfra(self):
        return testinfra.get_host(self.connection, ssh_extra_args=self.ssh_options)

    @property
    def topology(self):
        return load_environment(ROOT / INVENTORY).topology

    def local(self, listener: str, path: str = "") -> str:
        """The URL of this host's own `listener` where it binds (the topology's: the host's IP or the loopback);
        https for the listeners served over TLS (roles/_tls.py)."""
        return f"{'https' if is_tls(listener) else 'http'}://{self.topology.bind(self.name, listener)}{path}"

    def listening(self, listener: str) -> bool:
        """This host's `listener` listens on exactly the address the topology binds."""
        return self.testinfra.socket(f"tcp://{self.topology.bind(self.name, listener)}").is_listening

    def has(self, listener: str) -> bool:
        return any(l.name == listener for l in self.topology.on(self.name))

    def curl(self, url: str, *args: str) -> str:
        """GET (or more, with curl args) from the host itself; fails on HTTP errors. An https URL is called with
        the host's own identity: Prometheus's on a monitoring host (every TLS listener admits it), else
        node_exporter's (its own node_exporter admits it)."""
        if url.startswith("https://"):
            args = (*TlsPaths("prometheus" if "monitoring" in self.groups else "node_exporter").curl_args(), *args)
        return self.testinfra.check_output("curl -fsS" + " %s" * (len(args) + 1), *args, url)


@functools.cache
def stack_hosts() -> tuple[StackHost, ...]:
    hosts = []
    for host in load_environment(ROOT / INVENTORY).hosts:  # the deploy's own Environment
        data = host.connection
        user = data.get("ssh_user", "root")
        address = data.get("ssh_hostname", host.name)
        port = data.get("ssh_port", 22)
        options = []
        if data.get("ssh_key"):
            options.append(f"-i {data['ssh_key']}")
        if str(data.get("ssh_strict_host_key_checking", "yes")).lower() == "no":
            options.append("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")
        hosts.append(StackHost(host.name, host.groups, host.settings, f"ssh://{user}@{address}:{port}", " ".join(options)))
    return tuple(hosts)


def hosts_in(group: str) -> list[StackHost]:
    return [h for h in stack_hosts() if group in h.groups]


def reconnected(host: StackHost) -> StackHost:
    """The same host with a new SSH connection: testinfra's cached one died with a host that was powered off.
    The cached hosts are forgotten too, so that every later test connects afresh."""
    stack_hosts.cache_clear()
    return next(h for h in stack_hosts() if h.name == host.name)
