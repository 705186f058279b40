"""The validated settings model of one host, built from inventory and group data.

Data flows one way: inventory + group_data -> `Settings` -> roles -> templates.
`check_inventory()` runs from each inventory file, so bad data is refused before
pyinfra connects to any host; `settings_for(host)` rebuilds the same model from
pyinfra's merged host data inside the deploy.
"""

from __future__ import annotations

import functools
import runpy
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roles._schema import SettingsError, check_url, parse
from roles.alerting.settings import AlertingSettings
from roles.backend.settings import BackendSettings
from roles.grafana_backup.settings import GrafanaBackupSettings
from roles.node_exporter.settings import NodeExporterSettings
from roles.object_store.settings import ObjectStoreSettings
from roles.prometheus.settings import PrometheusSettings
from roles.retention.settings import RetentionPolicy

REPO = Path(__file__).resolve().parent.parent
GROUP_DATA = REPO / "group_data"
ROLE_GROUPS = ("monitoring", "telemetry", "app")
ENVIRONMENTS = ("dev", "staging", "prod", "lab")
# Data keys that belong to pyinfra itself (connection settings, global arguments).
_PYINFRA_PREFIXES = ("ssh_", "_")


@dataclass(frozen=True)
class Settings:
    environment: str
    artifact_base_url: str
    address: str
    systemd_hardening: bool = True
    prometheus: PrometheusSettings = field(default_factory=PrometheusSettings)
    node_exporter: NodeExporterSettings = field(default_factory=NodeExporterSettings)
    object_store: ObjectStoreSettings = field(default_factory=ObjectStoreSettings)
    backend: BackendSettings = field(default_factory=BackendSettings)
    alerting: AlertingSettings = field(default_factory=AlertingSettings)
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    grafana_backup: GrafanaBackupSettings = field(default_factory=GrafanaBackupSettings)

    def validate(self, prefix: str) -> None:
        check_url(f"{prefix}.artifact_base_url", self.artifact_base_url)


def _environment_of(groups: list[str], where: str) -> str:
    envs = [g for g in groups if g in ENVIRONMENTS]
    if len(envs) != 1:
        raise SettingsError(
            f"{where}.groups", f"belongs to environments {envs or 'none'}", f"put it in exactly one of {', '.join(ENVIRONMENTS)}"
        )
    return envs[0]


def build(name: str, groups: list[str], data: dict[str, Any]) -> Settings:
    """Validate one host's merged data into `Settings`; errors name the host and key."""
    where = f"host {name}"
    unknown_groups = [g for g in groups if g not in ROLE_GROUPS + ENVIRONMENTS + ("all",)]
    if unknown_groups:
        raise SettingsError(
            f"{where}.groups", f"unknown group {unknown_groups[0]!r}", f"use the groups {', '.join(ROLE_GROUPS)} and one environment"
        )
    own = {k: v for k, v in data.items() if not k.startswith(_PYINFRA_PREFIXES)}
    own["environment"] = _environment_of(groups, where)
    own.setdefault("address", data.get("ssh_hostname") or name)
    return parse(Settings, own, where)


def settings_for(host) -> Settings:
    """The settings of a pyinfra host, from its merged data."""
    return build(host.name, list(host.groups), dict(host.data.dict()))


@functools.cache
def load_group_data(group: str) -> dict[str, Any]:
    """Public names of `group_data/<group>.py`, as pyinfra reads them."""
    path = GROUP_DATA / f"{group}.py"
    if not path.exists():
        return {}
    values = runpy.run_path(str(path))
    return {
        k: v
        for k, v in values.items()
        if not k.startswith("_") and not isinstance(v, (types.ModuleType, types.FunctionType, type))
    }


def _hosts_of(group_value) -> tuple[list, dict]:
    if isinstance(group_value, tuple) and len(group_value) == 2 and isinstance(group_value[1], dict):
        return list(group_value[0]), dict(group_value[1])
    return list(group_value), {}


@dataclass(frozen=True)
class InventoryHost:
    name: str
    groups: tuple[str, ...]
    data: dict[str, Any]  # merged like pyinfra: all.py < group data < host data


def inventory_hosts(inventory_globals: dict[str, Any]) -> list[InventoryHost]:
    """The hosts of an inventory module with their groups and merged data."""
    env = Path(inventory_globals["__file__"]).stem
    groups: dict[str, tuple[list, dict]] = {
        k: _hosts_of(v)
        for k, v in inventory_globals.items()
        if not k.startswith("_") and isinstance(v, (list, tuple))
    }
    for group in groups:
        if group not in ROLE_GROUPS + ENVIRONMENTS + ("all",):
            raise SettingsError(
                f"inventory/{env}.py:{group}", "unknown group", f"use {', '.join(ROLE_GROUPS)} (and the environment group {env!r})"
            )
    host_groups: dict[str, list[str]] = {}
    host_data: dict[str, dict] = {}
    for group, (hosts, _) in groups.items():
        for entry in hosts:
            name, data = (entry[0], entry[1]) if isinstance(entry, tuple) else (entry, {})
            host_groups.setdefault(name, []).append(group)
            host_data.setdefault(name, {}).update(data)
    result = []
    for name, member_of in host_groups.items():
        member_of = member_of + ([env] if env not in member_of else [])
        merged: dict[str, Any] = dict(load_group_data("all"))
        set_by: dict[str, str] = {}
        for group in member_of:
            group_values = {**groups.get(group, ([], {}))[1], **load_group_data(group)}
            for key in group_values:
                if key in set_by and set_by[key] != group:
                    # pyinfra replaces a key wholesale by group order, which silently drops settings.
                    raise SettingsError(
                        f"host {name}.{key}",
                        f"set by both the {set_by[key]!r} and {group!r} groups",
                        "set it in one group (or in all.py) and override single hosts in the inventory",
                    )
                set_by[key] = group
            merged.update(group_values)
        merged.update(host_data[name])
        result.append(InventoryHost(name, tuple(member_of), merged))
    return result


def inventory_settings(inventory_globals: dict[str, Any]) -> tuple[dict[str, Settings], dict[str, list[str]]]:
    """Validate every host of an inventory module, merging data the way pyinfra does.

    Returns the settings per host and the host names per group.
    """
    hosts = inventory_hosts(inventory_globals)
    settings = {h.name: build(h.name, list(h.groups), h.data) for h in hosts}
    groups = sorted({g for h in hosts for g in h.groups})
    return settings, {g: [h.name for h in hosts if g in h.groups] for g in groups}


def check_inventory(inventory_globals: dict[str, Any]) -> None:
    """Called at the end of each inventory file: stop pyinfra before it connects."""
    try:
        from roles._service.artifacts import load_versions
        from roles.preflight import check_environment

        load_versions()  # every artifact pinned and verifiable
        check_environment(*inventory_settings(inventory_globals))
    except SettingsError as err:
        print(f"\npreflight refused the inventory: {err}\n", file=sys.stderr)
        raise SystemExit(2) from None
