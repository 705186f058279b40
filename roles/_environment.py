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

from dataclasses import dataclass

from pydantic import Field, ValidationError

from roles._model import Model, SettingsError, SettingsErrors, settings_errors
if TYPE_CHECKING:
    from roles._topology import Topology

from roles._settings import ENVIRONMENTS, ROLE_GROUPS, SALVAGE, EnvironmentName, Settings

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


def _check_groups(inventory, name: str, source: str) -> list[SettingsError]:
    problems = []
    for group in inventory.groups:
        if group not in KNOWN_GROUPS:
            problems.append(SettingsError(
                f"{source}:{group}", "unknown group", f"use {', '.join(ROLE_GROUPS)} (and the environment group {name!r})"
            ))
    # pyinfra keeps the data of a group_data/<name>.py that no group uses, and applies it to nobody.
    for group in inventory.group_data:
        if group not in KNOWN_GROUPS + ("all",):
            close = difflib.get_close_matches(group, KNOWN_GROUPS, n=1)
            problems.append(SettingsError(
                f"group_data/{group}.py",
                "no group uses this file, so pyinfra silently ignores it",
                f"rename it to {close[0]}.py" if close else f"rename it after a group ({', '.join(KNOWN_GROUPS)}) or delete it",
            ))
    return problems


def _check_one_owner(inventory, host) -> list[SettingsError]:
    """A key set by two groups of one host: pyinfra keeps one group's value wholesale and drops the other."""
    set_by: dict[str, str] = {}
    problems = []
    for group in host.groups:
        for key in inventory.get_group_data(group):
            if key in set_by and set_by[key] != group:
                problems.append(SettingsError(
                    f"host {host.name}.{key}",
                    f"set by both the {set_by[key]!r} and {group!r} groups",
                    "set it in one group (or in all.py) and override single hosts in the inventory",
                ))
            else:
                set_by[key] = group
    return problems


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


def _refuse_pyinfra_arguments(where: str, data: dict[str, Any]) -> list[SettingsError]:
    return [
        SettingsError(
            f"{where}.{key}",
            "is one of pyinfra's global arguments: as host data it would change every command the deploy runs as root",
            "remove it (the toolkit allows only _sudo = True, to connect as a user that sudo makes root)",
        )
        for key in sorted(set(data) & _pyinfra_arguments())
        if data[key] not in ALLOWED_PYINFRA_ARGUMENTS.get(key, ())
    ]


def _refuse_weak_ssh(where: str, data: dict[str, Any], environment: str) -> list[SettingsError]:
    """Outside the lab, SSH checks the hosts' keys and never forwards the controller's agent."""
    if environment == "lab":
        return []  # lab hosts get new host keys on every `lab up`, on a bridge of the machine itself
    problems = []
    checking = data.get("ssh_strict_host_key_checking")
    if checking is not None and str(checking).lower() not in ("yes", "true", "accept-new"):
        problems.append(SettingsError(
            f"{where}.ssh_strict_host_key_checking",
            f"{checking!r} turns host-key checking off in {environment}: every secret file could go to an impostor host",
            "remove it (pyinfra checks against known_hosts), or pin the hosts' keys in ssh_known_hosts_file",
        ))
    if data.get("ssh_known_hosts_file") in ("/dev/null",):
        problems.append(SettingsError(
            f"{where}.ssh_known_hosts_file", f"/dev/null forgets every host key in {environment}", "point it at a file with the hosts' keys"
        ))
    if data.get("ssh_forward_agent"):
        problems.append(SettingsError(
            f"{where}.ssh_forward_agent",
            f"forwards the controller's SSH agent to the hosts in {environment}: root there could use its keys",
            "remove it",
        ))
    return problems


def host_settings(name: str, groups: list[str] | tuple[str, ...], data: dict[str, Any], environment: str | None = None) -> Settings:
    """Validate one host's merged data (as pyinfra's `host.data.dict()` gives it) into `Settings`.

    Every problem of the host is reported at once (SettingsErrors)."""
    checked = check_host(name, groups, data, environment)
    SettingsErrors.raise_if_any(checked.problems)
    return checked.settings


