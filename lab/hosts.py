"""Lab hosts: systemd-nspawn containers booting the base image, one per netns.

Each host gets a fresh root in HOSTS_DIR/<name> (an overlay on the base image,
see prepare_rootfs), is booted by a background systemd-nspawn in a cgroup of
its own (pid and console log in RUN_DIR), and counts as up once sshd accepts
the lab key and systemd reports the boot finished.
"""

import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from lab import cgroups
from lab.network import netns_path
from lab.paths import BRIDGE_IP, HOSTS, HOSTS_DIR, RUN_DIR, SSH_CONFIG
from lab.shell import log, run, succeeds

BOOT_TIMEOUT = 180  # seconds; a boot normally takes a few
STOP_TIMEOUT = 30
SYSTEMD_IS_PID1 = Path("/run/systemd/system").exists()


def rootfs(name: str) -> Path:
    return HOSTS_DIR / name


def pid_file(name: str) -> Path:
    return RUN_DIR / f"host-{name}.pid"


def log_file(name: str) -> Path:
    return RUN_DIR / f"host-{name}.log"


def nspawn_argv(name: str) -> list[str]:
    # --keep-unit and --register=no: there is no systemd/machined on the machine
    # to create a scope or register with (PID 1 is not systemd), so nspawn must
    # neither ask for one nor register. The network is the prepared namespace.
    # --resolv-conf=off keeps the image's empty resolv.conf: the lab has no
    # DNS, names come from /etc/hosts and unknown names fail fast.
    # CAP_NET_ADMIN: the host firewall (nftables) is the toolkit's to manage, as on a
    # real host; the namespace is the container's own, so it reaches nothing else.
    return [
        "systemd-nspawn", "--boot", "--register=no", "--keep-unit",
        f"--network-namespace-path={netns_path(name)}",
        f"--directory={rootfs(name)}", f"--machine={name}",
        "--resolv-conf=off", "--console=read-only", "--capability=CAP_NET_ADMIN",
    ]


def running_pid(name: str) -> int | None:
    """Pid of this host's systemd-nspawn, if it is alive."""
    try:
        pid = int(pid_file(name).read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if f"--machine={name}".encode() in cmdline and b"systemd-nspawn" in cmdline[0] else None


def container_init_pid(nspawn_pid: int) -> int | None:
    """The container's PID 1 as seen from the root namespace (nspawn's child)."""
    try:
        children = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def overlay_dir(name: str) -> Path:
    return HOSTS_DIR / f"{name}.overlay"  # the host's own changes (upper) and overlayfs' workdir


def prepare_rootfs(name: str, base: Path) -> None:
    """A fresh root for the host: an overlay of its own empty upper dir on the base rootfs.

    Same result as unpacking the image per host, in milliseconds instead of
    seconds, and only each host's changes take disk space.
    """
    stop(name)  # whatever a crashed host left behind: processes, mounts, files
    remove_rootfs(name)
    root, upper, work = rootfs(name), overlay_dir(name) / "upper", overlay_dir(name) / "work"
    for directory in (root, upper, work):
        directory.mkdir(parents=True)
    run(["mount", "-t", "overlay", f"sentinel-lab-{name}", "-o",
         f"lowerdir={base},upperdir={upper},workdir={work}", str(root)])
    (root / "etc/hostname").write_text(f"{name}\n")
    (root / "etc/hosts").write_text(_etc_hosts())
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    (root / "etc/resolv.conf").write_text("# The lab has no DNS; lab names are in /etc/hosts.\n")


def _etc_hosts() -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             f"{BRIDGE_IP}\tlab-bridge"]
    lines += [f"{h.address}\t{host}" for host, h in HOSTS.items()]
    return "\n".join(lines) + "\n"


def launch_argv(name: str) -> list[str]:
    """nspawn, started in a cgroup of its own (see lab/cgroups.py)."""
    if SYSTEMD_IS_PID1:
        # Untested here: on a systemd machine a transient scope is that cgroup.
        return ["systemd-run", "--scope", "--quiet", "--collect", f"--unit=sentinel-lab-{name}",
                *nspawn_argv(name)]
    join = "; ".join(f"echo $$ > {shlex.quote(str(procs))}" for procs in cgroups.create(name))
    return ["sh", "-c", f'{join}; exec "$@"', "sh", *nspawn_argv(name)]


