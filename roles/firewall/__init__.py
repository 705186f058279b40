"""A host firewall with nftables: drop inbound traffic except what the stack needs.

The ruleset lives in one table of its own, `inet sentinel_firewall`, and replacing
it never touches other tables (no `flush ruleset`: operators and container
runtimes may keep their own). Inbound is dropped unless it answers our own
traffic, comes from loopback, is ICMP a working network needs, is SSH or ping from
the admin networks, or matches an `Opening` given by the roles that listen.

Files on the host:
- /etc/sentinel-firewall/ruleset.nft (0640 root:root, in a 0750 directory),
  checked with `nft -c` on the host before it replaces the live file;
- /etc/systemd/system/sentinel-firewall.service, a oneshot unit that loads the
  ruleset at boot before the network is up (network-pre.target), so the rules
  survive a reboot. Debian's nftables.service and /etc/nftables.conf stay as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from pyinfra.api import deploy
from pyinfra.operations import apt, files, systemd

from roles._service.operations import validated_file
from roles._service.quoting import refuse_control
from roles._service.render import MANAGED, render

if TYPE_CHECKING:
    from roles._context import HostContext
    from roles.firewall.settings import FirewallSettings

RULESET_DIR = "/etc/sentinel-firewall"
RULESET = f"{RULESET_DIR}/ruleset.nft"
UNIT = "sentinel-firewall.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT}"
# The staged file is checked against the kernel's nf_tables in check mode (nothing
# is applied); `{path}` becomes the staged path as one quoted shell word.
VALIDATE = "/usr/sbin/nft -c -f {path}"
# nft refuses longer comments ("comment too long, 128 characters maximum"); it counts bytes.
COMMENT_MAX_BYTES = 128
PROTOCOLS = ("tcp", "udp")

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(value: str, what: str) -> _Network:
    """`value` as an address or network; ValueError names `what` and the value.

    Host bits must be zero (`10.0.0.5/24` is refused): such a value is more often a
    typo than a wish, and in a firewall a guessed meaning is worse than a refusal.
    """
    if not isinstance(value, str):  # ipaddress would take an int as an address
        raise ValueError(f"{what}: expected an address or CIDR as text, got {type(value).__name__}")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        raise ValueError(f"{what}: {value!r} is not an IPv4/IPv6 address or CIDR network ({err})") from None


def _text(network: _Network) -> str:
    """The canonical form: a bare address for a single host, else address/prefix."""
    return str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)


def _normalized(sources: Sequence[str], what: str) -> tuple[str, ...]:
    """Sources sorted (IPv4 first, then by address and prefix) and deduplicated, in canonical form."""
    if isinstance(sources, str) or not sources:
        raise ValueError(f"{what}: give a non-empty list of addresses or CIDRs")
    networks = {_network(source, f"{what}[{i}]") for i, source in enumerate(sources)}
    return tuple(_text(n) for n in sorted(networks, key=lambda n: (n.version, n.network_address, n.prefixlen)))


def _port(port: int, what: str) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"{what}: {port!r} is not a port number from 1 to 65535")
    return port


@dataclass(frozen=True)
class Opening:
    """One inbound allowance: `sources` may connect to `port`/`protocol` on this host.

    + port: the listening port, 1..65535
    + protocol: ``tcp`` or ``udp``
    + sources: IPv4/IPv6 addresses or CIDR networks, at least one; stored sorted,
      deduplicated and in canonical form, so two openings for the same sources compare equal
    + comment: why the port is open, e.g. ``prometheus.web <- prometheus, grafana``;
      it becomes the rule's nft comment, so double quotes, control characters and
      more than 128 bytes are refused

    Invalid values raise ValueError when the opening is created, on the controller.
    """

    port: int
    protocol: str
    sources: tuple[str, ...]
    comment: str

    def __post_init__(self):
        where = f"firewall opening {self.protocol!r}/{self.port!r}"
        _port(self.port, where)
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"{where}: protocol must be one of {', '.join(PROTOCOLS)}")
        # Frozen: normalise through object.__setattr__, once, here.
        object.__setattr__(self, "sources", _normalized(self.sources, f"{where} sources"))
        refuse_control(self.comment, f"{where} comment")  # a QuotingError is a ValueError
        if '"' in self.comment:
            raise ValueError(f"{where} comment: holds a double quote, which would end the nft comment; remove it")
        if len(self.comment.encode()) > COMMENT_MAX_BYTES:
            raise ValueError(f"{where} comment: longer than nft's {COMMENT_MAX_BYTES} bytes; shorten it")


def _rules(sources: tuple[str, ...], comment: str, match: str, match6: str | None = None) -> list[str]:
    """One rule per address family present in `sources` (an nft set holds one family).

    `match` is the rest of the match (e.g. ``tcp dport 22``); `match6`, when given,
    replaces it for IPv6 sources (ICMP and ICMPv6 have different types).
    """
    rules = []
    for family, version, what in (("ip", 4, match), ("ip6", 6, match6 or match)):
        chosen = [s for s in sources if ipaddress.ip_network(s).version == version]
        if chosen:
            rule = f"{family} saddr {{ {', '.join(chosen)} }} {what} accept"
            rules.append(f'{rule} comment "{comment}"' if comment else rule)
    return rules


def render_ruleset(openings: Sequence[Opening], admin_networks: Sequence[str], ssh_port: int = 22) -> str:
    """
    The nft file that atomically replaces the table ``inet sentinel_firewall``.

    + openings: what may reach this host besides SSH and ping; identical openings
      are kept once, and rules come out in a fixed order whatever order they are given in
    + admin_networks: addresses or CIDRs allowed to SSH and ping this host; must not
      be empty, since the policy drops everything else and SSH would be locked out
    + ssh_port: the port sshd listens on

    The same arguments give the same text, so a second converge changes nothing.
    Raises ValueError on an invalid network, port or opening.
    """
    admin = _normalized(admin_networks, "firewall admin_networks")
    _port(ssh_port, "firewall ssh_port")
    for opening in openings:
        if not isinstance(opening, Opening):
            raise ValueError(f"firewall openings: expected Opening, got {type(opening).__name__}")
    rules = [
        *_rules(admin, "ping <- admin networks", "icmp type echo-request", "icmpv6 type echo-request"),
        *_rules(admin, "ssh <- admin networks", f"tcp dport {ssh_port}"),
    ]
    for opening in sorted(set(openings), key=lambda o: (o.port, o.protocol, o.comment, o.sources)):
        rules += _rules(opening.sources, opening.comment, f"{opening.protocol} dport {opening.port}")
    return render("firewall/ruleset.nft.j2", managed=MANAGED, unit=UNIT, rules=rules)


def unit_file() -> str:
    """The oneshot unit that loads the ruleset at boot and on reload."""
    return render("firewall/sentinel-firewall.service.j2", managed=MANAGED, ruleset=RULESET)


@deploy("Host firewall")
def firewall(openings: Sequence[Opening], admin_networks: Sequence[str], ssh_port: int = 22):
    """
    Install and load the host firewall; keep it loaded at boot.

    + openings: what may reach this host besides SSH and ping (see `Opening`)
    + admin_networks: addresses or CIDRs allowed to SSH and ping this host; include
      the network pyinfra connects from, or the next run cannot connect
    + ssh_port: the port sshd listens on

    A ruleset that nft refuses on the host fails the operation and leaves the live
    file and the loaded rules as they were. The current SSH session survives a new
    ruleset (established connections are accepted first).
    """
    # Rendered first: a bad argument stops the role before any operation is added.
    ruleset = render_ruleset(openings, admin_networks, ssh_port)
    # The package lists of a fresh host may be empty: refresh them at most once a day.
    apt.packages(name="firewall: nftables", packages=["nftables"], update=True, cache_time=24 * 3600)
    files.directory(name="firewall: config dir", path=RULESET_DIR, user="root", group="root", mode="0750")
    rules = validated_file(
        name="firewall: ruleset",
        dest=RULESET,
        content=ruleset,
        validate=VALIDATE,
        user="root",
        group="root",
        mode="0640",
    )
    # Not validated with systemd-analyze verify: it wants a name ending in .service,
    # and the staged copy ends in .staged. The unit is a fixed text.
    unit = validated_file(name="firewall: systemd unit", dest=UNIT_PATH, content=unit_file(), mode="0644")
    systemd.daemon_reload(name="firewall: daemon-reload", _if=unit.did_change)
    started = systemd.service(name="firewall: loaded and enabled at boot", service=UNIT, running=True, enabled=True)
    # Starting runs ExecStart, which loads the new ruleset already; otherwise reload it.
    systemd.service(
        name="firewall: load the new ruleset",
        service=UNIT,
        reloaded=True,
        _if=lambda: not started.did_change() and (rules.did_change() or unit.did_change()),
    )


class FirewallLockout(RuntimeError):
    """The new ruleset would cut this run's own SSH connection."""

    def __init__(self, key: str, problem: str, fix: str):
        super().__init__(f"{key}: {problem}. Fix: {fix}")


