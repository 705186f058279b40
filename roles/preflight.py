"""Checks across all hosts of an environment, run before pyinfra connects."""

from __future__ import annotations

from roles._schema import SettingsError
from roles._secrets import read_secret
from roles._settings import ROLE_GROUPS, Settings
from roles.alerting.preflight import check_catalog, check_receivers
from roles.backend.sentry import validate_dsn
from roles.grafana_backup.settings import check_environment as check_grafana_backup


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
    for name in groups.get("app", []):
        check_sentry(name, hosts[name])
    for name in groups.get("monitoring", []):
        check_receivers(name, hosts[name])
        check_grafana_backup(hosts[name].grafana_backup, hosts[name].environment, f"host {name}")
        check_catalog(hosts[name].alerting.runbook_base_url, hosts[name].alerting.grafana_url or "http://grafana:3000")
    for group in ROLE_GROUPS:
        if not groups.get(group):
            raise SettingsError(f"inventory:{group}", "the group has no host", f"add at least one host to {group}")


def check_sentry(name: str, settings: Settings) -> None:
    """Refuse a Sentry DSN the SDK would reject, and a source map upload without its token.

    An unset DSN is allowed: the backend runs with Sentry off and the deploy says so.
    """
    backend = settings.backend
    secret = backend.sentry_dsn_secret
    dsn = read_secret(secret)
    if not dsn:
        return
    try:
        validate_dsn(dsn)
    except ValueError as err:
        # The validator's message never quotes the key, so it is safe to print.
        raise SettingsError(
            f"host {name}.backend.sentry_dsn_secret",
            f"the secret {secret} is not a valid Sentry DSN: {err}",
            f"set {secret} (environment or $SENTINEL_SECRETS_DIR/{secret}) to the DSN from the Sentry project's "
            "Client Keys page, https://<public_key>@<host>/<project_id>, or unset it to turn Sentry off",
        ) from None
    token = backend.sentry_auth_token_secret
    if backend.sourcemaps_dir and not read_secret(token):
        raise SettingsError(
            f"host {name}.backend.sentry_auth_token_secret",
            f"source maps in {backend.sourcemaps_dir} are to be uploaded but the secret {token} is not set",
            f"export {token}=... (a Sentry auth token with project:releases) or put it in $SENTINEL_SECRETS_DIR/{token}",
        )
