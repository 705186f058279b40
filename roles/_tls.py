"""TLS and client-certificate identity for the exporter-toolkit listeners (Prometheus, Alertmanager,
node_exporter) and the collector gateway's OTLP listeners, from the environment CA (roles/_pki.py)
and the topology.

A listener of TLS_LISTENERS serves the certificate of its host and component, requires a
client certificate from the environment CA (`RequireAndVerifyClientCert`, TLS 1.2 at least)
and admits only the identities (the certificates' URI SANs) that the topology's flows name
as its clients, plus the operator's and the component's own on its host (its readiness check).
exporter-toolkit checks the chain and then `client_allowed_sans`; a certificate of the right
CA for another flow (app1's node_exporter against Alertmanager) is refused by the second.

On the host, under /etc/<service>/tls: ca.crt and <service>.crt 0644, <service>.key 0640
root:<service>, each checked with openssl before it replaces the live one. exporter-toolkit
reads the web config and the files on every new connection, so a renewed certificate is
served without a restart.

A certificate lives the host's `tls.lifetime_days` and is renewed in its last
`tls.renew_within_days` (roles/_tls_settings.py; 30 and 10 by default).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from roles._pki import LIFETIME, OPERATOR, CertificateAuthority, Leaf, ca_state, environment_ca, identity_uri, pki_dir
from roles._service import ConfigFile
from roles._service.render import dump_yaml

if TYPE_CHECKING:
    from roles._context import HostContext
    from roles._topology import Topology

# Listeners served over TLS with client certificates, and the component whose certificate they serve.
TLS_LISTENERS = {
    "prometheus.web": "prometheus",
    "alertmanager.web": "alertmanager",
    "node_exporter.metrics": "node_exporter",
}
# The stores' listeners served over TLS with client certificates (issue 22), and the component whose
# certificate they serve. Not exporter-toolkit: every store is served by its authenticating front (nginx,
# roles/_front.py), which admits each identity to its own paths (Loki's and Tempo's rendered only).
STORE_TLS_LISTENERS = {
    "victorialogs.http": "victorialogs",
    "victorialogs.storage": "victorialogs",  # stores.mode scalable: the storage node (same front, same certificate)
    "jaeger.otlp_http": "jaeger",
    "jaeger.query": "jaeger",
    "jaeger.metrics": "jaeger",
    "loki.http": "loki",
    "tempo.http": "tempo",
    "tempo.otlp_http": "tempo",
}
# Listeners served over https with the environment CA's certificate that do not ask for a client
# certificate (their users are browsers): their clients use https and verify the CA all the same.
HTTPS_LISTENERS = {
    "grafana.http": "grafana",
}
MIN_VERSION = "TLS12"
# The cert-expiry alert's metric: one textfile per service (node_exporter's textfile collector).
EXPIRY_METRIC = "sentinel_tls_certificate_not_after_seconds"


# The collector gateway's OTLP listeners (configtls in the otlp receiver): TLS 1.2 at least with the
# gateway's certificate, and a client certificate of the environment CA required (`client_ca_file`).
# configtls has no list of allowed identities: any certificate of the CA passes the handshake, so the
# gateway's receivers also ask each sender for its own bearer token (roles/_otlp_tokens.py), and the
# firewall (the topology's flows) confines who reaches these ports (docs/tls.md "The collector gateway").
OTLP_TLS_LISTENERS = {
    "gateway.otlp_grpc": "gateway",
    "gateway.otlp_http": "gateway",
    # The agent's receiver for the backend on its host (127.0.0.1): the same rules, the agent's certificate.
    "agent.otlp_http": "agent",
}
CONFIGTLS_MIN_VERSION = "1.2"  # configtls's spelling of TLS12


def is_tls(listener: str) -> bool:
    """Whether clients reach `listener` over TLS (with or without a client certificate)."""
    return listener in TLS_LISTENERS or listener in OTLP_TLS_LISTENERS or listener in STORE_TLS_LISTENERS or listener in HTTPS_LISTENERS


@dataclass(frozen=True)
class TlsPaths:
    """Where a service's TLS files live on its host."""

    service: str
    base: str = "/etc"  # another root for tests that check rendered configs against real files

    @property
    def dir(self) -> str:
        return f"{self.base}/{self.service}/tls"

    @property
    def ca(self) -> str:
        return f"{self.dir}/ca.crt"

    @property
    def cert(self) -> str:
        return f"{self.dir}/{self.service}.crt"

    @property
    def key(self) -> str:
        return f"{self.dir}/{self.service}.key"

    @property
    def web_config(self) -> str:
        return f"{self.base}/{self.service}/web.yml"

    def curl_args(self) -> tuple[str, ...]:
        """curl's options to call a TLS listener with this service's identity (checks run as root on the host)."""
        return ("--cacert", self.ca, "--cert", self.cert, "--key", self.key)


