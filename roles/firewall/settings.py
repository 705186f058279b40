"""Settings of the host firewall (every host): who may reach SSH, and the operators' own openings."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import AfterValidator, Field

from roles._model import Bool, Model, Port, Text, matching


def _cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        reason = "has host bits set" if "host bits" in str(err) else "is not an IP network"
        raise ValueError(f"{value!r} {reason}. Fix: write a network such as 10.20.0.0/24, or one address such as 10.20.0.5/32") from None
    return str(network)


Cidr = Annotated[str, AfterValidator(_cidr)]
ListenerName = matching("listener name", r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?", "name a listener of docs/architecture.md's port table, e.g. grafana.http")


class AllowRule(Model):
    """An inbound opening the flows do not declare: operators' networks to a listener."""

    listener: ListenerName = Field(description="The listener (docs/architecture.md), e.g. grafana.http.")
    sources: tuple[Cidr, ...] = Field(min_length=1, description="Networks (CIDR) that may connect to it.")
    reason: Text = Field(min_length=1, description="Why (shown in the ruleset's comment and the docs).")


class FirewallSettings(Model):
    """The nftables firewall generated from the topology (roles/_topology.py): inbound default drop."""

    enabled: Bool = Field(True, description="Install the firewall. Off only where another firewall enforces the same flows.")
    admin_networks: tuple[Cidr, ...] = Field(
        (), description="Networks that may reach SSH: the controller's and the operators'. Required while the firewall is on."
    )
    ssh_port: Port = Field(22, description="sshd's port on every host.")
    allow: tuple[AllowRule, ...] = Field((), description="Further sources per listener, e.g. the office network to grafana.http.")
