"""Preflight: everything is checked before pyinfra contacts any host.

Each inventory file ends with `check_inventory(globals())`. It builds the run's one
`Environment` through pyinfra's own loader (roles/_environment.py), checks what
spans hosts and inventories, resolves every secret once, and stops pyinfra with
exit code 2 and every problem of the run at once: grouped by host, one line per
key with its fix, then the count (`report`). A host whose settings fail is checked
further with those blocks at their defaults (its other blocks, its secrets); the
checks across hosts run once every host's settings are valid. deploy.py then takes
the same Environment and Secrets with `validated_environment()`.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Mapping
from pathlib import Path

from roles._environment import (
    CheckedEnvironment,
    EnvHost,
    Environment,
    check_hosts_in_one_environment,
    check_inventory_file,
    check_inventory_hosts,
    loading,
)
from roles._model import SettingsError, SettingsErrors
from roles._secrets import Secrets, resolve_secrets
from roles._settings import ROLE_GROUPS, Settings
from roles._topology import Topology
from roles.alerting.preflight import check_catalog
from roles.grafana.preflight import check_admin_password_rotation, check_grafana, check_one_public_name, check_public_certificate
from roles.retention.contract import check_policy_labels

# Inventory file -> what preflight validated for it, so the deploy reuses it.
_validated: dict[str, tuple[Environment, Secrets]] = {}


def _collect(problems: list[SettingsError], check, *args) -> object:
    """Run one check, add what it refuses to `problems`; its result, or None when it refused."""
    try:
        return check(*args)
    except SettingsError as err:
        problems += SettingsErrors.of(err)
        return None


def check_environment(environment: Environment, unchecked: Mapping[str, Collection[str]] | None = None) -> Secrets:
    """Refuse an environment that cannot work, with every problem found; return its secrets, read and checked once.

    `unchecked`: hosts whose settings failed, with the blocks that hold defaults (CheckedEnvironment).
    """
    unchecked = unchecked or {}
    problems: list[SettingsError] = []
    for group in ROLE_GROUPS:
        if not environment.group(group):
            problems.append(SettingsError(f"inventory:{group}", "the group has no host", f"add at least one host to {group}"))
    for host in environment.hosts:
        if "retention" not in unchecked.get(host.name, ()):
            # A stream rule that no label of the log contract can match would keep nothing.
            _collect(problems, check_policy_labels, host.settings.retention, f"host {host.name}.retention")
    # Listeners, ports, flows and the firewall's openings: refused here if they cannot work.
    if unchecked:
        _collect(problems, Topology, environment, set(unchecked))
    else:
        _collect(problems, lambda: environment.topology)
    secrets = _collect(problems, resolve_secrets, environment, unchecked)
    _collect(problems, check_tls, environment, unchecked)
    monitoring = environment.group("monitoring")
    catalog_checked = False
    for host in monitoring:
        if {"alerting", "grafana", "traces", "logs"} & set(unchecked.get(host.name, ())):
            continue
        alerting = host.settings.alerting
        if not catalog_checked:  # one catalog for every host
            _collect(problems, check_catalog, alerting.runbook_base_url, alerting.grafana_url or "http://grafana:3000")
            catalog_checked = True
        _collect(problems, check_grafana, host.name, host.settings, len(monitoring))
        if secrets is not None:  # the certificate against root_url: its secrets resolved (else reported above)
            _collect(problems, check_public_certificate, host.name, host.settings, secrets)
            _collect(problems, check_admin_password_rotation, host.name, host.settings, secrets)
    if secrets is not None:
        from roles._placement import component
        from roles.object_store import check_rotations

        for host in environment.hosts:  # a rotation's previous S3 key ids, against the keys they overlap with
            if component("object_store").runs(host) and not {"object_store", "loki", "traces"} & set(unchecked.get(host.name, ())):
                _collect(problems, check_rotations, host.name, host.settings, secrets)
    if not any("grafana" in unchecked.get(host.name, ()) for host in monitoring):
        _collect(problems, check_one_public_name, [host for host in monitoring if host.settings.grafana.install_binary])
    SettingsErrors.raise_if_any(_unique(problems))
    assert isinstance(secrets, Secrets)
    return secrets


def check_tls(environment: Environment, unchecked: Mapping[str, Collection[str]] | None = None) -> None:
    """The CA that will issue the environment's certificates, before any host is touched (roles/_pki.py):
    the operator's (SENTINEL_TLS_CA_CERT / SENTINEL_TLS_CA_KEY) must be a matching pair, a CA, and outlive
    a certificate issued now with the longest tls.lifetime_days of the environment; the toolkit's own, when
    the PKI directory has one, must outlive it too. The refusal names the secret and the fix, never key
    material. The `tls` block's own rules (lifetime, renewal window, enabled) are the settings' (roles/_tls_settings.py)."""
    from cryptography import x509

    from roles import _pki

    unchecked = unchecked or {}
    lifetime = max(
        (host.settings.tls.lifetime for host in environment.hosts if "tls" not in unchecked.get(host.name, ())),
        default=_pki.LIFETIME,
    )
    try:
        cert, key = _pki.operator_ca_secrets()
        also = _pki.operator_also_trusted()
        if cert or key:
            current, _ = _pki.check_operator_ca(cert, key, lifetime)
            trusted = _pki.check_also_trusted(also, current)
            _pki.check_operator_overlap(_pki.pki_dir(environment.name), current, trusted)
        else:
            _pki.check_own_ca(environment.name, lifetime)
            own = _pki.pki_dir(environment.name) / "ca.crt"
            if also and own.exists():  # the switch to an operator's CA, its first step (docs/tls.md "CA rollover")
                _pki.check_also_trusted(also, x509.load_pem_x509_certificate(own.read_bytes()))
    except _pki.PkiError as err:
        raise SettingsError(err.key, err.problem, err.fix) from None


def _unique(problems: list[SettingsError]) -> list[SettingsError]:
    seen, unique = set(), []
    for problem in problems:
        if str(problem) not in seen:
            seen.add(str(problem))
            unique.append(problem)
    return unique


def check_checked(checked: CheckedEnvironment, inventory_file: str | Path | None = None) -> Secrets:
    """The rest of preflight on what the hosts' checks left: every problem of the run at once."""
    problems, secrets = list(checked.problems), None
    if inventory_file is not None:
        problems += check_hosts_in_one_environment(checked.environment, inventory_file)
    try:
        secrets = check_environment(checked.environment, checked.unchecked)
    except SettingsError as err:
        problems += SettingsErrors.of(err)
    SettingsErrors.raise_if_any(_unique(problems))
    assert isinstance(secrets, Secrets)
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
        checked = check_inventory_file(key)
        problems: list[SettingsError] = []
        _collect(problems, lambda: load_versions(environment=checked.environment.name))  # every deployed component pinned and verifiable
        try:
            secrets = check_checked(checked, key)
        except SettingsError as err:
            problems += SettingsErrors.of(err)
        SettingsErrors.raise_if_any(_unique(problems))
        _validated[key] = (checked.environment, secrets)
    return _validated[key]


