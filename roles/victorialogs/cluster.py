"""stores.mode scalable: VictoriaLogs as a cluster of every telemetry host.

VictoriaLogs 1.52.2 is one executable in three roles (its docs, "cluster"; app/vlstorage/main.go): without
`-storageNode` it is a storage node (vlstorage, the same as a single node); with `-storageNode=<addr>,...` it is
vlinsert and vlselect, and keeps no data. Each telemetry host runs both:

- **the storage node**: the role's `victorialogs` unit, unchanged but for `-internaldelete.enable` (the access
  tier fans /delete/* out as /internal/delete/*), behind its front's `victorialogs.storage` listener (TLS, client
  certificates, roles/victorialogs/front.py STORAGE_ACCESS). Its own host's gateway writes the lines to it
  (roles/otel_collector CLUSTER_WRITES): it acknowledges what it holds, as a single node does;
- **the access tier**: `victorialogs-access`, a companion of the same release (roles/_service `companions`) on
  127.0.0.1 behind the front's `victorialogs.http`. It asks every node for every query and delete. Lines written
  through it (the erasure command's audit entries) it spreads over the nodes, but it acknowledges them from its
  memory and drops them when it stops (app/vlstorage/netinsert flushes on shutdown under an already cancelled
  context; measured on the lab): the gateways do not write through it.

Grafana, the erasure command and the retention job read and delete through the access tier on `stores.host`
(roles/_topology.py `primary`).

What the cluster does not do (docs/architecture.md "The VictoriaLogs cluster", measured on the lab): it keeps one
copy of each line. A storage node that is down takes its lines out of every query until it is back, and a query
then fails rather than answer without them, unless the caller asks for `allow_partial_response=1`; its host's
gateway keeps the new lines in its disk queue meanwhile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from roles._net import host_port
from roles._service import ConfigFile, ServiceSpec
from roles._tls import TlsPaths
from roles.victorialogs.flagfile import EXEC_START, check_flags_command, env_file

if TYPE_CHECKING:
    from roles._context import HostContext

NAME = "victorialogs-access"
# The access tier's client certificate: the store's own identity on this host (the one its front serves), which
# every storage node's front admits to /internal/* (STORAGE_ACCESS). Read by the service's user (victorialogs).
TLS = TlsPaths(NAME)
FLAGS_FILE = f"/etc/{NAME}/flags.env"


def storage_nodes(ctx: "HostContext") -> list[str]:
    """ip:port of every telemetry host's storage node front, this host's included, sorted by host."""
    return [host_port(l.ip, l.port) for l in ctx.topology.instances("victorialogs.storage")]


def access_flags(nodes: list[str], bind: str, tls: TlsPaths = TLS) -> dict[str, str]:
    """The access tier's flags: `nodes` (storage_nodes), `bind` (victorialogs.access_local)."""
    if not nodes:
        raise ValueError("the VictoriaLogs cluster has no storage node: no telemetry host has victorialogs.storage")
    return {
        "httpListenAddr": bind,
        "storageNode": ",".join(nodes),
        # One value for every node (VictoriaLogs' array flags repeat a single value for each -storageNode).
        "storageNode.tls": "true",
        "storageNode.tlsCAFile": tls.ca,
        "storageNode.tlsCertFile": tls.cert,
        "storageNode.tlsKeyFile": tls.key,
        # The retention job and erasure requests delete through the access tier, which fans them out.
        "delete.enable": "true",
        "loggerFormat": "json",
    }


def storage_flags() -> dict[str, str]:
    """What a storage node adds to a single node's flags: the access tier's deletes (/internal/delete/*)."""
    return {"internaldelete.enable": "true"}


def access_spec(nodes: list[str], bind: str, tls: tuple[ConfigFile, ...] = ()) -> ServiceSpec:
    """The access tier, a companion of the `victorialogs` release (the storage node's); `tls`: its certificate files
    (roles/_tls.py tls_files, in TLS.dir), checked and written before it starts; a renewed one restarts it."""
    return ServiceSpec(
        name=NAME,
        description="VictoriaLogs access tier (vlinsert, vlselect over every telemetry host's storage node)",
        exec_start=EXEC_START,
        configs=(*tls, ConfigFile(FLAGS_FILE, env_file(access_flags(nodes, bind), "victorialogs-access flags"),
                            validate=check_flags_command(), mode="0640"),),
        env_files=(FLAGS_FILE,),
        config_dirs=(TLS.dir,),
        # It keeps no data; its working directory is its home.
        data_dirs=(f"/var/lib/{NAME}",),
        working_directory=f"/var/lib/{NAME}",
        ready_url=f"http://{bind}/health",
        user="victorialogs",
    )
