"""VictoriaLogs' authenticating front: nginx from Debian, on the store's listener, VictoriaLogs behind it on 127.0.0.1.

Why a front: the pinned VictoriaLogs (1.52.2, open source) serves TLS (`-tls`) but cannot ask
for a client certificate (`-mtls` is enterprise-only: its help names it, the open-source build
does not register it), has one Basic Auth user for every path (`-httpAuth.*`) and no key of
its own for /delete/* (only /metrics, /flags, /debug/pprof and /internal/* have `*AuthKey`
flags). Nothing in it can say "the gateway may write, the erasure command may delete".

The front (`victorialogs.http`, the host's IP):
- TLS 1.2 at least, the store's certificate from the environment CA;
- a client certificate from the environment CA (`ssl_verify_client on`), else 400;
- the client's subject CN (the CA gives every leaf "<host>.<component>", roles/_tls.py
  `common_name`) mapped to what it may do (`ACCESS`), else 403. The identities come from the
  topology's flows to `victorialogs.http` (the hosts that run each client), plus the operator's
  and the erasure command's (the controller's) and the store's own retention job's;
- a request whose raw path holds `%`, `..` or `//` is refused (400): the path nginx checks is
  then the path VictoriaLogs routes;
- refusals and every /delete/* call go to the journal (syslog tag `victorialogs_front`) with
  the client's subject.

VictoriaLogs listens on `victorialogs.local` (127.0.0.1) only. Debian's own nginx.service stays
masked (it would serve the package's default site on port 80); the front runs as its own
hardened unit under its own user (the building block's unit, without a release archive).
Its config is checked with `nginx -t` before it replaces the live one; a renewed certificate
is read on the reload (SIGHUP) that its change triggers.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pyinfra.api import deploy
from pyinfra.operations import apt, files, systemd

from roles._pki import OPERATOR
from roles._service import ConfigFile, ServiceSpec, run_service, service_account, service_dirs
from roles._service.operations import validated_file
from roles._service.quoting import QuotingError
from roles._tls import ERASURE, TlsPaths, common_name, leaf, tls_files

if TYPE_CHECKING:
    from roles._context import HostContext
    from roles._topology import Topology

NAME = "victorialogs-front"
LISTENER = "victorialogs.http"
UPSTREAM = "victorialogs.local"
CONFIG = f"/etc/{NAME}/nginx.conf"
DATA_DIR = f"/var/lib/{NAME}"
NGINX = "/usr/sbin/nginx"
TLS = TlsPaths(NAME)
# The store's own identity (its front's certificate; its readiness check).
SELF = "victorialogs"
# The retention job on the store's host (roles/victorialogs: victorialogs-retention.service).
RETENTION = "victorialogs-retention"

# What each identity may call, by component: a prefix ends in "/", anything else is one exact path.
# Which hosts hold each identity comes from the topology (`identities`); a client of a new flow to
# victorialogs.http without a row here stops the render.
ACCESS: dict[str, tuple[str, ...]] = {
    "gateway": ("/insert/",),  # every log line (OTLP); the lab's tests push lines as the gateway
    "grafana": ("/select/",),  # the datasource
    "prometheus": ("/metrics",),  # the scrape
    OPERATOR: ("/select/", "/metrics", "/flags", "/health", "/internal/force_flush"),
    # The erasure command: counts, deletes, waits for its task, and copies its audit entry in.
    ERASURE: ("/select/logsql/", "/delete/", "/insert/jsonline"),
    # The retention job: counts and deletes each shorter class's expired lines.
    RETENTION: ("/select/logsql/", "/delete/"),
    SELF: ("/health",),  # the front's readiness check on the host
}
CONTROLLER_IDENTITIES = (OPERATOR, ERASURE)  # issued on the controller (no host in their name)
# Client bodies: VictoriaLogs' own request limit is 64 MiB.
MAX_BODY = "64m"
QUERY_TIMEOUT_S = 300

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_PATH = re.compile(r"/[A-Za-z0-9_/.-]*")


def identities(topology: "Topology", host: str) -> list[tuple[str, str]]:
    """(subject CN, component) of every identity the front on `host` admits, sorted."""
    found = {(common_name(client, flow.client), flow.client) for client, flow in topology.clients(LISTENER)}
    found |= {(common_name(None, c), c) for c in CONTROLLER_IDENTITIES}
    found |= {(common_name(host, RETENTION), RETENTION), (common_name(host, SELF), SELF)}
    for cn, component in found:
        if component not in ACCESS:
            raise ValueError(f"{component} reaches {LISTENER} (a flow of roles/_topology.py) but roles/victorialogs/front.py "
                             "ACCESS does not say which paths it may use: add its row")
        if not _NAME.fullmatch(cn):
            raise QuotingError(f"{NAME}: client name {cn!r} cannot be written in nginx's config")
    return sorted(found)


def _pattern(path: str) -> str:
    if not _PATH.fullmatch(path):
        raise QuotingError(f"{NAME}: path {path!r} cannot be written in nginx's config")
    escaped = re.escape(path)
    return escaped if path.endswith("/") else f"{escaped}$"


def render_config(topology: "Topology", host: str, bind: str, upstream: str, tls: TlsPaths = TLS, data_dir: str = DATA_DIR) -> str:
    """nginx.conf of the front on `host`: listen on `bind` (victorialogs.http), pass to `upstream` (victorialogs.local)."""
    clients = identities(topology, host)
    who = "\n".join(f'        "CN={cn}" {component};' for cn, component in clients)
    kinds = sorted({component for _, component in clients})
    rules = "\n".join(f'        "~^{component} {_pattern(path)}" 1;' for component in kinds for path in ACCESS[component])
    for value in (bind, upstream, tls.cert, tls.key, tls.ca, data_dir):
        if not re.fullmatch(r"[A-Za-z0-9_./:\[\]-]+", value):
            raise QuotingError(f"{NAME}: {value!r} cannot be written in nginx's config")
    return f"""# Managed by the Sentinel observability toolkit; local edits are overwritten.
