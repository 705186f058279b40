"""The backend's client certificate towards the collector gateway (OTLP over TLS, docs/tls.md).

On the `app` hosts, from the environment CA (roles/_pki.py, roles/_tls.py): the identity
spiffe://sentinel/<environment>/<host>/backend, under /etc/sentinel/tls/: ca.crt and
sentinel.crt 0644, sentinel.key 0640 root:sentinel (the backend's group; every file checked
with openssl before it replaces the live one). `backend_env` (roles/backend) names them in
the env file as the OpenTelemetry SDK reads them, and restarts the backend when they change.

Only when the backend exports to the topology's gateway: an endpoint of the operator's
(backend.otlp_endpoint) has its own trust, and gets no certificate of ours.

Apart from roles/backend/__init__.py: roles._secrets imports roles.backend.sentry, and the
CA reads the secrets, so the package itself imports nothing of the PKI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyinfra.operations import files

from roles._service.operations import validated_file
from roles._tls import TlsPaths, leaf, otlp_sdk_env, tls_files
from roles.backend import GROUP, config_dir, gateway_endpoints, uses_gateway_tls

if TYPE_CHECKING:
    from roles._context import HostContext
    from roles.backend.settings import BackendSettings

TLS = TlsPaths(GROUP)  # /etc/sentinel/tls: the backend's group reads the key
COMPONENT = "backend"


@dataclass(frozen=True)
class BackendTls:
    """What the env file names (the SDK's variables) and the operations whose change restarts the backend."""

    env: dict[str, str]
    changes: tuple = ()


def backend_tls(backend: BackendSettings, ctx: HostContext) -> BackendTls | None:
    """
    Write the backend's certificate, its key and the CA; None when the backend does not export to the gateway.

    + backend: the `backend` block
    + ctx: the host context (the environment's CA, the topology's gateway)
    """
    if not uses_gateway_tls(ctx.settings, gateway_endpoints(ctx)):
        return None
    certificate = leaf(ctx, COMPONENT)
    config_dir()
    files.directory(name="backend: TLS dir", path=TLS.dir, user="root", group=GROUP, mode="0750")
    changes = tuple(
        validated_file(name=f"backend: TLS {f.dest}", dest=f.dest, content=f.content, validate=f.validate,
                       user="root", group=GROUP, mode=f.mode)
        for f in tls_files(GROUP, certificate)
    )
    if ctx.name in ctx.topology.runs.get("node_exporter", ()):
        from roles.node_exporter import certificate_expiry

        certificate_expiry(ctx.settings.node_exporter.textfile_dir, COMPONENT, certificate)
    return BackendTls(otlp_sdk_env(TLS), changes)
