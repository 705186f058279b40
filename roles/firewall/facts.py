"""Facts the firewall role reads before it changes anything."""

from __future__ import annotations

import ipaddress

from pyinfra.api import FactBase


class SshClientAddress(FactBase):
    """The address this run's SSH connection comes from, as the host sees it (`$SSH_CONNECTION`).

    None when the run does not come over SSH (a local connector) or the address does not parse.
    """

    def command(self) -> str:
        return 'echo "${SSH_CONNECTION:-}"'

    def process(self, output):
        words = " ".join(output).split()
        if not words:
            return None
        try:
            return str(ipaddress.ip_address(words[0]))
        except ValueError:
            return None
