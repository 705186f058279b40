"""stores.mode scalable: a store's ring over every telemetry host (Loki's simple scalable deployment, Tempo's
scalable single binary), from the topology.

Loki 3.7.8 and Tempo 2.10.8 both build their rings with dskit: the same `memberlist` block and the same
`grpc_client` TLS keys (files/loki/config-reference-3.7.8.yml, files/tempo/config-reference-2.10.8.txt). Each
member binds and advertises its host's IP, joins every telemetry host's member by IP, and speaks TLS with the
certificate the environment CA issued to its host (roles/_tls.py: it carries the host's IP, which the peers dial).
Rendered and checked against the references only: neither store runs in this workplace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from roles._net import host_port, split_host_port

if TYPE_CHECKING:
    from roles._context import HostContext
    from roles._tls import TlsPaths

MIN_VERSION = "VersionTLS12"  # dskit's spelling


@dataclass(frozen=True)
class Ring:
    """This host's place among every telemetry host's instance of a scaled-out store."""

    ip: str  # this host's IP: the ring and memberlist advertise it
    memberlist_bind: str  # ip:port of the store's memberlist listener on this host
    members: tuple[str, ...]  # ip:port of the memberlist listener on every telemetry host (join_members)
    replication_factor: int


def ring_of(ctx: "HostContext", component: str) -> Ring | None:
    """`component`'s Ring on this host with stores.mode scalable, None in single mode."""
    if ctx.settings.stores.mode != "scalable":
        return None
    members = ctx.topology.instances(f"{component}.memberlist")
    return Ring(
        ip=ctx.settings.ip,
        memberlist_bind=ctx.bind(f"{component}.memberlist"),
        members=tuple(host_port(l.ip, l.port) for l in members),
        replication_factor=ctx.settings.stores.replication(len(members)),
    )


def grpc_client_tls(tls: "TlsPaths") -> dict:
    """A dskit `grpc_client` block's TLS: the service's own certificate as its client identity (the peers' gRPC
    servers require one), the environment CA to check the peer."""
    return {"tls_enabled": True, "tls_cert_path": tls.cert, "tls_key_path": tls.key, "tls_ca_path": tls.ca,
            "tls_min_version": MIN_VERSION}


def memberlist(ring: Ring, tls: "TlsPaths | None") -> dict:
    """The `memberlist` block: bind and advertise the host's IP, join every member, TLS with the host's certificate."""
    ip, port = split_host_port(ring.memberlist_bind)
    block: dict = {"join_members": list(ring.members), "bind_addr": [ip], "bind_port": port,
                   "advertise_addr": ring.ip, "advertise_port": port}
    if tls:
        block.update({"tls_enabled": True, "tls_cert_path": tls.cert, "tls_key_path": tls.key, "tls_ca_path": tls.ca,
                      "tls_min_version": MIN_VERSION})
    return block
