"""grafana.ini, rendered from the typed settings.

`ini_sections()` is the whole file as data (section -> key -> value), which the
reference test checks key by key against files/grafana/config-reference-<v>.yml;
`render_ini()` writes it. Secrets never appear: grafana.ini reads them with
`$__file{...}` from files under SECRETS_DIR.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from roles._service.quoting import refuse_control
from roles.grafana.settings import GrafanaSettings

CONFIG = "/etc/grafana/grafana.ini"
SECRETS_DIR = "/etc/grafana/secrets"
DATA_DIR = "/var/lib/grafana"
LOGS_DIR = "/var/log/grafana"
PLUGINS_DIR = "/var/lib/grafana/plugins"
PROVISIONING_DIR = "/etc/grafana/provisioning"
DASHBOARDS_DIR = "/var/lib/grafana/dashboards"
ADMIN_PASSWORD_FILE = f"{SECRETS_DIR}/admin_password"
# A rotation's previous admin password (root's alone, only while the secret is set) and the scrypt stamp of the
# password last applied through Grafana's API (files/grafana/backup_token.py --apply-admin-password).
ADMIN_PREVIOUS_PASSWORD_FILE = f"{SECRETS_DIR}/admin_password.previous"
ADMIN_PASSWORD_STAMP = f"{SECRETS_DIR}/admin_password.applied"
DB_PASSWORD_FILE = f"{SECRETS_DIR}/db_password"
SMTP_PASSWORD_FILE = f"{SECRETS_DIR}/smtp-password"  # AlertingSettings.secrets() names it so
# Grafana serves https with the environment CA's certificate for the host's `grafana` component
# (roles/_tls.py): the same files and modes as the exporter-toolkit listeners.
TLS_DIR = "/etc/grafana/tls"
CA_FILE = f"{TLS_DIR}/ca.crt"
CERT_FILE = f"{TLS_DIR}/grafana.crt"
KEY_FILE = f"{TLS_DIR}/grafana.key"
# With grafana.public_certificate_secret: the operator's public chain and its key, served instead of the
# leaf above (which stays the datasources' client certificate).
PUBLIC_CERT_FILE = f"{TLS_DIR}/public.crt"
PUBLIC_KEY_FILE = f"{TLS_DIR}/public.key"
# HSTS: browsers that once reached Grafana over https refuse plain http for a year (the usual
# max-age). No `preload`: the preload list is for public registrable domains and is
# irreversible for months; Grafana's names are the environment's internal ones. No
# `includeSubDomains`: the toolkit vouches for Grafana's own origin only, not for names
# below it that other teams may serve.
HSTS_MAX_AGE_SECONDS = 365 * 24 * 3600
HEADER = (
    "; Managed by the Sentinel observability toolkit (roles/grafana); local edits are overwritten.\n"
    "; Secrets are read from files under /etc/grafana/secrets with $__file{...}, never written here.\n"
)


def file_ref(path: str) -> str:
    """Grafana's file provider: the value is the file's content, trimmed."""
    return "$__file{%s}" % path


def root_url(settings: GrafanaSettings, address: str) -> str:
    """Where users reach Grafana: https always (the setting is refused otherwise)."""
    return settings.root_url or f"https://{address}:{settings.http_port}/"


def root_host(settings: GrafanaSettings, address: str) -> str:
    """The host name (or IP) of `root_url`: what the operator's public certificate must cover."""
    return urlsplit(root_url(settings, address)).hostname or address


def public_name(settings: GrafanaSettings, address: str) -> str | None:
    """The name Grafana's clients verify its certificate for when it serves the operator's public one
    (`root_host`, which preflight checked the certificate covers), whatever address they connect to;
    None while it serves the environment CA's leaf (clients then verify the address they use)."""
    return root_host(settings, address) if settings.public_certificate else None


def served_files(settings: GrafanaSettings) -> tuple[str, str]:
    """(certificate, key) files grafana.ini names: the operator's public pair when given, else the leaf."""
    return (PUBLIC_CERT_FILE, PUBLIC_KEY_FILE) if settings.public_certificate else (CERT_FILE, KEY_FILE)


