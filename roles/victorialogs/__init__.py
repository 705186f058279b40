"""VictoriaLogs, the log store of the lab (and the permissively licensed alternative to Loki).

Installed through the building block. VictoriaLogs has no config file: every
setting is a command-line flag. The flags live in an environment file read with
`-envflag.enable`, so the building block can check them with the new binary
(`-version` parses every flag value first and exits 1 on a bad one) before they
replace the live file, and a changed flag restarts the service like a changed config.

Retention (docs/retention.md "VictoriaLogs"): one `-retentionPeriod` per instance, set
to the policy's longest period; a daily systemd timer deletes what each shorter class
must no longer keep through the delete API. `-delete.enable` is on for that job and
for erasure requests (`python -m roles.retention.erase`).

VictoriaLogs listens on 127.0.0.1 (`victorialogs.local`) only: its front (roles/victorialogs/front.py,
nginx) serves `victorialogs.http` with TLS and client certificates, and admits the delete API to the
erasure command's identity and to the retention job's (`victorialogs-retention` on this host) only.

With `stores.mode: scalable` every telemetry host runs this node as a storage node of a cluster, and beside
it the cluster's access tier (`victorialogs-access`, roles/victorialogs/cluster.py) behind the same front.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from pyinfra.api import deploy
from pyinfra.operations import files, systemd

from roles._service import ConfigFile, ServiceSpec, release_service
from roles._service.operations import validated_file
from roles._tls import TlsPaths, leaf, tls_files
from roles.node_exporter import certificate_expiry
from roles.retention import RetentionPolicy
from roles.retention.logsql import enforcement_deletes, longest_period
from roles._front import authenticating_front
from roles.victorialogs import cluster
from roles.victorialogs.flagfile import BINARY, EXEC_START, check_flags_command, env_file  # noqa: F401 (BINARY: for its tests)
from roles.victorialogs.front import RETENTION, SELF, front
from roles.victorialogs.settings import VictoriaLogsSettings

if TYPE_CHECKING:
    from roles._context import HostContext

NAME = "victorialogs"
FLAGS_FILE = f"/etc/{NAME}/flags.env"
ENFORCE_SCRIPT = f"/etc/{NAME}/enforce-retention.sh"
ENFORCE_UNIT = f"{NAME}-retention"
# VictoriaLogs acknowledges a write once it is in memory and writes it to disk at this
# interval: a SIGKILL or power cut loses what it took in the last one or two intervals
# (5s by default; 1s is its minimum). The gateway cannot resend what was acknowledged
# (docs/tracing.md "Crash safety": measured).
FLUSH_INTERVAL = "1s"
# The retention job's client certificate (identity victorialogs-retention on this host), for the front.
JOB_TLS = TlsPaths(NAME)


def _bind(settings: VictoriaLogsSettings, bind: str) -> str:
    return bind or f"127.0.0.1:{settings.local_port}"


def flags(settings: VictoriaLogsSettings, policy: RetentionPolicy, bind: str = "", storage_node: bool = False) -> dict[str, str]:
    """Every flag VictoriaLogs runs with, by name without the leading "-"; `bind` is victorialogs.local from the topology
    (127.0.0.1: the front, roles/victorialogs/front.py, is the only way in from elsewhere); `storage_node`: a
    member of the cluster (stores.mode scalable, roles/victorialogs/cluster.py)."""
    return {
        "httpListenAddr": _bind(settings, bind),
        "storageDataPath": settings.storage_path,
        # The longest class: nothing the policy keeps is dropped by the store itself.
        "retentionPeriod": longest_period(policy),
        # /delete/* for the enforcement job and erasure requests (off by default).
        "delete.enable": "true",
        # Disk-based retention (-retention.maxDisk*) would drop the OLDEST day
        # partitions whatever their stream, i.e. security and audit lines the
        # policy must keep: never set. Instead, refuse new data when the disk is full.
        "storage.minFreeDiskSpaceBytes": "1GB",
        "inmemoryDataFlushInterval": FLUSH_INTERVAL,
        "loggerFormat": "json",
        **(cluster.storage_flags() if storage_node else {}),
    }


def flags_env(settings: VictoriaLogsSettings, policy: RetentionPolicy, bind: str = "", storage_node: bool = False) -> str:
    """The EnvironmentFile holding the flags as VL_<flag> (dots as underscores), for systemd."""
    return env_file(flags(settings, policy, bind, storage_node), "victorialogs flags")


def service_spec(settings: VictoriaLogsSettings, policy: RetentionPolicy, bind: str = "",
                 access: ServiceSpec | None = None) -> ServiceSpec:
    """The store; with `access` (cluster.access_spec, stores.mode scalable) a storage node, the access tier its companion."""
    return ServiceSpec(
        name=NAME,
        description="VictoriaLogs log store" + (" (storage node)" if access else ""),
        exec_start=EXEC_START,
        configs=(ConfigFile(FLAGS_FILE, flags_env(settings, policy, bind, storage_node=access is not None),
                            validate=check_flags_command(), mode="0640"),),
        companions=(access,) if access else (),
        env_files=(FLAGS_FILE,),
        data_dirs=("/var/lib/victorialogs", settings.storage_path),
        ready_url=f"http://{_bind(settings, bind)}/health",
        # VictoriaLogs 1.52.2 checks its mmapped parts with mincore() and panics when the
        # call fails ("cannot call mincore ... operation not permitted", seen on the lab);
        # @system-service does not hold it.
        extra_syscalls=("mincore",),
    )


def enforcement_script(settings: VictoriaLogsSettings, policy: RetentionPolicy, front: str = "", tls: TlsPaths = JOB_TLS) -> str:
    """The daily job: count, then delete, each shorter class's expired lines; wait until the deletes finish.

    It calls the store through its front (`front`: victorialogs.http's ip:port) with its own identity
    (victorialogs-retention on this host), which the front admits to /select/logsql/ and /delete/;
    without `front`, the store itself on 127.0.0.1:<port> in plain HTTP.
    It logs to the journal how many lines of each class it deleted, so an auditor
    can see the policy applied (`journalctl -u victorialogs-retention`).
    """
    if front:
        base, curl = f"https://{front}", "curl -fsS " + " ".join(shlex.quote(a) for a in tls.curl_args())
    else:  # no front (a store run by hand, the lab's local test of the binary): plain, on the loopback
        base, curl = f"http://127.0.0.1:{settings.port}", "curl -fsS"
    lines = [
        "#!/bin/sh",
        "# Managed by the Sentinel observability toolkit: applies the retention policy's",
        "# shorter classes to VictoriaLogs, whose own -retentionPeriod is the longest one.",
        "set -eu",
        f"base={base}",
        "delete_class() {",
        f'  count=$({curl} --data-urlencode "query=$2 | stats count() rows" "$base/select/logsql/query")',
        f'  task=$({curl} --data-urlencode "filter=$2" "$base/delete/run_task")',
        '  echo "retention class $1: deleting lines older than $3: $count, task $task, filter: $2"',
        "}",
    ]
    deletes = enforcement_deletes(policy)
    for retention_class in deletes:
        lines.append(
            f"delete_class {shlex.quote(retention_class.name)} {shlex.quote(retention_class.expired())} {shlex.quote(retention_class.period)}"
        )
    if not deletes:
        lines.append('echo "every retention class keeps the instance retention: nothing to delete"')
    lines += [
        f"for i in $(seq {settings.enforcement_timeout_seconds}); do",
        f'  if [ "$({curl} "$base/delete/active_tasks")" = "[]" ]; then echo "deletes finished"; exit 0; fi',
        "  sleep 1",
        "done",
        f'echo "deletes still running after {settings.enforcement_timeout_seconds}s" >&2',
        "exit 1",
    ]
    return "\n".join(lines) + "\n"


def enforcement_units(settings: VictoriaLogsSettings) -> tuple[str, str]:
    """The oneshot service and the timer that runs the enforcement job."""
    service = f"""# Managed by the Sentinel observability toolkit.
[Unit]
Description=VictoriaLogs retention enforcement (shorter classes of the retention policy)
Requires={NAME}.service
After={NAME}.service

[Service]
Type=oneshot
User={NAME}
Group={NAME}
ExecStart={ENFORCE_SCRIPT}
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
"""
    timer = f"""# Managed by the Sentinel observability toolkit.
[Unit]
Description=Daily VictoriaLogs retention enforcement

[Timer]
OnCalendar={settings.enforcement_schedule}
# A run missed while the host was down happens at the next boot.
Persistent=true
RandomizedDelaySec=10m

[Install]
WantedBy=timers.target
"""
    return service, timer


@deploy("VictoriaLogs")
def victorialogs(settings: VictoriaLogsSettings, ctx: HostContext):
    """
    Install VictoriaLogs and its daily retention enforcement job.

    + settings: the store's settings (`victorialogs` in group data)
    + ctx: the host context: the retention policy (`retention`), the bind from the topology
    """
    retention, bind = ctx.settings.retention, ctx.bind("victorialogs.local")
    scalable = ctx.settings.stores.mode == "scalable"
    certificate = leaf(ctx, SELF, "victorialogs.http")
    access = None
    if scalable:
        # The access tier shows the store's own certificate (this host's `victorialogs`) to every storage node's front.
        access = cluster.access_spec(cluster.storage_nodes(ctx), ctx.bind("victorialogs.access_local"),
                                     tls_files(cluster.NAME, certificate))
    release_service(spec=service_spec(settings, retention, bind, access), artifact_base_url=ctx.artifact_base_url, hardening=ctx.hardening)
    authenticating_front(ctx, front(scalable), certificate)
    # The retention job's identity: read by the job (User=victorialogs); a renewal restarts nothing.
    files.directory(name="victorialogs: the retention job's TLS dir", path=JOB_TLS.dir, user="root", group=NAME, mode="0750")
    job_certificate = leaf(ctx, RETENTION)
    for file in tls_files(NAME, job_certificate):
        validated_file(name=f"victorialogs: retention job TLS {file.dest}", dest=file.dest, content=file.content,
                       validate=file.validate, user="root", group=NAME, mode=file.mode)
    # Its end too: an expired job certificate would stop retention silently until the job's own alert.
    certificate_expiry(ctx.settings.node_exporter.textfile_dir, RETENTION, job_certificate)
    validated_file(
        name="victorialogs: retention enforcement script",
        dest=ENFORCE_SCRIPT,
        content=enforcement_script(settings, retention, ctx.bind("victorialogs.http")),
        validate="sh -n {path}",
        group=NAME,
        mode="0750",
    )
    service, timer = enforcement_units(settings)
    units = [
        validated_file(name=f"victorialogs: unit {unit}", dest=f"/etc/systemd/system/{unit}", content=content, mode="0644")
        for unit, content in ((f"{ENFORCE_UNIT}.service", service), (f"{ENFORCE_UNIT}.timer", timer))
    ]
    systemd.daemon_reload(name="victorialogs: daemon-reload for the enforcement units", _if=lambda: any(u.did_change() for u in units))
    # A cluster deletes through any access tier, which fans the delete out to every storage node: the job runs on
    # stores.host alone, not once per member.
    enforcing = not scalable or ctx.settings.stores.host in (None, ctx.name)
    systemd.service(name="victorialogs: enforcement timer", service=f"{ENFORCE_UNIT}.timer", running=enforcing, enabled=enforcing)
