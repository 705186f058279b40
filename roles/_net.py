"""host:port as clients and Go read it, and back (no other import: every role may use it)."""

from __future__ import annotations


def split_host_port(bind: str) -> tuple[str, int]:
    """(address, port) of a host:port, an IPv6 address without its brackets (for address-and-port config keys)."""
    host, port = bind.rsplit(":", 1)
    return host.strip("[]"), int(port)


def host_port(host: str, port: int) -> str:
    """host:port, with an IPv6 address in brackets ([fd00::5]:4317), as Go and every client here read it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