def start(name: str) -> None:
    """Boot the host from its prepared rootfs in the background."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    with open(log_file(name), "wb") as out:
        proc = subprocess.Popen(launch_argv(name), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    # The wrapper execs nspawn under the same pid; wait for that so the pid
    # file never names a process that running_pid() would not recognise.
    deadline = time.monotonic() + 10
    while proc.poll() is None and time.monotonic() < deadline:
        if b"systemd-nspawn" in Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")[0]:
            break
        time.sleep(0.02)
    pid_file(name).write_text(f"{proc.pid}\n")


def ssh_argv(name: str, *command: str, connect_timeout: int = 5) -> list[str]:
    return ["ssh", "-F", str(SSH_CONFIG), "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={connect_timeout}", name, *command]


def system_state(name: str, wait: bool = False, timeout: float = 10) -> str | None:
    """`systemctl is-system-running` over SSH; None if SSH does not answer."""
    command = ["systemctl", "is-system-running"] + (["--wait"] if wait else [])
    try:
        result = run(ssh_argv(name, *command, connect_timeout=2), check=False, capture=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if result.returncode == 255:  # ssh itself failed
        return None
    return result.stdout.strip() or None


def wait_ready(name: str, timeout: float = BOOT_TIMEOUT) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not running_pid(name):
            raise RuntimeError(f"{name}: systemd-nspawn exited during boot; see {log_file(name)}")
        state = system_state(name, wait=True, timeout=max(1.0, deadline - time.monotonic()))
        if state in ("running", "degraded"):
            if state == "degraded":
                failed = run(ssh_argv(name, "systemctl", "--failed", "--no-legend", "--plain"),
                             check=False, capture=True).stdout.strip()
                log(f"{name}: degraded, failed units:\n{failed}")
            return state
        time.sleep(0.5)
    raise RuntimeError(f"{name}: not ready after {timeout:.0f}s; see {log_file(name)}")


def stop(name: str) -> None:
    pid = running_pid(name)
    if pid:
        init = container_init_pid(pid)
        # SIGTERM makes nspawn ask the container's systemd for a clean poweroff.
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, STOP_TIMEOUT):
            log(f"{name}: no clean shutdown after {STOP_TIMEOUT}s, killing it")
            _pull_the_plug(pid, init)
        elif init:
            _wait_gone(init, 5)
    _clean_up(name)


def power_off(name: str) -> None:
    """Cut the host's power: every process of the container dies at once, nothing shuts down or flushes.

    What its services held in memory is gone; what they wrote to files stays, and so does
    what the machine's kernel had not yet written to disk (the page cache is the machine's,
    not the container's): a real power cut would lose that too unless it was fsynced.
    `start` and `wait_ready` boot it again from the same root.
    """
    pid = running_pid(name)
    if pid:
        _pull_the_plug(pid, container_init_pid(pid))
    _clean_up(name)


def _pull_the_plug(nspawn_pid: int, init: int | None) -> None:
    # Killing the container's PID 1 takes down its whole pid namespace.
    for victim in (init, nspawn_pid):
        if victim:
            _kill(victim)
    for victim in (nspawn_pid, init):
        if victim:
            _wait_gone(victim, 5)


def _clean_up(name: str) -> None:
    """What a host that is no longer running leaves: stray processes in its cgroup, its pid file, its cgroup."""
    if cgroups.processes(name):
        log(f"{name}: processes left in its cgroup (nspawn died?), killing them")
        cgroups.kill(name)
        deadline = time.monotonic() + 10
        while cgroups.processes(name) and time.monotonic() < deadline:
            time.sleep(0.1)
    pid_file(name).unlink(missing_ok=True)
    cgroups.remove(name)
    # nspawn leaves this behind when /run is not a tmpfs, as on this machine.
    shutil.rmtree(Path("/run/systemd/nspawn/propagate") / name, ignore_errors=True)


def remove_rootfs(name: str) -> None:
    if running_pid(name):
        raise RuntimeError(f"{name} still running; not removing its rootfs")
    if succeeds(["mountpoint", "-q", str(rootfs(name))]):
        run(["umount", str(rootfs(name))])
    # --one-file-system: never follow a mount out of the host's directories.
    run(["rm", "-rf", "--one-file-system", str(rootfs(name)), str(overlay_dir(name))])


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for PID 1 to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child: reap it
                return True
        except ChildProcessError:
            pass
        if _gone(pid):
            return True
        time.sleep(0.2)
    return False
