"""The backend's client certificate towards the host's collector agent (OTLP over TLS, docs/tls.md).

On the `app` hosts, from the environment CA (roles/_pki.py, roles/_tls.py): the identity
spiffe://sentinel/<environment>/<host>/backend, under /etc/sentinel/tls/: ca.crt and
sentinel.crt 0644 root:sentinel, sentinel.key 0600 root:root (every file checked with openssl
before it replaces the live one).

The key is root's alone because the collector agent is a member of the `sentinel` group (it
reads the backend's log directory, roles/otel_collector): with the key group-readable, the
agent could show the backend's identity to the gateway (issue 22). The backend gets its key
from systemd instead: a drop-in for its unit (backend.unit, the lab's or the operators' own),
/etc/systemd/system/<unit>.d/sentinel-otlp-credential.conf, says
`LoadCredential=otlp-client.key:/etc/sentinel/tls/sentinel.key`; PID 1 reads the key as root at
each start and hands the service a copy in /run/credentials/<unit>/, readable by the service's
own user only (systemd >= 247: Debian 12 has 252, Debian 13 257). The drop-in is checked with
`systemd-analyze verify` on the host (`dropin_check`) before it replaces the live one, and a
change reloads systemd. `backend_env` (roles/backend) names the CA, the certificate and that
copy in the env file as the OpenTelemetry SDK reads them, and restarts the backend when they or
the drop-in change.

Only when the backend exports to the host's agent: an endpoint of the operator's
(backend.otlp_endpoint) has its own trust, and gets no certificate of ours; a drop-in left from
an earlier converge is removed then (its source key would no longer be renewed, and a missing
source stops the unit from starting).

Apart from roles/backend/__init__.py: roles._secrets imports roles.backend.sentry, and the
CA reads the secrets, so the package itself imports nothing of the PKI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import re

from pyinfra.operations import files, systemd

from roles._service import quoting
from roles._service.operations import validated_file
from roles._tls import TlsPaths, leaf, otlp_sdk_env, tls_files
from roles.backend import GROUP, agent_endpoints, config_dir, uses_agent_tls

if TYPE_CHECKING:
    from roles._context import HostContext
    from roles.backend.settings import BackendSettings

TLS = TlsPaths(GROUP)  # /etc/sentinel/tls: the backend's group reads the CA and the certificate; the key is root's
COMPONENT = "backend"
# The credential's name: the file's name in the service's $CREDENTIALS_DIRECTORY.
CREDENTIAL = "otlp-client.key"
DROPIN = "sentinel-otlp-credential.conf"
# A service unit's name as systemd takes it (unit-name.c: letters, digits, the characters of
# ":-_." and one "@" between a template's prefix and its instance); systemd's backslash escapes
# are refused, as the settings refuse them.
_SERVICE_UNIT = re.compile(r"[A-Za-z0-9:_.-]+(@[A-Za-z0-9:_.-]+)?\.service")
# The unit `dropin_check` verifies the drop-in against: any name but the backend's own, whose live
# drop-ins systemd-analyze would read as well.
_CHECK_UNIT = "sentinel-credential-check.service"


@dataclass(frozen=True)
class BackendTls:
    """What the env file names (the SDK's variables) and the operations whose change restarts the backend."""

    env: dict[str, str]
    changes: tuple = ()


def service_unit(unit: str) -> str:
    """`unit` as a service unit's full name ("sentinel-backend" -> "sentinel-backend.service"), or QuotingError.

    The name becomes a directory under /etc/systemd/system and /run/credentials: control characters,
    "/", a template without its instance ("x@.service") and anything systemd would not call a service are refused.
    """
    quoting.refuse_control(unit, "backend.unit")
    name = unit if unit.endswith(".service") else f"{unit}.service"
    if not _SERVICE_UNIT.fullmatch(name) or len(name) > 255:
        raise quoting.QuotingError(
            "backend.unit: not a systemd service name (letters, digits and :_.- with at most one @instance); "
            "write it like sentinel-backend.service"
        )
    return name


def credential_path(unit: str) -> str:
    """Where the backend's process finds its key: systemd's copy in /run/credentials/<unit>/ (systemd.exec(5),
    $CREDENTIALS_DIRECTORY). Written out from the unit's name: EnvironmentFile= values get no specifiers."""
    return f"/run/credentials/{service_unit(unit)}/{CREDENTIAL}"


def dropin_path(unit: str) -> str:
    """The toolkit's drop-in for the backend's unit."""
    return f"/etc/systemd/system/{service_unit(unit)}.d/{DROPIN}"


def render_dropin(unit: str, key: str = TLS.key) -> str:
    """The drop-in: systemd loads `key` as the credential CREDENTIAL of the backend's unit."""
    name = service_unit(unit)
    source = quoting.systemd_path(key, f"{name} LoadCredential")
    if ":" in source:
        raise quoting.QuotingError(f"{name} LoadCredential: the key's path holds ':', which ends the credential's name")
    return (
        "# Managed by the Sentinel observability toolkit (roles/backend/tls.py).\n"
        "# The OTLP client key: root's alone on disk, the service's own user reads systemd's copy in\n"
        f"# /run/credentials/{name}/{CREDENTIAL} (OTEL_EXPORTER_OTLP_CLIENT_KEY in the env file).\n"
        "[Service]\n"
        f"LoadCredential={CREDENTIAL}:{source}\n"
    )


def dropin_check(key: str = TLS.key) -> str:
    """Shell: check the staged drop-in `{path}` (validated_file's placeholder) before it replaces the live one.

    systemd-analyze verify reads a unit's drop-ins from `<unit>.d/` beside the unit file it is given,
    but it exits 0 on a bad line (an unknown key, a bad section, an invalid credential name): it only
    warns. So the drop-in is put beside a minimal unit in a scratch directory, and any line that
    names the scratch directory fails the check, as a non-zero exit does. `key` must be a file:
    LoadCredential= of a missing file stops the unit from starting.
    """
    script = "\n".join([
        "set -eu",
        'test -f "$2" || { echo "the credential source $2 is missing" >&2; exit 1; }',
        "d=$(mktemp -d)",
        "trap 'rm -rf \"$d\"' EXIT",
        f'u="$d/{_CHECK_UNIT}"',
        'mkdir "$u.d"',
        "printf '[Service]\\nExecStart=/bin/true\\n' >\"$u\"",
        'cp -- "$1" "$u.d/check.conf"',
        "out=$(systemd-analyze verify \"$u\" 2>&1) || { printf '%s\\n' \"$out\" >&2; exit 1; }",
        "if printf '%s\\n' \"$out\" | grep -F -- \"$d\" >&2; then exit 1; fi",
    ])
    return f"sh -c {quoting.sh_quote(script)} sentinel-dropin-check {{path}} {quoting.sh_quote(quoting.refuse_control(key, 'key'))}"


def backend_tls(backend: BackendSettings, ctx: HostContext) -> BackendTls | None:
    """
    Write the backend's certificate, its key and the CA; None when the backend does not export to the host's agent.

    + backend: the `backend` block
    + ctx: the host context (the environment's CA, the topology's agent)
    """
    if not uses_agent_tls(ctx.settings, agent_endpoints(ctx)):
        remove_dropin(backend.unit)
        return None
    certificate = leaf(ctx, COMPONENT)
    config_dir()
    files.directory(name="backend: TLS dir", path=TLS.dir, user="root", group=GROUP, mode="0750")
    changes = tuple(
        validated_file(name=f"backend: TLS {f.dest}", dest=f.dest, content=f.content, validate=f.validate,
                       **_owner_and_mode(f.dest, f.mode))
        for f in tls_files(GROUP, certificate)
    )
    dropin = credential_dropin(backend.unit)
    if ctx.name in ctx.topology.runs.get("node_exporter", ()):
        from roles.node_exporter import certificate_expiry

        certificate_expiry(ctx.settings.node_exporter.textfile_dir, COMPONENT, certificate)
    return BackendTls(otlp_sdk_env(TLS, key=credential_path(backend.unit)), (*changes, dropin))


def _owner_and_mode(dest: str, mode: str) -> dict[str, str]:
    """The key is root's alone (systemd hands the backend a copy); the CA and the certificate are the group's to read."""
    if dest == TLS.key:
        return {"user": "root", "group": "root", "mode": "0600"}
    return {"user": "root", "group": GROUP, "mode": mode}


def credential_dropin(unit: str):
    """The drop-in that hands the backend its key (checked on the host before the swap), and a
    daemon-reload when it changed; the operation, whose change restarts the backend (`backend_env`)."""
    path = dropin_path(unit)
    files.directory(name="backend: drop-in dir", path=path.rsplit("/", 1)[0], user="root", group="root", mode="0755")
    dropin = validated_file(name="backend: key as a systemd credential", dest=path, content=render_dropin(unit),
                            validate=dropin_check(TLS.key), user="root", group="root", mode="0644")
    systemd.daemon_reload(name="backend: daemon-reload for the credential drop-in", _if=dropin.did_change)
    return dropin


def remove_dropin(unit: str) -> None:
    """No drop-in when the backend does not export to the host's agent: it would load a key no longer renewed,
    and a missing source stops the unit. Nothing happens when there is none (the usual case)."""
    removed = files.file(name="backend: no credential drop-in", path=dropin_path(unit), present=False)
    systemd.daemon_reload(name="backend: daemon-reload without the drop-in", _if=removed.did_change)
