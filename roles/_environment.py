"""One `Environment` per run, built from pyinfra's own inventory loader and validated once.

`load_environment(inventory_file)` runs `pyinfra_cli.inventory.make_inventory_from_files`,
the function `pyinfra inventory/<env>.py deploy.py` uses, so group data is merged by
pyinfra itself and never by a copy of its rules. The result is cached per inventory
file: preflight (roles/preflight.py, called from each inventory file) builds it
before any host is contacted, and deploy.py reads the same object.

Checks that need the whole inventory live here: environment groups, unknown groups
and group-data files, a key set by two groups of one host (asked of pyinfra's
inventory), unknown ssh_* keys, duplicate addresses.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from pydantic import Field

from roles._model import Model, SettingsError, parse
if TYPE_CHECKING:
    from roles._topology import Topology

from roles._settings import ENVIRONMENTS, ROLE_GROUPS, EnvironmentName, Settings

REPO = Path(__file__).resolve().parent.parent
GROUP_DATA = REPO / "group_data"
INVENTORY_DIR = REPO / "inventory"
KNOWN_GROUPS = ROLE_GROUPS + ENVIRONMENTS

# Set while this module runs an inventory file through pyinfra's loader: the
# file's own `check_inventory(globals())` then returns at once instead of recursing.
_loading: list[str] = []


class EnvHost(Model):
    """A host of the environment: its inventory name, groups and validated settings."""

    name: str
    groups: tuple[str, ...]
    settings: Settings
    connection: dict[str, Any] = Field(default_factory=dict, description="pyinfra's ssh_* data, for tests that connect.")


class Environment(Model):
    """Every host of one inventory, validated; what preflight checked and what the deploy uses."""

    name: EnvironmentName
    hosts: tuple[EnvHost, ...]

    @functools.cached_property
    def topology(self) -> "Topology":
        """Who listens where and who may talk to whom (roles/_topology.py), built once."""
        from roles._topology import Topology

        return Topology(self)

    def host(self, name: str) -> EnvHost:
        return next(h for h in self.hosts if h.name == name)

    def group(self, group: str) -> list[EnvHost]:
        """The hosts of `group`, sorted by name (the order peers are listed in)."""
        return sorted((h for h in self.hosts if group in h.groups), key=lambda h: h.name)

    def by_group(self) -> dict[str, list[tuple[str, Settings]]]:
        """(name, settings) of the hosts of each group, for roles that describe the whole environment."""
        groups = sorted({g for h in self.hosts for g in h.groups})
        return {g: [(h.name, h.settings) for h in self.group(g)] for g in groups}


def loading() -> bool:
    """True while `load_environment` runs an inventory file (its check_inventory must not recurse)."""
    return bool(_loading)


@contextlib.contextmanager
def _pyinfra_state() -> Iterator[None]:
    """pyinfra's loader needs a State in its context; the CLI has one, tests do not."""
    from pyinfra.api.state import State
    from pyinfra.context import ctx_state

    if ctx_state.isset():
        yield
    else:
        with ctx_state.use(State()):
            yield


def pyinfra_inventory(path: Path):
    """The `pyinfra.api.Inventory` that `pyinfra <path> deploy.py` builds, without connecting."""
    from pyinfra_cli.inventory import make_inventory_from_files

    _loading.append(str(path))
    try:
        with _pyinfra_state():
            return make_inventory_from_files(str(path), cwd=str(REPO))
    finally:
        _loading.pop()


def _ssh_keys() -> set[str]:
    from pyinfra.connectors.ssh import ConnectorData

    return set(ConnectorData.__annotations__)


def _check_groups(inventory, name: str, source: str) -> None:
    for group in inventory.groups:
        if group not in KNOWN_GROUPS:
            raise SettingsError(
                f"{source}:{group}", "unknown group", f"use {', '.join(ROLE_GROUPS)} (and the environment group {name!r})"
            )
    # pyinfra keeps the data of a group_data/<name>.py that no group uses, and applies it to nobody.
    for group in inventory.group_data:
        if group not in KNOWN_GROUPS + ("all",):
            close = difflib.get_close_matches(group, KNOWN_GROUPS, n=1)
            raise SettingsError(
                f"group_data/{group}.py",
                "no group uses this file, so pyinfra silently ignores it",
                f"rename it to {close[0]}.py" if close else f"rename it after a group ({', '.join(KNOWN_GROUPS)}) or delete it",
            )


