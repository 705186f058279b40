"""The lab's stand-in for the Sentinel backend, on the `app` hosts.

It emits what the real backend emits (HTTP endpoints, Prometheus metrics, JSON
logs, OTLP traces, Sentry events) and reads the same env file, so the stack is
exercised by real signals. Its Python dependencies come from the wheelhouse on
the artifact mirror, never from the internet.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pyinfra.api import deploy
from pyinfra.operations import apt, files

from roles._service import ServiceSpec, quoting, run_service, service_account, service_dirs
from roles._service.operations import validated_file

if TYPE_CHECKING:  # the role gets its settings as an argument and imports no aggregate
    from roles._context import HostContext
    from roles._settings import Settings
    from roles.backend.settings import BackendSettings

SOURCE = Path(__file__).resolve().parents[2] / "lab" / "standin"
HOME = "/opt/sentinel-backend"
STATE_DIR = "/var/lib/sentinel"
# The JSON log file the collector agent tails (docs/contract.md section 4). 0750
# sentinel:sentinel: the agent reads it as a member of the `sentinel` group.
LOG_DIR = "/var/log/sentinel"
# The lab's Node backend (issue 21) runs on Debian's own Node.js: 20.19 on Debian 13,
# what @sentry/node 11 needs (>= 20.19); Debian 12's is 18, too old for it, which is
# why the lab's app host runs Debian 13 (lab/paths.py HOSTS).
NODE_PACKAGES = ["nodejs"]


def service_spec(settings: Settings, bind: str = "") -> ServiceSpec:
    """The stand-in's service; `bind` is backend.http from the topology (the env file's HOST and PORT)."""
    bind = bind or f"127.0.0.1:{settings.backend.port}"
    return ServiceSpec(
        name="sentinel-backend",
        description="Sentinel backend (lab stand-in)",
        exec_start=(f"{HOME}/venv/bin/python", "-m", "sentinel_standin"),
        working_directory=f"{HOME}/app",
        env_files=(settings.backend.env_file,),
        data_dirs=(STATE_DIR, LOG_DIR),
        user="sentinel",
        ready_url=f"http://{bind}/health",
    )


def venv_build_command(find_links: str, trusted_host: str) -> str:
    """Shell: build a fresh virtualenv from the wheelhouse, then swap it in.

    `{path}` is left for `validated_file` (the staged requirements file, quoted
    there); every other value is one quoted shell word.
    """
    q = quoting.sh_quote
    quoting.refuse_control(find_links, "artifact_base_url")
    venv, new = q(f"{HOME}/venv"), q(f"{HOME}/venv.new")
    return (
        f"rm -rf {new} && python3 -m venv {new} && "
        f"PIP_CONFIG_FILE=/dev/null {q(f'{HOME}/venv.new/bin/pip')} install --quiet --no-index "
        f"--find-links {q(find_links)} --trusted-host {q(trusted_host)} -r {{path}} && "
        f"rm -rf {venv} && mv {new} {venv}"
    )


@deploy("Backend stand-in")
def backend_standin(backend: BackendSettings, ctx: HostContext):
    """
    Install and run the stand-in backend as sentinel-backend.service.

    + backend: the `backend` block
    + ctx: the host context (its bind from the topology, artifact_base_url for the wheelhouse, hardening)
    """
    settings = ctx.settings
    spec = service_spec(settings, ctx.bind("backend.http"))
    service_account(spec)
    service_dirs(spec)
    files.directory(name="stand-in: home", path=HOME, user="root", group="root", mode="0755")
    # From the host's apt sources through the lab's proxy, as the other roles' packages;
    # the package lists are refreshed at most daily, as the firewall role does.
    apt.packages(name="stand-in: Node.js from Debian", packages=NODE_PACKAGES, update=True,
                 cache_time=24 * 3600)
    # The requirements file lands only once a fresh virtualenv has installed it,
    # so a failed install is retried on the next converge.
    # Only the mirror is used: no index, no pip.conf (with its internet proxy).
    mirror_host = urlsplit(settings.artifact_base_url).hostname or ""
    venv_build = venv_build_command(f"{settings.artifact_base_url}/wheels/", mirror_host)
    requirements = validated_file(
        name="stand-in: virtualenv from the mirror's wheelhouse",
        dest=f"{HOME}/requirements.txt",
        content=(SOURCE / "requirements.txt").read_text(),
        validate=venv_build,
        mode="0644",
    )
    code = files.sync(
        name="stand-in: code",
        src=str(SOURCE / "sentinel_standin"),
        dest=f"{HOME}/app/sentinel_standin",
        user="root",
        group="root",
        mode="0644",
        dir_mode="0755",
        delete=True,
        exclude=["*.pyc", "__pycache__"],
        exclude_dir=["__pycache__"],
    )
    run_service(spec, settings.systemd_hardening, code_changes=[requirements, code], config_changes=[])
