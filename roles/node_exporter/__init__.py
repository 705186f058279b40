"""node_exporter on every host: host metrics, systemd unit states, textfile metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyinfra.api import deploy
from pyinfra.operations import files

from roles._placement import COMPONENTS
from roles._service import ConfigFile, ServiceSpec, release_service
from roles._service.operations import validated_file
from roles._tls import TlsPaths, allowed_clients, expiry_textfile, leaf, tls_files, web_config

if TYPE_CHECKING:  # the role gets its settings as an argument and imports no aggregate
    from roles._context import HostContext
    from roles._settings import Settings
    from roles.node_exporter.settings import NodeExporterSettings

# Jobs that report through textfile metrics (the Grafana backup) run as their own
# users; membership in node_exporter's group lets them reach (/var/lib/node_exporter
# is 0750) and write the textfile directory. Nothing in either directory is secret.
TEXTFILE_GROUP = "node_exporter"



def watched_units(settings: Settings) -> str:
    """The systemd collector's unit-include regex: every unit of the placement table (`Component.units`),
    whichever host runs it, so the dashboard and the unit alerts (NodeSystemdServiceFailed,
    NodeSystemdServiceCrashlooping) see every unit of the stack and nothing else."""
    names = sorted({unit for component in COMPONENTS for unit in component.unit_names(settings)})
    return "(" + "|".join(name.replace(".", r"\.") for name in names) + r")\.service"


TLS = TlsPaths("node_exporter")
# node_exporter has no checker of its own: the new binary starts on a loopback port with the staged
# web config and no collectors; exporter-toolkit exits at once on a config or file it cannot use, so
# still serving after 3 s (timeout's 124) is the pass. `||`: the checker runs under `set -e`.
WEB_CONFIG_CHECK = (
    "{ timeout 3 {bin}/node_exporter --web.config.file={path} --web.listen-address=127.0.0.1:0 "
    "--collector.disable-defaults || test $? -eq 124; }"
)


def service_spec(settings: Settings, bind: str, tls: tuple[ConfigFile, ...] = ()) -> ServiceSpec:
    """node_exporter's service; `bind` is ip:port from the topology (node_exporter.metrics);
    `tls`: its certificate files and web config (roles/_tls.py), none = plain HTTP."""
    ne = settings.node_exporter
    web = ((f"--web.config.file={TLS.web_config}",) if tls else ())
    return ServiceSpec(
        name="node_exporter",
        description="Prometheus node_exporter",
        exec_start=(
            "{bin}/node_exporter",
            f"--web.listen-address={bind}",
            f"--collector.textfile.directory={ne.textfile_dir}",
            "--collector.systemd",
            f"--collector.systemd.unit-include={watched_units(settings)}",
            # node_systemd_service_restart_total (systemd's NRestarts): NodeSystemdServiceCrashlooping.
            "--collector.systemd.enable-restarts-metrics",
            *web,
        ),
        configs=tls,
        config_dirs=(TLS.dir,) if tls else (),
        # The textfile dir is created below with its writers' group, not as a data dir.
        data_dirs=("/var/lib/node_exporter",),
        netlink=True,
        ready_url=f"{'https' if tls else 'http'}://{bind}/metrics",
        ready_curl_args=TLS.curl_args() if tls else (),
    )


def tls_configs(ctx: HostContext, certificate) -> tuple[ConfigFile, ...]:
    """The certificate files and the web config admitting the topology's clients."""
    allowed = allowed_clients(ctx.topology, ctx.name, "node_exporter.metrics")
    return (*tls_files("node_exporter", certificate),
            ConfigFile(TLS.web_config, web_config(TLS, allowed), validate=WEB_CONFIG_CHECK))


@deploy("node_exporter")
def node_exporter(settings: NodeExporterSettings, ctx: HostContext):
    """
    Install node_exporter on this host.

    + settings: the `node_exporter` block
    + ctx: the host context (its bind from the topology, artifact base URL, hardening)
    """
    certificate = leaf(ctx, "node_exporter", "node_exporter.metrics")
    spec = service_spec(ctx.settings, ctx.bind("node_exporter.metrics"), tls_configs(ctx, certificate))
    release_service(spec, ctx.artifact_base_url, ctx.hardening)
    textfile_dir(settings.textfile_dir)
    certificate_expiry(settings.textfile_dir, "node_exporter", certificate)


def expiry_textfile_path(textfile_dir: str, service: str) -> str:
    return f"{textfile_dir}/tls_{service}.prom"


def certificate_expiry(textfile_dir: str, service: str, certificate, renewed_by_operator: bool = False, file_name: str = "") -> None:
    """The certificate's notAfter for node_exporter's textfile collector (CertificateExpiresSoon; with
    `renewed_by_operator`, PublicCertificateExpiresSoon). `file_name`: the textfile's, default tls_<service>.prom."""
    validated_file(name=f"{service}: certificate expiry metric",
                   dest=f"{textfile_dir}/{file_name}" if file_name else expiry_textfile_path(textfile_dir, service),
                   content=expiry_textfile(service, certificate, renewed_by_operator), user="root", group=TEXTFILE_GROUP, mode="0644")

def textfile_dir(path: str) -> None:
    """node_exporter reads it; members of TEXTFILE_GROUP write it (their files must be world-readable, 0644)."""
    files.directory(name="node_exporter: textfile dir", path=path, user="node_exporter", group=TEXTFILE_GROUP, mode="0770")


def no_certificate(textfile_dir: str, service: str, why: str) -> None:
    """`service` serves no certificate of its own (its front does, or it was never given one here): its TLS
    directory and its expiry metric are removed where an earlier release left them. A metric left behind
    would page CertificateExpiresSoon for a certificate no one renews any more. `why`: for the operations' names."""
    files.directory(name=f"{service}: no TLS files of its own ({why})", path=TlsPaths(service).dir, present=False)
    files.file(name=f"{service}: no certificate expiry metric of its own ({why})", path=expiry_textfile_path(textfile_dir, service),
               present=False)