def refuse_lockout(host: str, client: str | None, admin_networks, ssh_port: int) -> None:
    """Refuse a firewall that would cut the controller's own SSH: `client` is the address
    the host sees this run's SSH connection come from (None: not over SSH)."""
    if not client:
        return
    if not any(ipaddress.ip_address(client) in ipaddress.ip_network(n) for n in admin_networks):
        raise FirewallLockout(
            f"host {host}.firewall.admin_networks",
            f"this run's SSH connection comes from {client}, which no admin network holds: "
            f"the new firewall would cut the controller off port {ssh_port}",
            f"add {client}/32 (or its network) to firewall.admin_networks",
        )


def openings_of(ctx: HostContext) -> list[Opening]:
    """This host's openings from the topology: every declared flow's sources, and `firewall.allow`."""
    return [
        Opening(port=o.port, protocol=o.protocol, sources=o.sources, comment=o.listener)
        for o in ctx.topology.openings(ctx.name)
    ]


@deploy("Host firewall from the topology")
def host_firewall(settings: FirewallSettings, ctx: HostContext):
    """
    The firewall of one host, generated from the environment's topology.

    + settings: the `firewall` block (admin networks, SSH port, the operators' `allow`)
    + ctx: the host context; its openings come from the topology's flows

    Read before any operation is added: if this run's own SSH connection comes from an
    address no admin network holds, the new ruleset would cut the controller off. The
    error stops pyinfra while it prepares, before any host is changed.
    """
    from pyinfra import host

    from roles.firewall.facts import SshClientAddress

    refuse_lockout(ctx.name, host.get_fact(SshClientAddress), settings.admin_networks, settings.ssh_port)
    firewall(openings_of(ctx), settings.admin_networks, settings.ssh_port)
