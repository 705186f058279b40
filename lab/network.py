"""The lab network: a bridge in the root namespace and one namespace per host.

    root namespace: sentinel0 10.213.0.1/24 (mirror, proxy, local receivers)
        ├── veth sl-mon1 ⇄ eth0 10.213.0.11/24 in netns sentinel-mon1
        ├── veth sl-tel1 ⇄ eth0 10.213.0.12/24 in netns sentinel-tel1
        ├── veth sl-app1 ⇄ eth0 10.213.0.13/24 in netns sentinel-app1
        └── veth sl-intruder ⇄ eth0 10.213.0.66/24 in netns sentinel-intruder (in no group)

There is no NAT. Hosts get a default route via the bridge IP (some software
picks its "own" address from the default route), but a policy-routing rule
makes anything that arrives on the bridge and is not for the root namespace
itself unreachable, so nothing is ever forwarded to the outside, even if
ip_forward gets switched on later.
"""

import json
from pathlib import Path

from lab.paths import BRIDGE, BRIDGE_IP, HOSTS, INTRUDER, INTRUDER_IP, PREFIX_LEN
from lab.shell import run, succeeds

NETNS_DIR = Path("/run/netns")
NO_FORWARD_TABLE = "213"  # routing table holding only `unreachable default`
NO_FORWARD_PRIORITY = "213"


def netns_name(host: str) -> str:
    return f"sentinel-{host}"


def netns_path(host: str) -> Path:
    return NETNS_DIR / netns_name(host)


def veth_name(host: str) -> str:
    return f"sl-{host}"[:15]  # interface names are limited to 15 characters


def _link_exists(name: str, netns: str | None = None) -> bool:
    prefix = ["ip", "-n", netns] if netns else ["ip"]
    return succeeds([*prefix, "link", "show", "dev", name])


def ensure_bridge() -> None:
    if not _link_exists(BRIDGE):
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    addrs = json.loads(run(["ip", "-j", "addr", "show", "dev", BRIDGE], capture=True).stdout)
    if not any(a.get("local") == BRIDGE_IP for i in addrs for a in i.get("addr_info", [])):
        run(["ip", "addr", "add", f"{BRIDGE_IP}/{PREFIX_LEN}", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])
    _ensure_no_forwarding()


def _ensure_no_forwarding() -> None:
    rule = ["iif", BRIDGE, "lookup", NO_FORWARD_TABLE, "priority", NO_FORWARD_PRIORITY]
    run(["ip", "route", "replace", "unreachable", "default", "table", NO_FORWARD_TABLE])
    if f"iif {BRIDGE} lookup {NO_FORWARD_TABLE}" not in run(["ip", "rule", "show"], capture=True).stdout:
        run(["ip", "rule", "add", *rule])


def address_of(host: str) -> str:
    return INTRUDER_IP if host == INTRUDER else HOSTS[host].address


def ensure_host_network(host: str) -> None:
    address = address_of(host)
    ns, veth = netns_name(host), veth_name(host)
    NETNS_DIR.mkdir(parents=True, exist_ok=True)
    if not netns_path(host).exists():
        run(["ip", "netns", "add", ns])
    if not _link_exists(veth):
        # Create the pair with its peer already inside the namespace, named eth0.
        run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
    run(["ip", "link", "set", veth, "master", BRIDGE, "up"])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "-n", ns, "addr", "replace", f"{address}/{PREFIX_LEN}", "dev", "eth0"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    run(["ip", "-n", ns, "route", "replace", "default", "via", BRIDGE_IP, "dev", "eth0"])


def remove_host_network(host: str) -> None:
    if _link_exists(veth_name(host)):
        run(["ip", "link", "del", veth_name(host)])  # takes eth0 in the namespace with it
    if netns_path(host).exists():
        run(["ip", "netns", "del", netns_name(host)])


def remove_bridge() -> None:
    run(["ip", "rule", "del", "iif", BRIDGE, "lookup", NO_FORWARD_TABLE, "priority", NO_FORWARD_PRIORITY],
        check=False, capture=True)
    run(["ip", "route", "flush", "table", NO_FORWARD_TABLE], check=False, capture=True)
    if _link_exists(BRIDGE):
        run(["ip", "link", "del", BRIDGE])
    # `ip netns add` turns /run/netns into a mount point; drop it once nobody uses it.
    if NETNS_DIR.is_dir() and not any(NETNS_DIR.iterdir()) and succeeds(["mountpoint", "-q", str(NETNS_DIR)]):
        run(["umount", str(NETNS_DIR)], check=False)


def leftovers() -> list[str]:
    """Lab network objects still present (empty after a clean `down`)."""
    found = [f"link {BRIDGE}"] if _link_exists(BRIDGE) else []
    found += [f"link {veth_name(h)}" for h in (*HOSTS, INTRUDER) if _link_exists(veth_name(h))]
    found += [f"netns {netns_name(h)}" for h in (*HOSTS, INTRUDER) if netns_path(h).exists()]
    if f"lookup {NO_FORWARD_TABLE}" in run(["ip", "rule", "show"], capture=True).stdout:
        found.append(f"ip rule lookup {NO_FORWARD_TABLE}")
    return found