@dataclass(frozen=True)
class CheckedHost:
    """One host as preflight checked it: its problems, and settings to check the rest of the run with.

    With problems, `settings` holds the host's valid blocks and the defaults of those in
    `unchecked` (its top-level keys that failed), so the secrets and single-host checks of the
    other blocks still run; the deploy never receives such settings.
    """

    settings: Settings
    groups: tuple[str, ...]
    problems: list[SettingsError]
    unchecked: frozenset[str] = frozenset()


# Required keys a salvaged host needs some value for: never deployed, only to check the rest.
_PLACEHOLDERS = {"artifact_base_url": "https://unchecked.invalid", "address": "unchecked.invalid"}


def check_host(name: str, groups: list[str] | tuple[str, ...], data: dict[str, Any], environment: str | None = None) -> CheckedHost:
    """Every problem of one host's merged data, and its settings (salvaged where blocks failed)."""
    where = f"host {name}"
    problems: list[SettingsError] = []
    unknown = [g for g in groups if g not in KNOWN_GROUPS]
    if unknown:
        problems.append(SettingsError(f"{where}.groups", f"unknown group {unknown[0]!r}", f"use the groups {', '.join(ROLE_GROUPS)} and one environment"))
    envs = sorted({g for g in groups if g in ENVIRONMENTS})
    if len(envs) != 1 or (environment is not None and envs != [environment]):
        this = f" (this inventory is {environment!r})" if environment else ""
        problems.append(SettingsError(f"{where}.groups", f"belongs to environments {envs or 'none'}", f"put it in exactly one of {', '.join(ENVIRONMENTS)}{this}"))
    env = environment or (envs[0] if envs else "dev")
    ssh_keys = _ssh_keys()
    for key in data:
        if key.startswith("ssh_") and key not in ssh_keys:
            close = difflib.get_close_matches(key, sorted(ssh_keys), n=1)
            problems.append(SettingsError(f"{where}.{key}", "unknown ssh key: pyinfra would ignore it", f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(sorted(ssh_keys))}"))
    problems += _refuse_pyinfra_arguments(where, data)
    problems += _refuse_weak_ssh(where, data, env)
    own = {k: v for k, v in data.items() if not k.startswith(("ssh_", "_"))}
    own["environment"] = env
    own.setdefault("address", data.get("ssh_hostname") or name)
    known_groups = tuple(sorted({g for g in groups if g in ROLE_GROUPS} | {env}))
    try:
        settings = Settings.model_validate(own)
        return CheckedHost(settings, known_groups, problems)
    except ValidationError as err:
        problems += settings_errors(err, Settings, where)
        failed = {str(e["loc"][0]) for e in err.errors(include_url=False) if e["loc"]}
    # Salvage: the failed top-level keys at their defaults, the rules across blocks left for later.
    salvage = {k: v for k, v in own.items() if k not in failed}
    salvage.update({k: v for k, v in _PLACEHOLDERS.items() if k in failed})
    settings = None
    if failed:  # the rules across blocks that read none of the failed ones
        try:
            settings = Settings.model_validate(salvage, context={SALVAGE: frozenset(failed)})
        except ValidationError as err:
            problems += [e for e in settings_errors(err, Settings, where) if e.key not in {p.key for p in problems}]
    if settings is None:
        try:
            settings = Settings.model_validate(salvage, context={SALVAGE: True})
        except ValidationError:  # cannot happen: every failed key has a default or a placeholder
            settings = Settings.model_validate({"environment": env, **_PLACEHOLDERS}, context={SALVAGE: True})
            failed = set(Settings.model_fields)
    return CheckedHost(settings, known_groups, problems, frozenset(failed))


def _host(inventory, host, name: str) -> tuple[EnvHost, CheckedHost]:
    data = host.data.dict()
    checked = check_host(host.name, host.groups, data, name)  # groups and environment first
    problems = checked.problems + _check_one_owner(inventory, host)
    connection = {k: v for k, v in data.items() if k.startswith("ssh_")}
    # pydantic runs a model's own validators again on an instance: the host was checked just above.
    env_host = EnvHost.model_validate(
        {"name": host.name, "groups": checked.groups, "settings": checked.settings, "connection": connection}, context={SALVAGE: True}
    )
    return env_host, CheckedHost(checked.settings, checked.groups, problems, checked.unchecked)


@functools.cache
def _group_data() -> dict[str, dict[str, Any]]:
    from pyinfra_cli.inventory import _get_group_data

    with _pyinfra_state():
        return _get_group_data(str(GROUP_DATA))


def group_data(group: str) -> dict[str, Any]:
    """group_data/<group>.py as pyinfra's loader reads it (for tests and docs; the deploy merges whole inventories)."""
    return dict(_group_data().get(group, {}))


def environment_from_inventory(inventory, name: str, source: str = "inventory") -> Environment:
    """Validate a pyinfra `Inventory` of environment `name` into an `Environment`; every problem at once."""
    checked = check_inventory_hosts(inventory, name, source)
    SettingsErrors.raise_if_any(checked.problems)
    return checked.environment


@dataclass(frozen=True)
class CheckedEnvironment:
    """An inventory as preflight checked it: its problems, and the environment to check the rest with.

    `unchecked` maps a host with problems to its top-level keys that hold defaults (see CheckedHost);
    checks across hosts run only when it is empty.
    """

    environment: Environment
    problems: list[SettingsError]
    unchecked: dict[str, frozenset[str]]


def check_inventory_hosts(inventory, name: str, source: str = "inventory") -> CheckedEnvironment:
    """Every host of a pyinfra `Inventory` checked, each problem collected, host by host."""
    if name not in ENVIRONMENTS:
        raise SettingsError(source, f"{name!r} is not an environment", f"name the inventory file after one of {', '.join(ENVIRONMENTS)}")
    problems = _check_groups(inventory, name, source)
    hosts, unchecked = [], {}
    for host in inventory:
        env_host, checked = _host(inventory, host, name)
        hosts.append(env_host)
        problems += checked.problems
        if checked.unchecked:
            unchecked[host.name] = checked.unchecked
    seen: dict[str, str] = {}
    for host in hosts:
        if "address" in unchecked.get(host.name, ()):
            continue
        address = host.settings.address
        if address in seen:
            problems.append(SettingsError(
                f"host {host.name}.address", f"{address} is also the address of {seen[address]}", "give every host its own address"
            ))
        seen.setdefault(address, host.name)
    environment = Environment.model_validate({"name": name, "hosts": tuple(hosts)}, context={SALVAGE: True})
    return CheckedEnvironment(environment, problems, unchecked)


def load_environment(inventory_file: str | Path) -> Environment:
    """The validated environment of an inventory file, built once per run."""
    checked = check_inventory_file(inventory_file)
    SettingsErrors.raise_if_any(checked.problems)
    return checked.environment


@functools.cache
def check_inventory_file(inventory_file: str | Path) -> CheckedEnvironment:
    """An inventory file's hosts checked through pyinfra's own loader, once per run."""
    path = Path(inventory_file).resolve()
    try:
        source = str(path.relative_to(REPO))
    except ValueError:
        source = path.name
    return check_inventory_hosts(pyinfra_inventory(path), path.stem, source)


load_environment.cache_clear = check_inventory_file.cache_clear  # type: ignore[attr-defined]  # tests clear it


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


def check_hosts_in_one_environment(environment: Environment, inventory_file: str | Path) -> list[SettingsError]:
    """A host (by name or address) that another inventory file also lists, each one."""
    problems = []
    for source, names in other_inventories(inventory_file).items():
        for host in environment.hosts:
            clash = {host.name, host.settings.address} & names
            if clash:
                problems.append(SettingsError(
                    f"host {host.name}",
                    f"{sorted(clash)[0]} is also in {source}: one host would get two environments' settings",
                    "keep each host in exactly one inventory file",
                ))
    return problems