# VictoriaLogs' authenticating front (roles/victorialogs/front.py): TLS, client certificates from
# the environment CA, and each identity admitted to its own paths. Checked with `nginx -t`.
daemon off;
worker_processes 1;
pid {data_dir}/front.pid;
error_log stderr warn;

events {{
    worker_connections 1024;
}}

http {{
    server_tokens off;
    client_body_temp_path {data_dir}/client_body;
    proxy_temp_path {data_dir}/proxy;
    fastcgi_temp_path {data_dir}/fastcgi;
    uwsgi_temp_path {data_dir}/uwsgi;
    scgi_temp_path {data_dir}/scgi;
    client_max_body_size {MAX_BODY};

    # The client's identity: its certificate's subject (chained to the environment CA), by component.
    map $ssl_client_s_dn $vl_client {{
        default "";
{who}
    }}
    # What it may call.
    map "$vl_client $uri" $vl_allowed {{
        default 0;
{rules}
    }}
    # Refusals and deletes go to the journal, with who asked.
    map "$vl_allowed $uri" $vl_log {{
        default 0;
        "~^0 " 1;
        "~^1 /delete/" 1;
    }}
    log_format front '$remote_addr "$ssl_client_s_dn" "$request" $status $body_bytes_sent';
    access_log syslog:server=unix:/run/systemd/journal/dev-log,tag=victorialogs_front,nohostname front if=$vl_log;

    upstream victorialogs {{
        server {upstream};
        keepalive 8;
    }}

    server {{
        listen {bind} ssl;
        ssl_certificate {tls.cert};
        ssl_certificate_key {tls.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_prefer_server_ciphers off;
        ssl_client_certificate {tls.ca};
        ssl_verify_client on;
        ssl_verify_depth 1;
        ssl_session_tickets off;

        location / {{
            # The path checked above is the path VictoriaLogs routes: no encoded or dot segments.
            if ($request_uri ~ "^[^?]*(%|\\.\\.|//)") {{
                return 400;
            }}
            if ($vl_allowed = 0) {{
                return 403;
            }}
            proxy_pass http://victorialogs;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "";
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_read_timeout {QUERY_TIMEOUT_S}s;
            proxy_send_timeout {QUERY_TIMEOUT_S}s;
        }}
    }}
}}
"""


def validate_command() -> str:
    """nginx checks the staged config (and the certificate files it names) before it replaces the live one, as the
    service's user: as root it would leave root's files (its pid file, its temporary directories) where the service writes."""
    return f"/usr/sbin/runuser -u {NAME} -- {NGINX} -t -q -e stderr -c {{path}}"


def service_spec(config: str, bind: str, tls: tuple[ConfigFile, ...]) -> ServiceSpec:
    return ServiceSpec(
        name=NAME,
        description="VictoriaLogs authenticating front (nginx, client certificates)",
        exec_start=(NGINX, "-e", "stderr", "-c", CONFIG),
        configs=(*tls, ConfigFile(CONFIG, config, validate=validate_command())),
        config_dirs=(TLS.dir,),
        data_dirs=(DATA_DIR,),
        reload="sighup",
        ready_url=f"https://{bind}/health",
        ready_curl_args=TLS.curl_args(),
    )


@deploy("VictoriaLogs front")
def victorialogs_front(ctx: "HostContext", certificate=None):
    """
    nginx from Debian as the store's authenticating front (see the module's docstring).

    + ctx: the host context: the binds of victorialogs.http and victorialogs.local, the clients from the topology
    + certificate: the store's leaf (issued here when not given)
    """
    from roles.node_exporter import certificate_expiry

    certificate = certificate or leaf(ctx, SELF, LISTENER)
    bind, upstream = ctx.bind(LISTENER), ctx.bind(UPSTREAM)
    spec = service_spec(render_config(ctx.topology, ctx.name, bind, upstream), bind, tls_files(NAME, certificate))
    # Debian's own unit would serve the package's default site on port 80: masked before the package comes.
    mask = files.link(name=f"{NAME}: Debian's nginx.service masked", path="/etc/systemd/system/nginx.service", target="/dev/null")
    systemd.daemon_reload(name=f"{NAME}: daemon-reload for the mask", _if=mask.did_change)
    package = apt.packages(name=f"{NAME}: nginx from Debian", packages=["nginx"], update=True, cache_time=24 * 3600)
    service_account(spec)
    service_dirs(spec)
    configs = [
        validated_file(name=f"{NAME}: config {c.dest}", dest=c.dest, content=c.content, validate=c.validate,
                       user="root", group=spec.account, mode=c.mode)
        for c in spec.configs
    ]
    run_service(spec, ctx.hardening, code_changes=[package], config_changes=configs)
    certificate_expiry(ctx.settings.node_exporter.textfile_dir, NAME, certificate)