def _ca(environment: str, lifetime_days: int) -> CertificateAuthority:
    """The run's CA, opened once per state of the PKI directory (a CA rollover step opens it again: a
    long-lived process never issues from a CA that is no longer current)."""
    return _ca_for(environment, lifetime_days, ca_state(pki_dir(environment)))


@functools.cache
def _ca_for(environment: str, lifetime_days: int, state: tuple) -> CertificateAuthority:
    return environment_ca(environment, dt.timedelta(days=lifetime_days))


_ca.cache_clear = _ca_for.cache_clear  # the tests' handle, as before


def ca_pem(ctx: "HostContext") -> str:
    """The environment CA's certificate (PEM), for clients that verify a listener with it."""
    return _ca(ctx.environment, ctx.settings.tls.lifetime_days).ca_pem


def server_names(topology: "Topology", host: str, listener: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(DNS names, IPs) a listener's certificate carries: the host's name and address as the topology
    has them, its pool's name, its IP, and the loopback where the host checks itself (and its local clients)."""
    l = topology.listener(host, listener)
    dns, ips = {l.host}, {l.ip, "127.0.0.1"}
    if l.spec.pool_name:  # the pool's clients connect by its name (the gateways')
        dns.add(l.spec.pool_name)
    if _is_ip(l.address):
        ips.add(l.address)
    else:
        dns.add(l.address)
    return tuple(sorted(dns)), tuple(sorted(ips))


def _is_ip(value: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def leaf(ctx: "HostContext", service: str, listener: str | None = None, ca: CertificateAuthority | None = None) -> Leaf:
    """This host's certificate for `service` (a server's names from its `listener`, else a client's identity only),
    living the host's tls.lifetime_days and renewed in its last tls.renew_within_days (roles/_tls_settings.py)."""
    tls = ctx.settings.tls
    ca = ca or _ca(ctx.environment, tls.lifetime_days)
    dns, ips = server_names(ctx.topology, ctx.name, listener) if listener else ((), ())
    return ca.issue(ctx.name, service, dns, ips, lifetime=tls.lifetime, renew_before=tls.renew_before)


def allowed_clients(topology: "Topology", host: str, listener: str) -> list[str]:
    """The identities `listener` on `host` admits: its flows' clients, the component itself on its host, the operator."""
    environment = topology.environment.name
    allowed = {identity_uri(environment, client, flow.client) for client, flow in topology.clients(listener)}
    allowed.add(identity_uri(environment, host, TLS_LISTENERS[listener]))
    allowed.add(identity_uri(environment, None, OPERATOR))
    return sorted(allowed)


def web_config(paths: TlsPaths, allowed: list[str]) -> str:
    """exporter-toolkit's web config (--web.config.file)."""
    return dump_yaml({
        "tls_server_config": {
            "cert_file": paths.cert,
            "key_file": paths.key,
            "client_auth_type": "RequireAndVerifyClientCert",
            "client_ca_file": paths.ca,
            "client_allowed_sans": list(allowed),
            "min_version": MIN_VERSION,
        },
    })


def client_tls_config(paths: TlsPaths, server_name: str | None = None) -> dict:
    """A Prometheus-style `tls_config` with the service's own identity (scrapes, alert pushes)."""
    config = {"ca_file": paths.ca, "cert_file": paths.cert, "key_file": paths.key, "min_version": MIN_VERSION}
    if server_name:
        config["server_name"] = server_name
    return config


def otlp_sdk_env(paths: TlsPaths, key: str | None = None) -> dict[str, str]:
    """What an OpenTelemetry SDK reads for OTLP over TLS with a client certificate (the spec's
    OTEL_EXPORTER_OTLP_* variables; @opentelemetry/otlp-exporter-base reads all three in Node).

    `key`: where the process finds its key when not at `paths.key` (the backend's: the copy systemd
    hands it under /run/credentials, roles/backend/tls.py)."""
    return {
        "OTEL_EXPORTER_OTLP_CERTIFICATE": paths.ca,
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": paths.cert,
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": key or paths.key,
    }


def tls_files(service: str, certificate: Leaf) -> tuple[ConfigFile, ...]:
    """The CA, certificate and key as files checked with openssl on the host (the key last: it must match)."""
    paths = TlsPaths(service)
    return (
        ConfigFile(paths.ca, certificate.ca_pem, validate="openssl x509 -noout -in {path}", mode="0644"),
        ConfigFile(paths.cert, certificate.cert_pem, validate=f"openssl verify -CAfile {paths.ca} {{path}}", mode="0644"),
        # The key matches the certificate: the same public key out of both.
        ConfigFile(paths.key, certificate.key_pem,
                   validate=f"test \"$(openssl pkey -pubout -in {{path}})\" = \"$(openssl x509 -pubkey -noout -in {paths.cert})\"",
                   mode="0640"),
    )


def expiry_textfile(service: str, certificate: Leaf, renewed_by_operator: bool = False) -> str:
    """node_exporter textfile: the certificate's notAfter, for the cert-expiry alerts. `renewed_by_operator`: a
    certificate no converge renews (the operator's public one for Grafana), labelled `renewed_by="operator"`:
    PublicCertificateExpiresSoon warns about it weeks ahead, CertificateExpiresSoon leaves it alone."""
    operator = ',renewed_by="operator"' if renewed_by_operator else ""
    return (
        f"# HELP {EXPIRY_METRIC} notAfter of a TLS certificate the toolkit installed, as a Unix time.\n"
        f"# TYPE {EXPIRY_METRIC} gauge\n"
        f'{EXPIRY_METRIC}{{service="{service}",certificate="{certificate.name}"{operator}}} {int(certificate.not_after.timestamp())}\n'
    )


# --- identities that are not a host's component (issue 22: the stores) ---------------------------

# The erasure command's identity (python -m roles.retention.erase, run on the controller like the
# operator's tools): the only one besides the store's own retention job that VictoriaLogs' delete API admits.
ERASURE = "erasure"


def common_name(host: str | None, component: str) -> str:
    """The subject CN the CA gives a leaf (roles/_pki.py `issue`: "<host>.<component>", or the component
    alone for the controller's identities). nginx can match a client by its subject, not by its URI SAN."""
    return f"{host}.{component}" if host else component


def controller_identity(environment: str, component: str) -> tuple[str, str, str]:
    """(CA bundle, certificate, key) paths of a controller-side identity (`ERASURE`), issued when due.
    The files stay in the PKI directory on the controller, next to the operator's."""
    ca = _ca(environment, LIFETIME.days)  # a controller-side identity: the default lifetime, as the operator's
    bundle, _, _ = ca.operator_files()
    issued = ca.issue(None, component)
    leaves = ca.directory / "leaves"
    return str(bundle), str(leaves / f"{issued.name}.crt"), str(leaves / f"{issued.name}.key")


def configtls_server(paths: TlsPaths) -> dict:
    """An OpenTelemetry collector `tls` block (configtls ServerConfig: the collector's OTLP receivers): the
    service's certificate, client certificates required from the environment CA."""
    return {"cert_file": paths.cert, "key_file": paths.key, "client_ca_file": paths.ca, "min_version": CONFIGTLS_MIN_VERSION}


def configtls_client(paths: TlsPaths) -> dict:
    """An OpenTelemetry collector exporter's `tls` block (configtls ClientConfig) with the service's identity."""
    return {"ca_file": paths.ca, "cert_file": paths.cert, "key_file": paths.key, "min_version": CONFIGTLS_MIN_VERSION}


def dskit_server_tls(paths: TlsPaths) -> dict:
    """Loki's and Tempo's `server.grpc_tls_config` (dskit, scaled out): client certificates required and
    checked against the environment CA."""
    return {"cert_file": paths.cert, "key_file": paths.key, "client_auth_type": "RequireAndVerifyClientCert",
            "client_ca_file": paths.ca}
