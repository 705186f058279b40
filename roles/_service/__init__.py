"""The building block: a release binary run as a hardened systemd service.

Every component role describes itself as a `ServiceSpec`; `release_service`
turns that into one idempotent sequence: fetch and verify the archive, unpack it
into a directory per version, create the user and directories, validate each
config with the new binary before swapping it in, template the unit, then reload
on a config change and restart only on a binary or unit change.
"""

from __future__ import annotations

import re

from dataclasses import dataclass, replace
from typing import Literal

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Arch
from pyinfra.operations import apt, files, server, systemd

from roles._service import quoting
from roles._service.artifacts import resolve
from roles._service.operations import directories, release_archive, system_account, validated_file
from roles._service.render import render

_DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
_ARCH_OF: dict[str, str] = {}  # host name -> Debian arch: read once per host and run, not once per service


def debian_arch() -> str:
    """This host's Debian architecture (amd64, arm64), from one read of `uname -m` per run."""
    if host.name not in _ARCH_OF:
        _ARCH_OF[host.name] = _DEBIAN_ARCH.get(host.get_fact(Arch), "amd64")
    return _ARCH_OF[host.name]


@dataclass(frozen=True)
class ConfigFile:
    """A config file validated on the host before it replaces the live one.

    `validate` is a shell command written in code; `{bin}` (the new version's
    directory) and `{path}` (the staged file) are substituted as quoted shell
    words, so write them bare, never inside quotes.

    `followed`: the service watches this file and takes a new content by itself (the collector's
    bearer-token files), so a change neither reloads nor restarts it.
    """

    dest: str
    content: str
    validate: str | None = None
    mode: str = "0640"
    followed: bool = False


@dataclass(frozen=True)
class ServiceSpec:
    """What a component needs from the building block.

    `name` is the key in files/versions.yml and also names the unit, the system
    user, /etc/<name> and /opt/<name>. `exec_start` is a list of arguments; `{bin}`
    stands for /opt/<name>/current.

    `companions`: more services run from the same release (VictoriaLogs' access tier beside its
    storage node): each has its own unit, /etc/<name>, configs and data dirs, its `{bin}` is this
    release's, and a new release restarts it too. Set `release` on none of them: the building block does.
    """

    name: str
    description: str
    exec_start: tuple[str, ...]
    configs: tuple[ConfigFile, ...] = ()
    config_dirs: tuple[str, ...] = ()  # extra directories under /etc/<name>, e.g. rules
    data_dirs: tuple[str, ...] = ()
    env_files: tuple[str, ...] = ()
    reload: Literal["sighup", "restart"] = "restart"
    ready_url: str | None = None
    # curl's TLS options for the readiness check of a TLS listener (roles/_tls.py: the service's own identity).
    ready_curl_args: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    netlink: bool = False
    # System calls allowed beyond @system-service (e.g. VictoriaLogs's mincore, which it cannot do without).
    extra_syscalls: tuple[str, ...] = ()
    user: str | None = None  # defaults to `name`
    working_directory: str | None = None
    # A JIT compiler (Node's V8) maps memory writable and executable: MemoryDenyWriteExecute
    # would kill it at start. Every other hardening directive still applies.
    jit: bool = False
    companions: tuple["ServiceSpec", ...] = ()
    # The release this service runs from, when it is another service's companion (its `name`).
    release: str | None = None

    @property
    def account(self) -> str:
        return self.user or self.name

    @property
    def release_dir(self) -> str:
        """/opt/<release>/current: what `{bin}` stands for."""
        return f"/opt/{self.release or self.name}/current"


def _syscall(name: str, where: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name):
        raise quoting.QuotingError(f"{where} extra_syscalls: {name!r} is not a system call name")
    return name


def unit_file(spec: ServiceSpec, hardening: bool = True) -> str:
    """The systemd unit for `spec`; `{bin}` in its arguments becomes its release's /opt/<name>/current.

    Every value goes through systemd's quoting (roles/_service/quoting.py): the
    template only places words that are already escaped, and a value systemd
    cannot carry (a newline, a relative executable) raises `QuotingError`.
    """
    where = f"{spec.name}.service"
    exec_start = [arg.replace("{bin}", spec.release_dir) for arg in spec.exec_start]
    return render(
        "_service/service.unit.j2",
        description=quoting.systemd_text(spec.description, f"{where} Description"),
        user=quoting.systemd_account(spec.account, f"{where} User"),
        env_files=[quoting.systemd_path(path, f"{where} EnvironmentFile", globbed=True) for path in spec.env_files],
        exec_start=quoting.systemd_exec(exec_start, f"{where} ExecStart"),
        working_directory=(
            quoting.systemd_path(spec.working_directory, f"{where} WorkingDirectory") if spec.working_directory else None
        ),
        reload=spec.reload,
        hardening=hardening,
        netlink=spec.netlink,
        jit=spec.jit,
        extra_syscalls=[_syscall(name, where) for name in spec.extra_syscalls],
        capabilities=[quoting.systemd_capability(cap, f"{where} capabilities") for cap in spec.capabilities],
        read_write_paths=[
            quoting.systemd_word(path, f"{where} ReadWritePaths", exec_line=False) for path in _absolute(spec.data_dirs, where)
        ],
    )


def _absolute(paths: tuple[str, ...], where: str) -> tuple[str, ...]:
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/"):
            raise quoting.QuotingError(f"{where} ReadWritePaths: not an absolute path; write it from the root")
    return paths


