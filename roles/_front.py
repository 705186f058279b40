"""An authenticating front: nginx from Debian on a store's host listeners, the store behind it on 127.0.0.1.

Why a front: the stores the lab runs cannot tell one client certificate of the environment CA from
another. The pinned VictoriaLogs (1.52.2, open source) cannot ask for a client certificate at all
(`-mtls` is enterprise-only) and has no key of its own for /delete/*; Jaeger v2's configtls
(`client_ca_file`) admits any certificate of the CA and has no list of names. Nothing in them can say
"the gateway may write, Grafana may read, the erasure command may delete".

A front (one per store, `Front`) holds each of the store's host listeners (`FrontRoute`), and on each:
- TLS 1.2 at least, the store's certificate from the environment CA;
- a client certificate from the environment CA (`ssl_verify_client on`), else 400;
- the client's subject CN (the CA gives every leaf "<host>.<component>", roles/_tls.py
  `common_name`) mapped to its component, and the component to the paths it may call on that
  listener (`FrontRoute.access`), else 403. Which hosts hold each identity comes from the
  topology's flows to the listener, plus the controller's identities (the operator's, the erasure
  command's) and the ones on the store's own host (its readiness check, a job of its own); a client
  of a new flow with no row stops the render;
- a request whose raw path holds `%`, `..` or `//` is refused (400): the path nginx checks is then
  the path the store routes;
- refusals, and the admitted calls under `Front.journaled` (VictoriaLogs' /delete/), go to the
  journal with the client's subject.

The front runs as its own hardened unit under its own user (the building block's unit, without a
release archive); Debian's own nginx.service stays masked (it would serve the package's default
site on port 80). Its config is checked with `nginx -t` before it replaces the live one; a renewed
certificate is read on the reload (SIGHUP) that its change triggers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyinfra.api import deploy
from pyinfra.operations import apt, files, systemd

from roles._pki import OPERATOR
from roles._service import ConfigFile, ServiceSpec, run_service, service_account, service_dirs
from roles._service.operations import validated_file
from roles._service.quoting import QuotingError
from roles._tls import ERASURE, Leaf, TlsPaths, common_name, leaf, tls_files

if TYPE_CHECKING:
    from roles._context import HostContext
    from roles._topology import Topology

NGINX = "/usr/sbin/nginx"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_PATH = re.compile(r"/[A-Za-z0-9_/.-]*")
_VALUE = re.compile(r"[A-Za-z0-9_./:\[\]-]+")


@dataclass(frozen=True)
class FrontRoute:
    """One host listener the front holds.

    + listener: the topology's listener the front binds (the host's IP), e.g. jaeger.query
    + upstream: the store's own listener on 127.0.0.1 it passes to, e.g. jaeger.query_local
    + access: component -> the paths it may call here: a prefix ends in "/", anything else is one exact path
    + reserved: prefixes that a wider prefix of a row does not reach: only the rows naming one (exactly) call it
      (Loki's /loki/api/v1/delete under Grafana's /loki/api/v1/)
    + websocket: pass a WebSocket upgrade through (Loki's /loki/api/v1/tail, Grafana's live tailing); nginx
      drops the hop-by-hop Upgrade and Connection headers otherwise
    + down_closes: when the store does not answer, close the connection instead of answering 502, so the
      client sees the store as unreachable, as it would without a front (VictoriaLogs' access tier tells an
      unreachable storage node from one that answers with an error, and answers partial queries only for the first)
    """

    listener: str
    upstream: str
    access: Mapping[str, tuple[str, ...]]
    reserved: tuple[str, ...] = ()
    websocket: bool = False
    down_closes: bool = False


@dataclass(frozen=True)
class Front:
    """A store's authenticating front.

    + name: its unit, user and directories (`victorialogs-front`); the journal's tag is the same with `_`
    + component: the store whose certificate it serves, and whose identity on its host checks its readiness
    + routes: the listeners it holds; the first one answers the readiness check
    + ready_path: the path of the readiness check (the component's own row on the first route admits it)
    + owner: the module that holds the access rows (named in the message when a row is missing)
    + host_identities: identities of this host besides the component's (a job of the store's own)
    + controller_identities: identities issued on the controller (no host in their name)
    + journaled: prefixes whose admitted calls go to the journal too (refusals always do)
    + max_body: the largest request body (the store's own limit)
    + timeout_s: how long a request may take (queries over a long range)
    """

    name: str
    component: str
    routes: tuple[FrontRoute, ...]
    ready_path: str
    owner: str
    host_identities: tuple[str, ...] = ()
    controller_identities: tuple[str, ...] = (OPERATOR, ERASURE)
    journaled: tuple[str, ...] = ()
    max_body: str = "64m"
    timeout_s: int = 300
    # Other roots, for tests that run nginx -t on the rendered config against real files.
    etc: str = "/etc"
    var_lib: str = "/var/lib"

    @property
    def tls(self) -> TlsPaths:
        return TlsPaths(self.name, base=self.etc)

    @property
    def config(self) -> str:
        return f"{self.etc}/{self.name}/nginx.conf"

    @property
    def data_dir(self) -> str:
        return f"{self.var_lib}/{self.name}"

    def route(self, listener: str) -> FrontRoute:
        return next(r for r in self.routes if r.listener == listener)

    def identities(self, topology: "Topology", host: str, listener: str | None = None) -> list[tuple[str, str]]:
        """(subject CN, component) of every identity the front on `host` admits (on `listener`, else on any), sorted.
        A client of a flow to a route's listener with no row on that route stops the render."""
        found: set[tuple[str, str]] = set()
        for route in self.routes if listener is None else (self.route(listener),):
            clients = {(common_name(client, flow.client), flow.client) for client, flow in topology.clients(route.listener)}
            for _, component in clients:
                if component not in route.access:
                    raise ValueError(f"{component} reaches {route.listener} (a flow of roles/_topology.py) but {self.owner} "
                                     f"does not say which paths it may use there: add its row")
            own = {(common_name(None, c), c) for c in self.controller_identities}
            own |= {(common_name(host, c), c) for c in (*self.host_identities, self.component)}
            found |= clients | {(cn, c) for cn, c in own if c in route.access}
        for cn, _ in found:
            if not _NAME.fullmatch(cn):
                raise QuotingError(f"{self.name}: client name {cn!r} cannot be written in nginx's config")
        return sorted(found)


def _pattern(name: str, path: str, prefix: bool = False) -> str:
    if not _PATH.fullmatch(path):
        raise QuotingError(f"{name}: path {path!r} cannot be written in nginx's config")
    escaped = re.escape(path)
    return escaped if prefix or path.endswith("/") else f"{escaped}$"


def _checked(name: str, *values: str) -> None:
    for value in values:
        if not _VALUE.fullmatch(value):
            raise QuotingError(f"{name}: {value!r} cannot be written in nginx's config")


def _server(front: Front, index: int, route: FrontRoute, bind: str, upstream: str) -> str:
    # Keep-alive to the store (an empty Connection header), or the client's upgrade when it asks for one.
    connection = ('proxy_set_header Upgrade $http_upgrade;\n            proxy_set_header Connection $front_upgrade;'
                  if route.websocket else 'proxy_set_header Connection "";')
    # nginx's own 502 and 504 (the store refused or timed out; the store's own answers pass as they are) become
    # a closed connection (444: no response at all).
    down = """
            error_page 502 504 = @store_down;""" if route.down_closes else ""
    down_location = """

        location @store_down {
            return 444;
        }""" if route.down_closes else ""
    return f"""
    # {route.listener} -> {route.upstream}
    upstream store_{index} {{
        server {upstream};
        keepalive 8;
    }}

    server {{
        listen {bind} ssl;
        ssl_certificate {front.tls.cert};
        ssl_certificate_key {front.tls.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_prefer_server_ciphers off;
        ssl_client_certificate {front.tls.ca};
        ssl_verify_client on;
        ssl_verify_depth 1;
        ssl_session_tickets off;
        access_log syslog:server=unix:/run/systemd/journal/dev-log,tag={front.name.replace("-", "_")},nohostname front if=$front_log_{index};

        location / {{
            # The path checked above is the path the store routes: no encoded or dot segments.
            if ($request_uri ~ "^[^?]*(%|\\.\\.|//)") {{
                return 400;
            }}
            if ($front_allowed_{index} = 0) {{
                return 403;
            }}
            proxy_pass http://store_{index};
            proxy_http_version 1.1;
            {connection}
            proxy_set_header Authorization "";
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_read_timeout {front.timeout_s}s;
            proxy_send_timeout {front.timeout_s}s;{down}
        }}{down_location}
    }}
"""


def render_config(front: Front, topology: "Topology", host: str, binds: Mapping[str, str]) -> str:
    """nginx.conf of `front` on `host`; `binds`: listener -> ip:port (each route's listener and upstream)."""
    everyone = front.identities(topology, host)
    who = "\n".join(f'        "CN={cn}" {component};' for cn, component in everyone)
    maps, servers = [], []
    for index, route in enumerate(front.routes):
        kinds = sorted({component for _, component in front.identities(topology, host, route.listener)})
        # nginx tries a map's regular expressions in order: the reserved refusals come before the rows.
        refusals = [f'        "~^{component} {_pattern(front.name, reserved, prefix=True)}" 0;'
                    for component in kinds for reserved in route.reserved if reserved not in route.access[component]]
        rules = "\n".join([*refusals, *(f'        "~^{component} {_pattern(front.name, path)}" 1;' for component in kinds for path in route.access[component])])
        journaled = "".join(f'\n        "~^1 {_pattern(front.name, prefix, prefix=True)}" 1;' for prefix in front.journaled)
        maps.append(f"""    # What each identity may call on {route.listener}.
    map "$front_client $uri" $front_allowed_{index} {{
        default 0;
{rules}
    }}
    # Refusals{" and " + ", ".join(front.journaled) if front.journaled else ""} go to the journal, with who asked.
    map "$front_allowed_{index} $uri" $front_log_{index} {{
        default 0;
        "~^0 " 1;{journaled}
    }}""")
        bind, upstream = binds[route.listener], binds[route.upstream]
        _checked(front.name, bind, upstream)
        servers.append(_server(front, index, route, bind, upstream))
    _checked(front.name, front.tls.cert, front.tls.key, front.tls.ca, front.data_dir, front.max_body)
    data_dir = front.data_dir
    upgrade = """    # A WebSocket upgrade passes through; any other request keeps its keep-alive connection to the store.
    map $http_upgrade $front_upgrade {
        default upgrade;
        "" "";
    }
""" if any(route.websocket for route in front.routes) else ""
    return f"""# Managed by the Sentinel observability toolkit; local edits are overwritten.
# {front.name}: the authenticating front of {front.component} (roles/_front.py; its rows: {front.owner}).
# TLS, client certificates from the environment CA, each identity admitted to its own paths. Checked with `nginx -t`.
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
    client_max_body_size {front.max_body};

    # The client's identity: its certificate's subject (chained to the environment CA), by component.
    map $ssl_client_s_dn $front_client {{
        default "";
{who}
    }}
{chr(10).join(maps)}
    log_format front '$remote_addr "$ssl_client_s_dn" "$request" $status $body_bytes_sent';
{upgrade}{"".join(servers)}}}
"""


def validate_command(front: Front) -> str:
    """nginx checks the staged config (and the certificate files it names) before it replaces the live one, as the
    service's user: as root it would leave root's files (its pid file, its temporary directories) where the service writes."""
    return f"/usr/sbin/runuser -u {front.name} -- {NGINX} -t -q -e stderr -c {{path}}"


def service_spec(front: Front, config: str, ready_bind: str, tls: tuple[ConfigFile, ...]) -> ServiceSpec:
    """The front's unit: `ready_bind` is the first route's ip:port; `tls` the certificate files (roles/_tls.py)."""
    return ServiceSpec(
        name=front.name,
        description=f"{front.component} authenticating front (nginx, client certificates)",
        exec_start=(NGINX, "-e", "stderr", "-c", front.config),
        configs=(*tls, ConfigFile(front.config, config, validate=validate_command(front))),
        config_dirs=(front.tls.dir,),
        data_dirs=(front.data_dir,),
        reload="sighup",
        ready_url=f"https://{ready_bind}{front.ready_path}",
        ready_curl_args=front.tls.curl_args(),
    )


@deploy("Authenticating front")
def authenticating_front(ctx: "HostContext", front: Front, certificate: Leaf | None = None):
    """
    nginx from Debian as a store's authenticating front (see the module's docstring).

    + ctx: the host context: the binds of the front's listeners and upstreams, the clients from the topology
    + front: which store, which listeners, who may call what
    + certificate: the store's leaf on this host; issued here when not given (the component's identity, the
      first route's names: every route is on the same host and address)
    """
    from roles.node_exporter import certificate_expiry

    certificate = certificate or leaf(ctx, front.component, front.routes[0].listener)
    binds = {name: ctx.bind(name) for route in front.routes for name in (route.listener, route.upstream)}
    config = render_config(front, ctx.topology, ctx.name, binds)
    spec = service_spec(front, config, binds[front.routes[0].listener], tls_files(front.name, certificate))
    # Debian's own unit would serve the package's default site on port 80: masked before the package comes.
    mask = files.link(name=f"{front.name}: Debian's nginx.service masked", path="/etc/systemd/system/nginx.service", target="/dev/null")
    systemd.daemon_reload(name=f"{front.name}: daemon-reload for the mask", _if=mask.did_change)
    package = apt.packages(name=f"{front.name}: nginx from Debian", packages=["nginx"], update=True, cache_time=24 * 3600)
    service_account(spec)
    service_dirs(spec)
    configs = [
        validated_file(name=f"{front.name}: config {c.dest}", dest=c.dest, content=c.content, validate=c.validate,
                       user="root", group=spec.account, mode=c.mode)
        for c in spec.configs
    ]
    run_service(spec, ctx.hardening, code_changes=[package], config_changes=configs)
    certificate_expiry(ctx.settings.node_exporter.textfile_dir, front.name, certificate)