def _check_one_owner(inventory, host) -> None:
    """A key set by two groups of one host: pyinfra keeps one group's value wholesale and drops the other."""
    set_by: dict[str, str] = {}
    for group in host.groups:
        for key in inventory.get_group_data(group):
            if key in set_by and set_by[key] != group:
                raise SettingsError(
                    f"host {host.name}.{key}",
                    f"set by both the {set_by[key]!r} and {group!r} groups",
                    "set it in one group (or in all.py) and override single hosts in the inventory",
                )
            set_by[key] = group


# pyinfra reads each of its global operation arguments (`_sudo`, `_env`, `_ignore_errors`...)
# from host data too, so a group-data or `--data` key of that name changes how every command
# of the deploy runs as root. Only these may be set, and only to these values:
ALLOWED_PYINFRA_ARGUMENTS = {
    # Connecting as an unprivileged user that sudo makes root: the deploy needs root either way.
    "_sudo": (True,),
}


def _pyinfra_arguments() -> set[str]:
    from pyinfra.api.arguments import all_global_arguments

    return {name for name, _ in all_global_arguments() if name.startswith("_")}


def _refuse_pyinfra_arguments(where: str, data: dict[str, Any]) -> None:
    for key in sorted(set(data) & _pyinfra_arguments()):
        allowed = ALLOWED_PYINFRA_ARGUMENTS.get(key)
        if allowed is None or data[key] not in allowed:
            raise SettingsError(
                f"{where}.{key}",
                "is one of pyinfra's global arguments: as host data it would change every command the deploy runs as root",
                "remove it (the toolkit allows only _sudo = True, to connect as a user that sudo makes root)",
            )


def _refuse_weak_ssh(where: str, data: dict[str, Any], environment: str) -> None:
    """Outside the lab, SSH checks the hosts' keys and never forwards the controller's agent."""
    if environment == "lab":
        return  # lab hosts get new host keys on every `lab up`, on a bridge of the machine itself
    checking = data.get("ssh_strict_host_key_checking")
    if checking is not None and str(checking).lower() not in ("yes", "true", "accept-new"):
        raise SettingsError(
            f"{where}.ssh_strict_host_key_checking",
            f"{checking!r} turns host-key checking off in {environment}: every secret file could go to an impostor host",
            "remove it (pyinfra checks against known_hosts), or pin the hosts' keys in ssh_known_hosts_file",
        )
    if data.get("ssh_known_hosts_file") in ("/dev/null",):
        raise SettingsError(
            f"{where}.ssh_known_hosts_file", f"/dev/null forgets every host key in {environment}", "point it at a file with the hosts' keys"
        )
    if data.get("ssh_forward_agent"):
        raise SettingsError(
            f"{where}.ssh_forward_agent",
            f"forwards the controller's SSH agent to the hosts in {environment}: root there could use its keys",
            "remove it",
        )


