"""python -m lab up|down|status|ssh HOST [command...]

up      build/reuse the base images (one per Debian suite the hosts run), create the network, start the local
        daemons (proxy, artifact mirror, ...) and boot the hosts. Idempotent:
        running hosts and daemons are left alone.
down    stop everything and remove hosts, namespaces, veths and the bridge.
status  hosts and daemons at a glance.
ssh     ssh into a lab host as root with the lab key.
"""

import argparse
import importlib.util
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from lab import cgroups, daemons, hosts, inventory, network
from lab.host_packages import ensure_host_packages
from lab.image import base_rootfs, ensure_image, host_suites
from lab.paths import HOSTS, HOSTS_DIR, INTRUDER, LAB_INVENTORY, MIRROR_DIR, MIRROR_URL, RUN_DIR, SSH_CONFIG
from lab.shell import log, run, timed
from lab.secrets import ensure_secrets
from lab.sshkeys import ensure_key


def up() -> None:
    with timed("up total"):
        with timed("host packages"):
            ensure_host_packages()
        ensure_key()
        ensure_secrets()
        images = {}
        for suite in host_suites():
            with timed(f"image {suite}") as phase:
                images[suite], built = ensure_image(suite)
                phase["phase"] = f"image {suite} ({'cold build' if built else 'warm, cached'})"
        with timed("network"):
            network.ensure_bridge()
            for name in (*HOSTS, INTRUDER):
                network.ensure_host_network(name)
        with timed("artifacts"):
            build_artifacts()  # before the mirror starts serving them
        with timed("daemons"):
            daemons.start_all()
        inventory.write_all()
        boot_hosts(images)
    print_status()
    print_where_to_look()


def build_artifacts() -> None:
    if importlib.util.find_spec("lab.artifacts") is None:
        log(f"lab.artifacts is missing: no artifacts built; the mirror serves what is already in {MIRROR_DIR}")
        return
    import lab.artifacts

    lab.artifacts.build_all()


def boot_hosts(images: dict) -> None:
    """Boot every host that is not running yet, each on a fresh root from its suite's image."""
    to_boot = [name for name in HOSTS if not hosts.running_pid(name)]
    for name in HOSTS:
        if name not in to_boot:
            log(f"{name}: already running, left as it is")
    # Hosts are independent, so preparing and booting them run concurrently.
    with ThreadPoolExecutor(len(HOSTS)) as pool:
        with timed("hosts rootfs"):
            list(pool.map(lambda name: hosts.prepare_rootfs(name, base_rootfs(images[HOSTS[name].suite])), to_boot))
        with timed("hosts boot"):
            list(pool.map(hosts.start, to_boot))
            states = dict(zip(HOSTS, pool.map(hosts.wait_ready, HOSTS)))
    for name, state in states.items():
        log(f"{name}: systemd {state}, ssh ok")


def down() -> None:
    with timed("down"):
        with ThreadPoolExecutor(len(HOSTS)) as pool:
            list(pool.map(stop_and_remove_host, HOSTS))
        daemons.stop_all()
        for name in (*HOSTS, INTRUDER):
            network.remove_host_network(name)
        network.remove_bridge()
        inventory.remove_all()  # tests take a missing inventory/lab.py to mean "lab is down"
    problems = leftovers()
    if problems:
        log("down left these behind:\n  " + "\n  ".join(problems))
        sys.exit(1)
    log("down: no lab processes, namespaces, links or mounts left")


def stop_and_remove_host(name: str) -> None:
    hosts.stop(name)
    hosts.remove_rootfs(name)


def leftovers() -> list[str]:
    found = network.leftovers()
    found += [f"cgroup {path}" for path in cgroups.leftovers()]
    found += [f"host {n} (pid {hosts.running_pid(n)})" for n in HOSTS if hosts.running_pid(n)]
    found += [f"rootfs {path}" for n in HOSTS for path in (hosts.rootfs(n), hosts.overlay_dir(n)) if path.exists()]
    found += [f"daemon {d.name} (pid {daemons.running_pid(d)})" for d in daemons.DAEMONS if daemons.running_pid(d)]
    mounts = run(["findmnt", "-rn", "-o", "TARGET"], capture=True).stdout.split()
    found += [f"mount {m}" for m in mounts if m.startswith((str(HOSTS_DIR), "/run/netns"))]
    ps = run(["ps", "-eo", "pid=,args="], capture=True).stdout.splitlines()
    found += [f"process {p.strip()}" for p in ps if "systemd-nspawn" in p and f"--directory={HOSTS_DIR}" in p]
    return found


def print_status() -> None:
    print(f"{'HOST':<6} {'ADDRESS':<13} {'GROUPS':<12} {'SUITE':<9} {'STATE':<10} SSH")
    for name, (address, groups, suite) in HOSTS.items():
        if hosts.running_pid(name):
            state = hosts.system_state(name)
            ssh_ok = state is not None
            state = state or "booting?"
        else:
            state, ssh_ok = ("orphaned" if cgroups.processes(name) else "stopped"), False
        print(f"{name:<6} {address:<13} {','.join(groups):<12} {suite:<9} {state:<10} {'ok' if ssh_ok else '-'}")
    print(f"\n{'DAEMON':<12} {'LISTEN':<18} {'PID':<8} STATE")
    for name, listen, pid, state in daemons.status():
        print(f"{name:<12} {listen:<18} {pid:<8} {state}")


def print_where_to_look() -> None:
    print(f"""
inventory:  {LAB_INVENTORY}   (pyinfra inventory/lab.py deploy.py)
ssh:        python -m lab ssh mon1   or   ssh -F {SSH_CONFIG} mon1
testinfra:  pytest --ssh-config={SSH_CONFIG} --hosts={",".join(f"ssh://{name}" for name in HOSTS)}
mirror:     {MIRROR_URL}/  ->  {MIRROR_DIR}
logs:       {RUN_DIR}/host-<name>.log (consoles), {RUN_DIR}/<daemon>.log
inside:     journalctl / systemctl on each host; stop with `python -m lab down`""")


def ssh(name: str, command: list[str]) -> None:
    if name not in HOSTS:
        sys.exit(f"unknown host {name!r}; lab hosts: {', '.join(HOSTS)}")
    if not SSH_CONFIG.exists():
        sys.exit(f"{SSH_CONFIG} is missing: the lab is down (python -m lab up)")
    argv = hosts.ssh_argv(name, *command)
    os.execvp(argv[0], argv)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up")
    sub.add_parser("down")
    sub.add_parser("status")
    ssh_parser = sub.add_parser("ssh")
    ssh_parser.add_argument("host")
    ssh_parser.add_argument("remote_command", nargs=argparse.REMAINDER)
    args = parser.parse_args()

    if args.command in ("up", "down") and os.geteuid() != 0:
        sys.exit(f"`python -m lab {args.command}` needs root (namespaces, bridge, nspawn)")
    try:
        if args.command == "up":
            up()
        elif args.command == "down":
            down()
        elif args.command == "status":
            print_status()
        else:
            ssh(args.host, args.remote_command)
    except (RuntimeError, subprocess.CalledProcessError) as error:
        sys.exit(f"[lab] {args.command} failed: {error}")


if __name__ == "__main__":
    main()
