"""The one host context every role gets next to its own settings block.

    role(settings_block, ctx)

`ctx` holds what all roles share (the host's name, environment, address, the
artifact base URL, systemd hardening, the run's secrets) and the host's links from
the topology: the address each of its listeners binds (`bind`) and the endpoints of
its peers (`url`, `urls`). A role reads no other host's settings and works out no
port of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from roles._environment import Environment
    from roles._settings import Settings
    from roles._topology import Topology


@dataclass(frozen=True)
class HostContext:
    name: str
    groups: tuple[str, ...]
    settings: "Settings"
    topology: "Topology"
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, environment: "Environment", name: str, secrets: Mapping[str, str] | None = None) -> "HostContext":
        host = environment.host(name)
        return cls(name, host.groups, host.settings, environment.topology, secrets or {})

    @property
    def environment(self) -> str:
        return self.settings.environment

    @property
    def address(self) -> str:
        return self.settings.address

    @property
    def artifact_base_url(self) -> str:
        return self.settings.artifact_base_url

    @property
    def hardening(self) -> bool:
        return self.settings.systemd_hardening

    def bind(self, listener: str) -> str:
        """ip:port this host's `listener` binds."""
        return self.topology.bind(self.name, listener)

    def bind_ip(self, listener: str) -> str:
        return self.topology.listener(self.name, listener).bind_ip

    def local_url(self, listener: str, path: str = "") -> str:
        """This host's own `listener`, as the host itself reaches it (readiness checks)."""
        return f"http://{self.bind(listener)}{path}"

    def url(self, listener: str, path: str = "") -> str:
        """The one `listener` this host's clients use: its own, else the environment's only one."""
        return self.topology.url(listener, self.name, path)

    def urls(self, listener: str, path: str = "") -> list[str]:
        return self.topology.urls(listener, self.name, path)

    def has(self, listener: str) -> bool:
        return bool(self.topology.instances(listener))