def ready_check(url: str, curl_args: tuple[str, ...] = ()) -> str:
    """Shell script: wait up to 90 s for `url` to answer; the URL and each curl option are one quoted word."""
    quoting.refuse_control(url, "ready_url")
    q = quoting.sh_quote(url)
    options = "".join(f"{quoting.sh_quote(quoting.refuse_control(arg, 'ready_curl_args'))} " for arg in curl_args)
    return (
        f"for i in $(seq 90); do curl -fsS -o /dev/null {options}"
        f"{q} && exit 0; sleep 1; done; echo not ready after 90s: {q} >&2; exit 1"
    )


def service_account(spec: ServiceSpec) -> None:
    """A system user and group for the service, without a login shell (one read of the host)."""
    user = spec.account
    system_account(
        name=f"{spec.name}: system user and group", user=user, group=user,
        home=spec.data_dirs[0] if spec.data_dirs else "/nonexistent",
    )


def service_dirs(spec: ServiceSpec, extra: tuple[tuple[str, str, str, str], ...] = ()) -> None:
    """/etc/<name> and its config dirs readable by the service; data dirs owned by it; in one operation.

    + extra: more (path, user, group, mode) to hold in the same read, listed first (e.g. /opt/<name>)
    """
    user = spec.account
    specs = [*extra, (f"/etc/{spec.name}", "root", user, "0750")]
    specs += [(config_dir, "root", user, "0750") for config_dir in spec.config_dirs]
    specs += [(data_dir, user, user, "0750") for data_dir in spec.data_dirs]
    directories(name=f"{spec.name}: directories", specs=tuple(specs))


def run_service(spec: ServiceSpec, hardening: bool, code_changes: list, config_changes: list) -> None:
    """
    Template the unit, keep the service running and enabled, and apply changes.

    + spec: the service
    + hardening: apply the systemd sandboxing directives
    + code_changes: operations whose change needs a restart (binary, code)
    + config_changes: operations whose change needs a reload (or a restart without one)
    """
    name = spec.name
    unit = validated_file(
        name=f"{name}: systemd unit",
        dest=f"/etc/systemd/system/{name}.service",
        content=unit_file(spec, hardening),
        mode="0644",
    )
    systemd.daemon_reload(name=f"{name}: daemon-reload", _if=unit.did_change)
    started = systemd.service(name=f"{name}: running and enabled", service=f"{name}.service", running=True, enabled=True)

    def needs_restart() -> bool:
        return not started.did_change() and any(op.did_change() for op in [*code_changes, unit])

    def needs_reload() -> bool:
        return not started.did_change() and not needs_restart() and any(op.did_change() for op in config_changes)

    # A restart the deploy asks for is not a crash: flush the unit's start counter first, so that
    # deliberate restarts (a CA rollover restarts most services once a converge, three converges in
    # a few minutes) never add up to StartLimitBurst, which stays the crash-loop guard alone.
    server.shell(
        name=f"{name}: start counter cleared for a deliberate restart",
        commands=[f"systemctl reset-failed -- {quoting.sh_quote(name + '.service')}"],
        _if=lambda: needs_restart() or (spec.reload != "sighup" and needs_reload()),
    )
    restarted = systemd.service(
        name=f"{name}: restart for new code or unit",
        service=f"{name}.service",
        restarted=True,
        _if=needs_restart,
    )
    reloaded = systemd.service(
        name=f"{name}: {'reload' if spec.reload == 'sighup' else 'restart'} for a new config",
        service=f"{name}.service",
        reloaded=spec.reload == "sighup",
        restarted=spec.reload != "sighup",
        _if=needs_reload,
    )
    if spec.ready_url:
        server.shell(
            name=f"{name}: wait until ready",
            commands=[ready_check(spec.ready_url, spec.ready_curl_args)],
            _if=lambda: any(op.did_change() for op in (started, restarted, reloaded)),
        )


@deploy("Release service")
def release_service(spec: ServiceSpec, artifact_base_url: str, hardening: bool = True):
    """
    Install and run a release binary as a systemd service.

    + spec: the component's `ServiceSpec`
    + artifact_base_url: where release archives are downloaded from (upstream or the lab mirror)
    + hardening: apply the systemd sandboxing directives
    """
    name = spec.name
    artifact = resolve(name, artifact_base_url, debian_arch())
    version_dir = f"/opt/{name}/{artifact.version}"

    service_account(spec)
    # /opt/<name> and every directory of the service in one read of the host.
    service_dirs(spec, extra=((f"/opt/{name}", "root", "root", "0755"),))
    if artifact.is_zip:
        apt.packages(name=f"{name}: unzip for the .zip release archive", packages=["unzip"])
    archive = release_archive(name=f"{name}: release {artifact.version}", artifact=artifact, install_dir=version_dir)
    current = files.link(name=f"{name}: current version", path=f"/opt/{name}/current", target=version_dir)
    code_changes = [archive, current]
    _configured_service(spec, version_dir, hardening, code_changes)
    for companion in spec.companions:
        companion = replace(companion, release=name)
        if companion.account != spec.account:
            service_account(companion)
        service_dirs(companion)
        _configured_service(companion, version_dir, hardening, code_changes)


def _configured_service(spec: ServiceSpec, version_dir: str, hardening: bool, code_changes: list) -> None:
    """`spec`'s configs, each checked with the new release (`version_dir`) before the swap, then its unit."""
    configs = [
        (config, validated_file(
            name=f"{spec.name}: config {config.dest}",
            dest=config.dest,
            content=config.content,
            validate=config.validate.replace("{bin}", quoting.sh_quote(version_dir)) if config.validate else None,
            user="root",
            group=spec.account,
            mode=config.mode,
        ))
        for config in spec.configs
    ]
    run_service(spec, hardening, code_changes=code_changes, config_changes=[op for config, op in configs if not config.followed])