def ha_section(environment: str, bind: str, peers: list[str], peer_timeout: str) -> dict[str, str]:
    """[unified_alerting]'s HA keys for one Grafana of several: gossip with the others, as Alertmanager does.

    + bind: this host's grafana.ha ip:port (listened on and advertised: an IP, as the others reach it)
    + peers: host:port of every other Grafana's grafana.ha
    + peer_timeout: how long each waits per position before notifying (alerting.cluster_peer_timeout)

    Grafana's HA also needs one database for all of them (preflight refuses sqlite3 there).
    """
    return {
        "ha_listen_address": bind,
        "ha_advertise_address": bind,
        "ha_peers": ",".join(peers),
        "ha_peer_timeout": peer_timeout,
        # Gossip from another environment's Grafanas is dropped.
        "ha_label": f"sentinel-{environment}-grafana",
    }


def ini_sections(settings: GrafanaSettings, address: str, smtp=None, http_addr: str = "127.0.0.1", ha: dict[str, str] | None = None) -> dict[str, dict[str, str]]:
    """Every section and key of grafana.ini, as strings.

    + settings: the host's `grafana` settings
    + address: the host's address (the default root_url)
    + smtp: the alerting email settings when Grafana sends notifications itself
      (alerting.evaluator grafana), else None
    + ha: `ha_section` where several Grafanas run, else None (one Grafana: no gossip)
    """
    url = root_url(settings, address)
    cert_file, cert_key = served_files(settings)
    database = settings.database
    if database.is_postgres:
        db = {
            "type": "postgres",
            "host": database.host,
            "name": database.name,
            "user": database.user,
            "password": file_ref(DB_PASSWORD_FILE),
            "ssl_mode": database.ssl_mode,
        }
    else:
        db = {"type": "sqlite3", "path": database.path}
    sections: dict[str, dict[str, str]] = {
        "paths": {"data": DATA_DIR, "logs": LOGS_DIR, "plugins": PLUGINS_DIR, "provisioning": PROVISIONING_DIR},
        "server": {
            # https only, with the host's certificate from the environment CA (roles/_tls.py), or the
            # operator's public one (`served_files`); Grafana reads the files at start, so a renewed
            # certificate restarts it (guarded).
            "protocol": "https",
            "http_addr": http_addr,  # grafana.http from the topology: the host's IP
            "http_port": str(settings.http_port),
            "root_url": url,
            "cert_file": cert_file,
            "cert_key": cert_key,
            "min_tls_version": "TLS1.2",
        },
        "database": db,
        "security": {
            "admin_user": settings.admin_user,
            "admin_password": file_ref(ADMIN_PASSWORD_FILE),
            # Grafana is served over https only: its session cookie never travels in clear.
            "cookie_secure": "true",
            "cookie_samesite": "lax",
            "strict_transport_security": "true",
            "strict_transport_security_max_age_seconds": str(HSTS_MAX_AGE_SECONDS),
            "strict_transport_security_preload": "false",
            "strict_transport_security_subdomains": "false",
            "disable_gravatar": "true",
        },
        "users": {"allow_sign_up": "false", "allow_org_create": "false"},
        "auth.anonymous": {"enabled": "false"},
        # No calls home: the monitoring hosts do not reach the internet, and versions are pinned here.
        "analytics": {
            "reporting_enabled": "false",
            "check_for_updates": "false",
            "check_for_plugin_updates": "false",
            "feedback_links_enabled": "false",
        },
        "news": {"news_feed_enabled": "false"},
        "snapshots": {"external_enabled": "false"},
        # Grafana 12 installs a list of plugins from grafana.com at every start unless this is set;
        # plugins come only from pinned, checksummed archives (files/versions.yml).
        "plugins": {"preinstall_disabled": "true"},
        "log": {"mode": "console", "level": "info"},
        "unified_alerting": {"enabled": "true", **(ha or {})},
    }
    if smtp is not None:
        section = {
            "enabled": "true",
            "host": smtp.smarthost,
            "from_address": smtp.from_address,
            "from_name": "Sentinel Grafana",
            "startTLS_policy": "MandatoryStartTLS" if smtp.require_tls else "NoStartTLS",
        }
        if smtp.auth_username:
            section["user"] = smtp.auth_username
            section["password"] = file_ref(SMTP_PASSWORD_FILE)
        sections["smtp"] = section
    return sections


def render_ini(sections: dict[str, dict[str, str]]) -> str:
    """grafana.ini text; a value holding a newline (which would start a new key) is refused."""
    lines = [HEADER]
    for name, keys in sections.items():
        lines.append(f"[{name}]")
        for key, value in keys.items():
            refuse_control(value, f"grafana.ini [{name}] {key}")
            lines.append(f"{key} = {value}")
        lines.append("")
    return "\n".join(lines)
