"""The lab's Sentinel backend, on the `app` hosts: the Node service of lab/backend_node.

Express on the operators' own SDKs (the OpenTelemetry Node SDK, @sentry/node, Winston,
prom-client), configured only by the env file the `backend` role writes. It emits what
the real backend emits, so the stack is exercised by real signals from the real clients.

Node.js is Debian's package (20.19 on Debian 13, what @sentry/node 11 needs). The app
and its node_modules come as one tarball from the lab mirror, built on the controller
from the committed lockfile (`python -m lab.artifacts build sentinel-backend`), checked
against the mirror's SHA256SUMS and installed like any release tree
(roles/_service/tree.py): the host never reaches the npm registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyinfra.api import deploy
from pyinfra.operations import apt, files

from lab.artifacts import node_backend
from roles._service import ServiceSpec, run_service, service_account, service_dirs
from roles._service.artifacts import Artifact, published_sha256
from roles._service.tree import release_tree

if TYPE_CHECKING:  # the role gets its settings as an argument and imports no aggregate
    from roles._context import HostContext
    from roles._settings import Settings
    from roles.backend.settings import BackendSettings

NAME = "sentinel-backend"  # the unit, /opt/<name> and the tarball (node_backend.NAME); the user is `sentinel`
HOME = f"/opt/{NAME}"
STATE_DIR = "/var/lib/sentinel"  # the fault switches (SENTINEL_FAULTS_FILE's default)
# The JSON log file the collector agent tails (docs/contract.md section 4). 0750
# sentinel:sentinel: the agent reads it as a member of the `sentinel` group.
LOG_DIR = "/var/log/sentinel"
NODE_PACKAGES = ["nodejs"]
# Run by Debian's node; --import loads the SDKs before the app (instrument.mjs says why).
NODE = "/usr/bin/node"


def service_spec(settings: Settings, bind: str = "") -> ServiceSpec:
    """The backend's service; `bind` is backend.http from the topology (the env file's HOST and PORT)."""
    bind = bind or f"127.0.0.1:{settings.backend.port}"
    return ServiceSpec(
        name=NAME,
        description="Sentinel backend (the lab's Node service)",
        exec_start=(NODE, "--import", f"{HOME}/current/src/instrument.mjs", f"{HOME}/current/src/server.js"),
        working_directory=f"{HOME}/current",
        env_files=(settings.backend.env_file,),
        data_dirs=(STATE_DIR, LOG_DIR),
        user="sentinel",
        ready_url=f"http://{bind}/health",
        jit=True,
    )


def artifact(artifact_base_url: str) -> Artifact:
    """The mirror's build of this checkout's lab/backend_node, with its published sha256."""
    version = node_backend.release_version()
    base = artifact_base_url.rstrip("/")
    url = f"{base}/{node_backend.tarball_path(version)}"
    return Artifact(
        name=NAME,
        version=version,
        url=url,
        sha256=published_sha256(f"{base}/{node_backend.checksums_path()}", url.rsplit("/", 1)[-1]),
        archive_dir=node_backend.archive_root(version),
        # What release_tree checks is in the tree before it moves it into place.
        binaries=("src/instrument.mjs", "src/server.js", "node_modules/.package-lock.json"),
    )


@deploy("Lab backend")
def lab_backend(backend: BackendSettings, ctx: HostContext):
    """
    Install and run the lab's Node backend as sentinel-backend.service.

    + backend: the `backend` block
    + ctx: the host context (its bind from the topology, artifact_base_url for the mirror, hardening)
    """
    settings = ctx.settings
    spec = service_spec(settings, ctx.bind("backend.http"))
    release = artifact(settings.artifact_base_url)
    version_dir = f"{HOME}/{release.version}"
    service_account(spec)
    service_dirs(spec, extra=((HOME, "root", "root", "0755"),))
    # From the host's apt sources through the lab's proxy, as the other roles' packages;
    # the package lists are refreshed at most daily, as the firewall role does.
    apt.packages(name="lab backend: Node.js from Debian", packages=NODE_PACKAGES, update=True, cache_time=24 * 3600)
    tree = release_tree(name=f"lab backend: release {release.version}", artifact=release, install_dir=version_dir)
    current = files.link(name="lab backend: current version", path=f"{HOME}/current", target=version_dir)
    run_service(spec, settings.systemd_hardening, code_changes=[tree, current], config_changes=[])
    # What the Python stand-in this service replaced left under /opt/sentinel-backend.
    for leftover in ("venv", "app"):
        files.directory(name=f"lab backend: no stand-in {leftover}", path=f"{HOME}/{leftover}", present=False)
    files.file(name="lab backend: no stand-in requirements", path=f"{HOME}/requirements.txt", present=False)
