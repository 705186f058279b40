"""Checks across all hosts of an environment, run before pyinfra connects."""

from __future__ import annotations

from roles._schema import SettingsError
from roles._secrets import read_secret
from roles._settings import ROLE_GROUPS, Settings


def check_environment(hosts: dict[str, Settings], groups: dict[str, list[str]]) -> None:
    """Refuse an environment that cannot work: missing groups or secrets."""
    envs = {s.environment for s in hosts.values()}
    if len(envs) != 1:
        raise SettingsError("inventory", f"hosts of several environments {sorted(envs)}", "keep one environment per inventory")
    for name, settings in hosts.items():
        store = settings.object_store
        for secret in (store.access_key_secret, store.secret_key_secret):
            if name in groups.get("telemetry", []):
                if not read_secret(secret):
                    raise SettingsError(
                        f"host {name}.object_store",
                        f"the store credential {secret} is not set",
                        f"export {secret}=... or put it in $SENTINEL_SECRETS_DIR/{secret}",
                    )
    for group in ROLE_GROUPS:
        if not groups.get(group):
            raise SettingsError(f"inventory:{group}", "the group has no host", f"add at least one host to {group}")