def check_inventory(inventory_globals: dict) -> None:
    """Called at the end of each inventory file: stop pyinfra before it connects."""
    if loading():
        return  # the file is being read by check_inventory_file itself
    try:
        preflight(inventory_globals["__file__"])
    except SettingsError as err:
        _refuse(err, hosts=_host_names(inventory_globals["__file__"]))
    _check_overrides_before_connecting()


def report(err: SettingsError, what: str = "the inventory", hosts: Collection[str] = ()) -> str:
    """What the operator reads: every problem grouped by host (then the rest), sorted by key within
    a group, each with its fix, and the count last. Values went through `shown()` (SettingsError).

    `hosts`: the inventory's host names (they may hold dots, as keys do).
    """
    problems = SettingsErrors.of(err)
    groups: dict[str, list[tuple[str, SettingsError]]] = {}
    for problem in problems:
        head, key = _group_of(problem.key, hosts)
        groups.setdefault(head, []).append((key, problem))
    order = list(groups)
    lines = [f"preflight refused {what}:"]
    for head in sorted(order, key=lambda h: (not h.startswith("host "), order.index(h))):
        lines.append(f"{head}:")
        for key, problem in sorted(groups[head], key=lambda item: item[0]):
            lines.append(f"  {key}: {problem.problem}.")
            lines.append(f"    Fix: {problem.fix}")
    count = len(problems)
    lines.append(f"{count} problem{'s' if count != 1 else ''}, each with its fix above; nothing was sent to any host")
    return "\n".join(lines)


OTHER = "inventory and repository files"


def _group_of(key: str, hosts: Collection[str]) -> tuple[str, str]:
    """("host <name>", the key within the host) for a host's key, else (OTHER, key)."""
    if not key.startswith("host "):
        return OTHER, key
    rest = key[len("host "):]
    for name in sorted(hosts, key=len, reverse=True):  # the longest name that prefixes the key
        if rest == name or rest.startswith(name + "."):
            return f"host {name}", rest[len(name) + 1 :] or "(the host)"
    name, _, within = rest.partition(".")
    return f"host {name}", within or "(the host)"


def _host_names(inventory_file: str | Path) -> list[str]:
    try:
        return [h.name for h in check_inventory_file(str(Path(inventory_file).resolve())).environment.hosts]
    except SettingsError:
        return []


def _refuse(err: SettingsError, what: str = "the inventory", hosts: Collection[str] = ()) -> None:
    """pyinfra runs the inventory file inside its loader: SystemExit(2) ends the run there, before any connection."""
    print(f"\n{report(err, what, hosts)}\n", file=sys.stderr)
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
                _refuse(err, "the inventory with its pyinfra --data overrides", [h.name for h in inventory])
        return init(inventory, config, *args, **kwargs)

    init_after_checking_overrides.checks_overrides = True  # type: ignore[attr-defined]
    state.init = init_after_checking_overrides


def _validate_overrides(inventory) -> tuple[Environment, Secrets]:
    """The Environment and Secrets of pyinfra's live inventory, `--data` overrides applied; once per run."""
    if id(inventory) not in _overridden:
        environment, _ = _only_validated()
        checked = check_inventory_hosts(inventory, environment.name, "pyinfra --data")
        _overridden[id(inventory)] = (checked.environment, check_checked(checked))
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
