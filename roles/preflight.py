"""Preflight: everything is checked before pyinfra contacts any host.

Each inventory file ends with `check_inventory(globals())`. It builds the run's one
`Environment` through pyinfra's own loader (roles/_environment.py), checks what
spans hosts and inventories, resolves every secret once, and stops pyinfra with
exit code 2 and "key: problem. Fix: fix" on the first problem. deploy.py then takes
the same Environment and Secrets with `validated_environment()`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from roles._environment import (
    EnvHost,
    Environment,
    check_hosts_in_one_environment,
    environment_from_inventory,
    load_environment,
    loading,
)
from roles._model import SettingsError, SettingsErrors
from roles._secrets import Secrets, resolve_secrets
from roles._settings import ROLE_GROUPS, Settings
from roles.alerting.preflight import check_catalog
from roles.grafana.preflight import check_grafana
from roles.retention.contract import check_policy_labels

# Inventory file -> what preflight validated for it, so the deploy reuses it.
_validated: dict[str, tuple[Environment, Secrets]] = {}


def check_environment(environment: Environment) -> Secrets:
    """Refuse an environment that cannot work; return its secrets, read and checked once."""
    for group in ROLE_GROUPS:
        if not environment.group(group):
            raise SettingsError(f"inventory:{group}", "the group has no host", f"add at least one host to {group}")
    for host in environment.hosts:
        # A stream rule that no label of the log contract can match would keep nothing.
        check_policy_labels(host.settings.retention, f"host {host.name}.retention")
    # Listeners, ports, flows and the firewall's openings: refused here if they cannot work.
    environment.topology
    secrets = resolve_secrets(environment)
    monitoring = environment.group("monitoring")
    for host in monitoring:
        alerting = host.settings.alerting
        check_catalog(alerting.runbook_base_url, alerting.grafana_url or "http://grafana:3000")
        check_grafana(host.name, host.settings, len(monitoring))
    return secrets


def check_sentry(name: str, settings: Settings) -> None:
    """An app host's Sentry secrets alone: the DSN's shape, and the token when source maps are uploaded."""
    host = EnvHost(name=name, groups=("app", settings.environment), settings=settings)
    resolve_secrets(Environment(name=settings.environment, hosts=(host,)))


def preflight(inventory_file: str | Path) -> tuple[Environment, Secrets]:
    """Validate an inventory file once per run: versions, environment, other inventories, secrets."""
    from roles._service.artifacts import load_versions

    key = str(Path(inventory_file).resolve())
    if key not in _validated:
        environment = load_environment(key)
        load_versions(environment=environment.name)  # every deployed component pinned and verifiable
        check_hosts_in_one_environment(environment, key)
        _validated[key] = (environment, check_environment(environment))
    return _validated[key]


def check_inventory(inventory_globals: dict) -> None:
    """Called at the end of each inventory file: stop pyinfra before it connects."""
    if loading():
        return  # the file is being read by load_environment itself
    try:
        preflight(inventory_globals["__file__"])
    except SettingsError as err:
        _refuse(err)
    _check_overrides_before_connecting()


def _refuse(err: SettingsError, what: str = "the inventory") -> None:
    if isinstance(err, SettingsErrors):
        lines = "\n".join(f"  {e}" for e in err.errors)
        print(f"\npreflight refused {what}:\n{lines}\n{len(err.errors)} problems, each with its fix\n", file=sys.stderr)
    else:
        print(f"\npreflight refused {what}: {err}\n", file=sys.stderr)
    raise SystemExit(2) from None


def _check_overrides_before_connecting() -> None:
    """Have pyinfra check its `--data` overrides before it contacts the first host.

    The inventory file runs before pyinfra applies `--data`, so preflight cannot see
    the overrides from here. pyinfra's CLI then hands the final inventory to
    `State.init`, and connects only after that. pyinfra has no hook at that point
    (state callbacks are reset by `init`), so this run's state object gets an `init`
    that validates the overrides first: same rules, same exit code, before any host
    is touched. tests/unit/test_preflight.py runs the real CLI to hold pyinfra to it.
    """
    from pyinfra.context import ctx_state

    if not ctx_state.isset():
        return  # not a pyinfra CLI run (tests, docs)
    state = ctx_state.get()
    if getattr(state.init, "checks_overrides", False):
        return
    init = state.init

    def init_after_checking_overrides(inventory, config, *args, **kwargs):
        if getattr(inventory, "override_data", None):
            try:
                _validate_overrides(inventory)
            except SettingsError as err:
                _refuse(err, "the inventory with its pyinfra --data overrides")
        return init(inventory, config, *args, **kwargs)

    init_after_checking_overrides.checks_overrides = True  # type: ignore[attr-defined]
    state.init = init_after_checking_overrides


def _validate_overrides(inventory) -> tuple[Environment, Secrets]:
    """The Environment and Secrets of pyinfra's live inventory, `--data` overrides applied; once per run."""
    if id(inventory) not in _overridden:
        environment, _ = _only_validated()
        overridden = environment_from_inventory(inventory, environment.name, "pyinfra --data")
        _overridden[id(inventory)] = (overridden, check_environment(overridden))
    return _overridden[id(inventory)]


def _only_validated() -> tuple[Environment, Secrets]:
    if len(_validated) != 1:
        raise SettingsError(
            "inventory", "preflight did not run for this inventory", "end the inventory file with `check_inventory(globals())`"
        )
    return next(iter(_validated.values()))


def validated_environment() -> tuple[Environment, Secrets]:
    """For deploy.py: the Environment and Secrets preflight validated for this run's inventory.

    `pyinfra --data key=value` overrides reach pyinfra's live inventory after the
    inventory file (and so preflight) ran: when there are any, the Environment is
    the one validated from that live inventory before pyinfra connected, so the roles
    get what the operator asked for and an override is held to the same rules.
    """
    validated = _only_validated()
    live = _live_inventory()
    if live is None or not getattr(live, "override_data", None):
        return validated
    return _validate_overrides(live)


_overridden: dict[int, tuple[Environment, Secrets]] = {}


def _live_inventory():
    from pyinfra import context

    try:
        return context.state.inventory  # pyinfra raises ValueError outside a run
    except (AttributeError, ValueError):
        return None
