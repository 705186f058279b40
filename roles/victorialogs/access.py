"""VictoriaLogs' access tier (stores.mode scalable): the cluster's vlinsert and vlselect in one process.

The pinned release (1.52.2) is one binary: with `-storageNode=host:port,...` it stores nothing and acts as
vlinsert and vlselect (app/vlstorage/main.go `Init`); without, it is a storage node (the single node). In
scalable mode every telemetry host runs both: its storage node (roles/victorialogs, `victorialogs.local`)
and this access tier on 127.0.0.1 (`victorialogs.access`), a second unit of the same release through the
building block (`release_service(..., siblings=)`); its flags are checked with the new binary (`-version`)
before they replace the live file, as the node's are.

The front on each host (roles/victorialogs/front.py) sends /insert/, /select/ and /delete/ to its access
tier, which fans them out to every storage node through the nodes' fronts (`-storageNode=` every telemetry
host's `victorialogs.http`, TLS with the environment CA and the access tier's own client certificate,
identity `<host>.victorialogs_access`, admitted to /internal/* only: the topology's flow
victorialogs_access -> victorialogs.http).

What the source says it does (app/vlstorage/netinsert, netselect; docs/architecture.md "The log store cluster"):
- inserts: each stream goes to one node (by the stream's hash); rows are acknowledged once they are in the
  access tier's memory and sent within a second; a node that fails a send is skipped for 10 s and its block
  is re-routed to the others. Nothing is replicated: a node's data is on that node only.
- queries go to every node; with a node down the query fails (502) unless it asks for a partial response
  (`allow_partial_response=1`): `-search.allowPartialResponse` stays off, so an erasure or retention count is
  never silently short. Deletes need every node (no partial mode).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from roles._service import ConfigFile, ServiceSpec
from roles._tls import TlsPaths, leaf, tls_files
from roles.victorialogs.flagfile import BINARY, ENV_PREFIX, check_flags_command, env_file_of
from roles.victorialogs.front import ACCESS_TIER, ACCESS_UPSTREAM, LISTENER

if TYPE_CHECKING:
    from roles._context import HostContext
    from roles._pki import Leaf
    from roles.victorialogs.settings import VictoriaLogsSettings

NAME = "victorialogs-access"
FLAGS_FILE = f"/etc/{NAME}/flags.env"
TLS = TlsPaths(NAME)


def storage_nodes(ctx: "HostContext") -> list[str]:
    """host:port of every storage node's front, sorted by host: the same order on every access tier (a stream's
    hash picks its node by position)."""
    return [l.reach(ctx.name) for l in ctx.topology.instances(LISTENER)]


def access_flags(settings: "VictoriaLogsSettings", bind: str, nodes: list[str], tls: TlsPaths = TLS) -> dict[str, str]:
    """Every flag of the access tier, by name without the leading "-" (app/vlstorage/main.go, app/vlselect)."""
    if not nodes:
        raise ValueError("the access tier needs at least one storage node (victorialogs.http)")
    return {
        "httpListenAddr": bind or f"127.0.0.1:{settings.access_port}",
        "storageNode": ",".join(nodes),
        # One value applies to every node (flagutil's GetOptionalArg): each front is https with client certificates.
        "storageNode.tls": "true",
        "storageNode.tlsCAFile": tls.ca,
        "storageNode.tlsCertFile": tls.cert,
        "storageNode.tlsKeyFile": tls.key,
        # /delete/* for the erasure command and the retention job; the nodes take them on /internal/delete/*.
        "delete.enable": "true",
        # A query with a node down fails (502) unless it asks for a partial response itself: an erasure count or
        # a retention count must never be short without saying so (a partial response carries no flag).
        "search.allowPartialResponse": "false",
        "loggerFormat": "json",
    }


def access_spec(settings: "VictoriaLogsSettings", bind: str, nodes: list[str], certificate: "Leaf | None" = None) -> ServiceSpec:
    tls = tls_files(NAME, certificate) if certificate else ()
    return ServiceSpec(
        name=NAME,
        release="victorialogs",
        description="VictoriaLogs access tier (vlinsert and vlselect of the cluster)",
        exec_start=(f"{{bin}}/{BINARY}", "-envflag.enable", f"-envflag.prefix={ENV_PREFIX}"),
        # A renewed certificate restarts it (its client reads the files at start).
        configs=(*tls, ConfigFile(FLAGS_FILE, env_file_of(access_flags(settings, bind, nodes), "victorialogs access tier flags"),
                                  validate=check_flags_command(), mode="0640")),
        config_dirs=(TLS.dir,),
        env_files=(FLAGS_FILE,),
        ready_url=f"http://{bind or f'127.0.0.1:{settings.access_port}'}/health",
    )


def access_tier(settings: "VictoriaLogsSettings", ctx: "HostContext") -> tuple[ServiceSpec, "Leaf"]:
    """This host's access tier and its client certificate (identity <host>.victorialogs_access)."""
    certificate = leaf(ctx, ACCESS_TIER)
    return access_spec(settings, ctx.bind(ACCESS_UPSTREAM), storage_nodes(ctx), certificate), certificate


def runs_here(ctx: "HostContext") -> bool:
    return ctx.name in ctx.topology.runs.get(ACCESS_TIER, ())
