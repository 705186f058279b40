"""Grafana on the `monitoring` hosts: grafana.ini from typed settings, provisioned datasources,
dashboards and alerting, and the backup job's service account token.

Grafana has no offline config checker (nothing like promtool or amtool), so the
building block's check-before-swap cannot apply. Instead grafana.ini, its
secret files and every provisioning file are STARTED ON and ROLLED BACK:
`roles._service.rollback.guarded_files` keeps the previous files, swaps in the
new ones together, restarts Grafana and polls /api/health; if Grafana does not
answer within `grafana.health_timeout` it restores the previous files, restarts
Grafana on them and fails the deploy. Dashboards JSON is not guarded (Grafana
re-reads it every 30 s and a bad dashboard does not stop Grafana).

`grafana.install_binary: false` (the lab only; Grafana is AGPL and may not run
there) keeps everything but the program: user, directories, grafana.ini,
secrets and provisioning files with their owners and modes, and no binary, no
unit, no plugin, no service account.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Arch
from pyinfra.operations import apt, files, server

from roles._model import SettingsError, duration_seconds
from roles._net import host_port
from roles._service import ServiceSpec, run_service, service_account, service_dirs
from roles._service.artifacts import load_versions, resolve
from roles._service.quoting import sh_quote
from roles._service.rollback import GuardedFile, guarded_files
from roles._service.tree import release_tree
from roles.alerting.catalog import load_catalog, with_for_at_most
from roles.grafana.alerting import render_alerting, secret_names
from roles.grafana.config import (
    ADMIN_PASSWORD_FILE,
    ADMIN_PASSWORD_STAMP,
    ADMIN_PREVIOUS_PASSWORD_FILE,
    CA_FILE,
    CERT_FILE,
    CONFIG,
    KEY_FILE,
    PUBLIC_CERT_FILE,
    PUBLIC_KEY_FILE,
    DASHBOARDS_DIR,
    DATA_DIR,
    DB_PASSWORD_FILE,
    LOGS_DIR,
    PLUGINS_DIR,
    PROVISIONING_DIR,
    SECRETS_DIR,
    ini_sections,
    public_name,
    render_ini,
    root_url,
)
from roles.grafana.operations import admin_password, backup_token
from roles.grafana.provisioning import Peers, dashboard_sources, render_dashboard_providers, render_datasources
from roles.grafana.settings import GrafanaSettings
from roles.node_exporter import certificate_expiry

if TYPE_CHECKING:  # the role gets its settings, secrets and peers as arguments
    from roles._context import HostContext
    from roles.alerting.settings import AlertingSettings

VICTORIALOGS_PLUGIN = "victoriametrics-logs-datasource"
TOKEN_SCRIPT_SOURCE = Path(__file__).resolve().parents[2] / "files" / "grafana" / "backup_token.py"
TOKEN_SCRIPT = "/usr/local/lib/sentinel/grafana-backup-token"
_DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
@dataclass(frozen=True)
class LocalAccess:
    """How a check or a helper on Grafana's own host reaches it: always at grafana.http's bind, verifying
    the certificate Grafana serves for `host`."""

    host: str  # the name (or address) the certificate is verified for: the URL's host
    port: int
    connect_to: str  # the address actually connected to (grafana.http's bind)
    ca_file: str  # the CA the certificate chains to; "" = the host's system trust store (a public CA)

    @property
    def url(self) -> str:
        return f"https://{host_port(self.host, self.port)}"

    @property
    def curl_args(self) -> tuple[str, ...]:
        """curl's options: the environment CA's file, or the bind for the public name (curl --resolve)."""
        if self.ca_file:
            return ("--cacert", self.ca_file)
        address = f"[{self.connect_to}]" if ":" in self.connect_to else self.connect_to
        return ("--resolve", f"{host_port(self.host, self.port)}:{address}")


def local_access(settings: GrafanaSettings, address: str, http_addr: str = "127.0.0.1") -> LocalAccess:
    """Grafana from its own host (https: it serves nothing else); `http_addr` is the address grafana.http binds.

    The environment CA's leaf names that address, so it is the URL's host, verified with the CA. The
    operator's public certificate names root_url's host only: the URL then carries that name (verified with
    the system's trust store) while the connection still goes to the bind, never through DNS or a load balancer."""
    name = public_name(settings, address)
    if name is None:
        return LocalAccess(http_addr, settings.http_port, http_addr, CA_FILE)
    return LocalAccess(name, settings.http_port, http_addr, "")


def server_path() -> str:
    """The server binary inside the release tree, as files/versions.yml places it (`archive_names`)."""
    entry = load_versions()["grafana"]
    return (entry.get("archive_names") or {}).get("grafana", "grafana")


def service_spec(settings: GrafanaSettings, http_addr: str = "127.0.0.1", address: str = "127.0.0.1") -> ServiceSpec:
    """The Grafana service: runs from its home directory, /opt/grafana/current (the whole release tree)."""
    access = local_access(settings, address, http_addr)
    return ServiceSpec(
        name="grafana",
        description="Grafana",
        exec_start=(f"{{bin}}/{server_path()}", "server", "--homepath={bin}", f"--config={CONFIG}"),
        config_dirs=(
            SECRETS_DIR,
            PROVISIONING_DIR,
            f"{PROVISIONING_DIR}/datasources",
            f"{PROVISIONING_DIR}/dashboards",
            f"{PROVISIONING_DIR}/alerting",
            f"{PROVISIONING_DIR}/plugins",
            "/etc/grafana/tls",
        ),
        data_dirs=(DATA_DIR, LOGS_DIR, PLUGINS_DIR),
        working_directory="/opt/grafana/current",
        reload="restart",
        ready_url=f"{access.url}/api/health",
        ready_curl_args=access.curl_args,
    )


def secret_files(settings: GrafanaSettings, alerting: AlertingSettings, secrets: Mapping[str, str]) -> dict[str, str]:
    """Path under /etc/grafana/secrets -> content, from the secrets preflight resolved.

    The admin password always; the database password with PostgreSQL; with
    `alerting.evaluator: grafana` also copies of the receivers' secrets for
    Grafana's contact points and SMTP.
    """
    wanted = {ADMIN_PASSWORD_FILE: (settings.admin_password_secret, "grafana.admin_password_secret")}
    if settings.database.is_postgres:
        wanted[DB_PASSWORD_FILE] = (settings.database.password_secret, "grafana.database.password_secret")
    if alerting.evaluator == "grafana":
        for filename, name in secret_names(alerting).items():
            wanted[f"{SECRETS_DIR}/{filename}"] = (name, "alerting")
    result = {}
    for path, (name, key) in wanted.items():
        if name not in secrets:
            raise SettingsError(key, f"the secret {name} was not resolved", "run the deploy through an inventory file that ends with check_inventory(globals())")
        result[path] = secrets[name] + "\n"
    return result


def tls_files(certificate, ca_file: str = CA_FILE, cert_file: str = CERT_FILE, key_file: str = KEY_FILE) -> list[GuardedFile]:
    """The CA, Grafana's certificate (0644) and key (0640 root:grafana), from the environment CA's leaf, each
    checked with openssl on the host before any file is swapped in (as roles/_tls.tls_files checks every other
    component's): the CA parses, the certificate chains to it and its key is the key's. The paths: for tests."""
    return [
        GuardedFile(ca_file, certificate.ca_pem, user="root", group="grafana", mode="0644", validate="openssl x509 -noout -in {path}"),
        GuardedFile(cert_file, certificate.cert_pem, user="root", group="grafana", mode="0644",
                    validate=_chains_to(ca_file) + " && " + _same_key_as(key_file)),
        GuardedFile(key_file, certificate.key_pem, user="root", group="grafana", mode="0640", validate=_same_key_as(cert_file)),
    ]


def _live_after_swap(path: str) -> str:
    """Shell: set $o to `path` as it will be live after the swap (its staged copy when one was uploaded in the same batch)."""
    q = sh_quote
    return f'o={q(path + ".staged")}; [ -e "$o" ] || o={q(path)}'


def _chains_to(ca_file: str) -> str:
    """A check that the staged certificate ({path}) verifies against `ca_file` as it will be live after the swap."""
    return f'{{ {_live_after_swap(ca_file)}; openssl verify -CAfile "$o" {{path}} >/dev/null; }}'


def _same_key_as(other: str) -> str:
    """A check that the staged file ({path}) holds the key pair's other half of `other`, as it will be live
    after the swap: its staged copy when one was uploaded in the same batch, else the live file."""
    side = "openssl pkey -pubout -in" if other.endswith(".key") else "openssl x509 -pubkey -noout -in"
    mine = "openssl x509 -pubkey -noout -in {path}" if other.endswith(".key") else "openssl pkey -pubout -in {path}"
    return f'{{ {_live_after_swap(other)}; test "$({mine})" = "$({side} "$o")"; }}'


def public_tls_files(chain_pem: str, key_pem: str, cert_file: str = PUBLIC_CERT_FILE, key_file: str = PUBLIC_KEY_FILE) -> list[GuardedFile]:
    """The operator's public chain (0644) and its key (0640 root:grafana), each checked with openssl on the
    host before any file is swapped in: the chain's first certificate parses and its key is the key's (what
    preflight checked, again where Grafana reads them). `cert_file`, `key_file`: other paths for tests."""
    return [
        GuardedFile(cert_file, chain_pem.rstrip("\n") + "\n", user="root", group="grafana", mode="0644",
                    validate="openssl x509 -noout -in {path} && " + _same_key_as(key_file)),
        GuardedFile(key_file, key_pem.rstrip("\n") + "\n", user="root", group="grafana", mode="0640",
                    validate=_same_key_as(cert_file)),
    ]


def public_pair(settings: GrafanaSettings, secrets: Mapping[str, str]) -> tuple[str, str] | None:
    """(chain, key) PEMs of the operator's public certificate from the resolved secrets; None when not set."""
    if not settings.public_certificate:
        return None
    names = (settings.public_certificate_secret, settings.public_key_secret)
    for name, key in zip(names, ("grafana.public_certificate_secret", "grafana.public_key_secret")):
        if name not in secrets:
            raise SettingsError(key, f"the secret {name} was not resolved", "run the deploy through an inventory file that ends with check_inventory(globals())")
    return secrets[names[0]], secrets[names[1]]


def config_files(
    settings: GrafanaSettings, alerting: AlertingSettings, secrets: Mapping[str, str], environment: str, address: str, peers: Peers,
    http_addr: str = "127.0.0.1", ha: dict[str, str] | None = None, certificate=None,
) -> list[GuardedFile]:
    """grafana.ini, its secrets, its TLS files (`certificate`: the host's grafana leaf; the operator's public
    pair from `secrets` when the settings name it) and the provisioning files, as the host gets them
    (0640 root:grafana; the CA and certificates 0644)."""

    def guarded(dest: str, content: str) -> GuardedFile:
        return GuardedFile(dest, content, user="root", group="grafana", mode="0640")

    grafana_alerting = alerting.evaluator == "grafana"
    sections = ini_sections(settings, address, smtp=alerting.email if grafana_alerting else None, http_addr=http_addr, ha=ha)
    alerts = with_for_at_most(load_catalog(), alerting.lab_rule_for_at_most)
    alerting_files = render_alerting(
        alerts, alerting, environment, settings.rule_interval, root_url(settings, address).rstrip("/"), enabled=grafana_alerting
    )
    result = [guarded(dest, value) for dest, value in sorted(secret_files(settings, alerting, secrets).items())]
    if certificate is not None:
        result += tls_files(certificate)  # the leaf: served unless the operator's pair is, the datasources' identity always
    public = public_pair(settings, secrets)
    if public is not None:
        result += public_tls_files(*public)
    result.append(guarded(f"{PROVISIONING_DIR}/datasources/sentinel.yml", render_datasources(peers)))
    result.append(guarded(f"{PROVISIONING_DIR}/dashboards/sentinel.yml", render_dashboard_providers(dashboard_sources())))
    result += [guarded(f"{PROVISIONING_DIR}/alerting/{name}", content) for name, content in alerting_files.items()]
    result.append(guarded(CONFIG, render_ini(sections)))
    return result


def _dashboards() -> None:
    files.directory(name="grafana: dashboards dir", path=DASHBOARDS_DIR, user="root", group="grafana", mode="0750")
    dashboards = dashboard_sources()
    for subdir in sorted({str(Path(p).parent) for p in dashboards if "/" in p}):
        files.directory(name=f"grafana: dashboards dir {subdir}", path=f"{DASHBOARDS_DIR}/{subdir}", user="root", group="grafana", mode="0750")
    for relative, text in dashboards.items():
        files.put(
            name=f"grafana: dashboard {relative}",
            src=StringIO(text),
            dest=f"{DASHBOARDS_DIR}/{relative}",
            user="root",
            group="grafana",
            mode="0640",
        )


def _helper() -> None:
    """The helper that talks to Grafana's API as the admin (files/grafana/backup_token.py)."""
    files.directory(name="grafana: helper dir", path=str(Path(TOKEN_SCRIPT).parent), user="root", group="root", mode="0755")
    files.put(name="grafana: API helper", src=str(TOKEN_SCRIPT_SOURCE), dest=TOKEN_SCRIPT, user="root", group="root", mode="0755")


def _as_admin(settings: GrafanaSettings, access: LocalAccess) -> dict:
    """How the helper reaches this host's Grafana as its admin: the same for each of its steps."""
    return {"script": TOKEN_SCRIPT, "url": access.url, "connect_to": "" if access.ca_file else access.connect_to,
            "admin_user": settings.admin_user, "ca_file": access.ca_file}


def _admin_password(settings: GrafanaSettings, access: LocalAccess, secrets: Mapping[str, str]) -> None:
    """The secrets' admin password made Grafana's, before the token step logs in with it (docs/grafana.md
    "Rotating the admin password"). A rotation's previous password is on the host (root's alone) only while
    its secret is set."""
    previous = secrets.get(settings.admin_previous_password_secret)
    if previous:
        files.put(name="grafana: the admin password Grafana has (a rotation's previous one)", src=StringIO(previous + "\n"),
                  dest=ADMIN_PREVIOUS_PASSWORD_FILE, user="root", group="root", mode="0600")
    else:
        files.file(name="grafana: no previous admin password on file", path=ADMIN_PREVIOUS_PASSWORD_FILE, present=False)
    admin_password(
        name="grafana: the admin password on file is Grafana's (applied through its API when it changed; never printed)",
        **_as_admin(settings, access),
        password=secrets[settings.admin_password_secret],
        password_file=ADMIN_PASSWORD_FILE,
        stamp_file=ADMIN_PASSWORD_STAMP,
        previous_file=ADMIN_PREVIOUS_PASSWORD_FILE if previous else "",
    )


def _backup_token(settings: GrafanaSettings, access: LocalAccess) -> None:
    """The backup job's token, once. Its group (grafana-backup, the backup job's) is created if missing,
    so the token can be written before the backup role has run; the backup role's own group step is then a no-op.

    `access`: this host's Grafana where the topology binds it (https, verified with the environment CA, or
    for the public certificate's name with the system's trust store); the helper sends the admin password
    there. The token is renewed by a converge inside its renewal window.
    """
    user, group = settings.backup_token_owner.split(":")
    server.group(name=f"grafana: group {group} of the backup token", group=group, system=True)
    files.directory(
        name="grafana: backup token dir", path=str(Path(settings.backup_token_path).parent), user="root", group=group, mode="0750"
    )
    backup_token(
        name="grafana: backup service account token (Editor; created, or renewed near its expiry; never printed)",
        **_as_admin(settings, access),
        admin_password_file=ADMIN_PASSWORD_FILE,
        token_file=settings.backup_token_path,
        owner=settings.backup_token_owner,
        mode=settings.backup_token_mode,
        lifetime_days=settings.backup_token_lifetime_days,
        renew_within_days=settings.backup_token_renew_within_days,
    )


@deploy("Grafana")
def grafana(settings: GrafanaSettings, ctx: HostContext):
    """
    Install Grafana with its provisioning; without the binary when `settings.install_binary` is false.

    + settings: the host's `grafana` settings (roles/grafana/settings.py)
    + ctx: the host context: the run's secrets (admin password, DB password, receivers'
      secrets for the grafana evaluator), the `alerting` settings, the environment (the
      `environment` label of Grafana-managed rules), the address (the default root_url),
      the bind (grafana.http: the host's IP) and the datasources' URLs from the topology
      (roles/grafana/peers.py `grafana_peers`)
    """
    from roles.grafana.peers import grafana_ha, grafana_peers

    artifact_base_url, hardening, secrets = ctx.artifact_base_url, ctx.hardening, ctx.secrets
    alerting, environment, address, http_addr = ctx.settings.alerting, ctx.environment, ctx.address, ctx.settings.ip
    from roles._tls import leaf

    # One leaf: the certificate Grafana serves https with (the names of its grafana.http listener) unless
    # the operator's public pair is set, and always its datasources' client certificate (Prometheus,
    # Alertmanager, the stores). Where nothing listens (the lab, no binary) it carries the identity only;
    # grafana.ini still points at it.
    identity = leaf(ctx, "grafana", "grafana.http" if ctx.has("grafana.http") else None)
    certificate_expiry(textfile_dir=ctx.settings.node_exporter.textfile_dir, service="grafana", certificate=identity)
    public_certificate_expiry(ctx.settings.node_exporter.textfile_dir, public_pair(settings, secrets))
    peers = grafana_peers(ctx, (identity.ca_pem, identity.cert_pem, identity.key_pem))
    spec = service_spec(settings, http_addr, address)
    access = local_access(settings, address, http_addr)
    service_account(spec)
    service_dirs(spec)
    _dashboards()
    if settings.public_certificate:
        # Its clients on this host (the health check, the token helper, the backup job, Prometheus) verify the
        # public CA with the system's trust store; a minimal Debian may lack it, and the swap would roll back.
        apt.packages(name="grafana: the system's trust store (for the public certificate's clients)", packages=["ca-certificates"],
                     update=True, cache_time=24 * 3600)
    configs = tuple(config_files(settings, alerting, secrets, environment, address, peers, http_addr, ha=grafana_ha(ctx),
                                 certificate=identity))
    timeout = int(duration_seconds(settings.health_timeout))
    guarded = dict(files=configs, unit="grafana.service", ready_url=f"{access.url}/api/health", timeout_seconds=timeout,
                   curl_args=access.curl_args)

    if not settings.install_binary:
        # The lab: no unit exists, so guarded_files only puts the files in place. No token either.
        guarded_files(name="grafana: config and provisioning files", **guarded)
        _no_stale_public_pair(settings)
        return

    arch = _DEBIAN_ARCH.get(host.get_fact(Arch), "amd64")
    artifact = resolve("grafana", artifact_base_url, arch)
    version_dir = f"/opt/grafana/{artifact.version}"
    files.directory(name="grafana: install root", path="/opt/grafana", user="root", group="root", mode="0755")
    tree = release_tree(name=f"grafana: release {artifact.version}", artifact=artifact, install_dir=version_dir)
    current = files.link(name="grafana: current version", path="/opt/grafana/current", target=version_dir)
    code_changes = [tree, current]
    if peers.logs == "victorialogs":
        plugin = resolve(VICTORIALOGS_PLUGIN, artifact_base_url, arch)
        code_changes.append(
            release_tree(name=f"grafana: plugin {VICTORIALOGS_PLUGIN} {plugin.version}", artifact=plugin, install_dir=f"{PLUGINS_DIR}/{VICTORIALOGS_PLUGIN}")
        )
    guarded_files(name="grafana: config and provisioning files (rolled back if Grafana does not come up)", **guarded)
    _no_stale_public_pair(settings)
    run_service(spec, hardening, code_changes=code_changes, config_changes=[])
    _helper()
    _admin_password(settings, access, secrets)
    _backup_token(settings, access)


PUBLIC_EXPIRY_TEXTFILE = "tls_grafana_public.prom"


def public_certificate_expiry(textfile_dir: str, pair: tuple[str, str] | None) -> None:
    """The operator's public certificate's notAfter (the chain's first), labelled renewed_by="operator" for
    PublicCertificateExpiresSoon: no converge renews it, so the operators hear of it weeks ahead. Without the
    pair the textfile goes, or a stale figure would raise the alert for a certificate no longer served."""
    from roles.grafana.public_certificate import load_pair

    if pair is None:
        files.file(name="grafana: no public certificate expiry metric (no public certificate is set)",
                   path=f"{textfile_dir}/{PUBLIC_EXPIRY_TEXTFILE}", present=False)
        return
    served = load_pair(*pair)[0][0]
    certificate = SimpleNamespace(name="public", not_after=served.not_valid_after_utc)
    certificate_expiry(textfile_dir=textfile_dir, service="grafana", certificate=certificate, renewed_by_operator=True,
                       file_name=PUBLIC_EXPIRY_TEXTFILE)


def _no_stale_public_pair(settings: GrafanaSettings) -> None:
    """Without the public certificate, its files go once grafana.ini no longer names them (after the guarded
    swap: a rollback still finds them), so no unused private key stays on the host."""
    if settings.public_certificate:
        return
    for path in (PUBLIC_KEY_FILE, PUBLIC_CERT_FILE):
        files.file(name=f"grafana: no {path} (no public certificate is set)", path=path, present=False)