def host_settings(name: str, groups: list[str] | tuple[str, ...], data: dict[str, Any], environment: str | None = None) -> Settings:
    """Validate one host's merged data (as pyinfra's `host.data.dict()` gives it) into `Settings`."""
    where = f"host {name}"
    unknown = [g for g in groups if g not in KNOWN_GROUPS]
    if unknown:
        raise SettingsError(f"{where}.groups", f"unknown group {unknown[0]!r}", f"use the groups {', '.join(ROLE_GROUPS)} and one environment")
    envs = sorted({g for g in groups if g in ENVIRONMENTS})
    if len(envs) != 1 or (environment is not None and envs != [environment]):
        this = f" (this inventory is {environment!r})" if environment else ""
        raise SettingsError(f"{where}.groups", f"belongs to environments {envs or 'none'}", f"put it in exactly one of {', '.join(ENVIRONMENTS)}{this}")
    ssh_keys = _ssh_keys()
    for key in data:
        if key.startswith("ssh_") and key not in ssh_keys:
            close = difflib.get_close_matches(key, sorted(ssh_keys), n=1)
            raise SettingsError(f"{where}.{key}", "unknown ssh key: pyinfra would ignore it", f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(sorted(ssh_keys))}")
    _refuse_pyinfra_arguments(where, data)
    _refuse_weak_ssh(where, data, envs[0])
    own = {k: v for k, v in data.items() if not k.startswith(("ssh_", "_"))}
    own["environment"] = envs[0]
    own.setdefault("address", data.get("ssh_hostname") or name)
    return parse(Settings, own, where)


def _host(inventory, host, name: str) -> EnvHost:
    data = host.data.dict()
    settings = host_settings(host.name, host.groups, data, name)  # groups and environment first
    _check_one_owner(inventory, host)
    connection = {k: v for k, v in data.items() if k.startswith("ssh_")}
    return EnvHost(name=host.name, groups=tuple(sorted(set(host.groups))), settings=settings, connection=connection)


@functools.cache
def _group_data() -> dict[str, dict[str, Any]]:
    from pyinfra_cli.inventory import _get_group_data

    with _pyinfra_state():
        return _get_group_data(str(GROUP_DATA))


def group_data(group: str) -> dict[str, Any]:
    """group_data/<group>.py as pyinfra's loader reads it (for tests and docs; the deploy merges whole inventories)."""
    return dict(_group_data().get(group, {}))


def environment_from_inventory(inventory, name: str, source: str = "inventory") -> Environment:
    """Validate a pyinfra `Inventory` of environment `name` into an `Environment`."""
    if name not in ENVIRONMENTS:
        raise SettingsError(source, f"{name!r} is not an environment", f"name the inventory file after one of {', '.join(ENVIRONMENTS)}")
    _check_groups(inventory, name, source)
    hosts = tuple(_host(inventory, host, name) for host in inventory)
    seen: dict[str, str] = {}
    for host in hosts:
        address = host.settings.address
        if address in seen:
            raise SettingsError(
                f"host {host.name}.address", f"{address} is also the address of {seen[address]}", "give every host its own address"
            )
        seen[address] = host.name
    return Environment(name=name, hosts=hosts)


@functools.cache
def load_environment(inventory_file: str | Path) -> Environment:
    """The validated environment of an inventory file, built once per run."""
    path = Path(inventory_file).resolve()
    try:
        source = str(path.relative_to(REPO))
    except ValueError:
        source = path.name
    return environment_from_inventory(pyinfra_inventory(path), path.stem, source)


def other_inventories(inventory_file: str | Path) -> dict[str, set[str]]:
    """Host names and addresses of the repository's other inventory files, per file."""
    path = Path(inventory_file).resolve()
    found = {}
    for other in sorted(INVENTORY_DIR.glob("*.py")):
        if other.resolve() == path:
            continue
        # Another inventory file may set environment variables (the lab's sets
        # SENTINEL_SECRETS_DIR): none of that may leak into this run's secrets.
        saved = dict(os.environ)
        try:
            inventory = pyinfra_inventory(other)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        found[f"inventory/{other.name}"] = {h.name for h in inventory} | {
            str(h.data.get("ssh_hostname") or h.data.get("address") or h.name) for h in inventory
        }
    return found


def check_hosts_in_one_environment(environment: Environment, inventory_file: str | Path) -> None:
    """Refuse a host (by name or address) that another inventory file also lists."""
    for source, names in other_inventories(inventory_file).items():
        for host in environment.hosts:
            clash = {host.name, host.settings.address} & names
            if clash:
                raise SettingsError(
                    f"host {host.name}",
                    f"{sorted(clash)[0]} is also in {source}: one host would get two environments' settings",
                    "keep each host in exactly one inventory file",
                )
