"""The base images lab hosts boot from: one Debian rootfs with systemd per suite
(lab/paths.py SUITES: Debian 12 bookworm, Debian 13 trixie; each host names its own).

Each is built once with mmdebstrap and cached in IMAGE_DIR as a tarball plus the same
tree unpacked once (<tarball>.rootfs), which hosts use as the read-only lower
layer of their overlay (see hosts.py); never boot or change it directly.
The file name carries the suite and a hash of the package sources and list,
this recipe (this file) and the lab's SSH public key, so a change to any of them builds a new image and an
unchanged recipe reuses the cached one.
"""

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from lab.apt_sources import sources_for
from lab.paths import BRIDGE_IP, HOSTS, IMAGE_DIR, PROXY_PORT, SUITES
from lab.shell import log, run
from lab.sshkeys import public_key

PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "openssh-server",
    "python3", "python3-venv", "cron", "curl", "ca-certificates",
    "iproute2", "procps", "less", "sudo", "tar", "gzip",
    # Small extras that deploys and checks otherwise fetch on every host:
    "iputils-ping", "netbase", "unzip", "xz-utils",
]
PROXY_URL = f"http://{BRIDGE_IP}:{PROXY_PORT}"
# Extra CAs the machine trusts (e.g. an egress proxy that re-signs TLS). The
# hosts' HTTPS goes out the same way through tinyproxy, so they need them too.
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")

# Units that only make sense on a real machine. getty/firstboot would wait for
# a console that nobody watches; wait-online would stall boot (the network is
# configured from outside); the apt timers would grab the dpkg lock mid-deploy.
MASKED_UNITS = [
    "systemd-networkd-wait-online.service",
    "systemd-firstboot.service",
    "getty@.service",
    "console-getty.service",
    "serial-getty@.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
]

# All hosts would share one set of SSH host keys if they were made at image
# build time; instead each host makes its own on first boot.
HOSTKEYS_UNIT = """\
[Unit]
Description=Generate this lab host's own SSH host keys
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=ssh.service
"""


def host_suites() -> list[str]:
    """The suites the lab's hosts boot, oldest first: one image each."""
    return [suite for suite in SUITES if any(host.suite == suite for host in HOSTS.values())]


def image_path(suite: str) -> Path:
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; the lab builds {', '.join(SUITES)}")
    recipe = {
        "suite": suite,
        # The machine's own repositories, moved to `suite` (lab/apt_sources.py).
        "sources": sources_for(suite),
        "packages": sorted(PACKAGES),
        "recipe": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        "ssh_public_key": public_key(),
        "extra_cas": {name: hashlib.sha256(pem).hexdigest() for name, pem in _extra_cas().items()},
    }
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    return IMAGE_DIR / f"debian-{suite}-{digest}.tar"


def base_rootfs(image: Path) -> Path:
    """The image unpacked once: the shared read-only lower layer of every host."""
    return image.with_suffix(".rootfs")


def ensure_image(suite: str) -> tuple[Path, bool]:
    """Return (tarball, built_now) for `suite`; its base_rootfs() exists afterwards."""
    image = image_path(suite)
    built = not image.exists()
    if built:
        IMAGE_DIR.mkdir(parents=True, exist_ok=True)
        build_image(image, suite)
        _prune_stale(suite, keep=image)
    if not base_rootfs(image).is_dir():
        _unpack(image, base_rootfs(image))
    return image, built


def build_image(image: Path, suite: str) -> None:
    log(f"building base image {image.name} with mmdebstrap (takes a minute or more)")
    with tempfile.TemporaryDirectory(dir=IMAGE_DIR, prefix="build-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(["mmdebstrap", "--variant=minbase", "--mode=root", "--quiet",
             f"--include={','.join(PACKAGES)}", suite, str(rootfs), *sources_for(suite)])
        customize(rootfs)
        partial = Path(tmp) / image.name
        run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls",
             "-C", str(rootfs), "-cf", str(partial), "."])
        shutil.rmtree(base_rootfs(image), ignore_errors=True)
        rootfs.rename(base_rootfs(image))
        partial.rename(image)  # only a complete tarball ever carries the final name


def _unpack(image: Path, target: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls",
         "-C", str(partial), "-xf", str(image)])
    partial.rename(target)


def _prune_stale(suite: str, keep: Path) -> None:
    """Drop older images of `suite`, except a base rootfs that running hosts still sit on.

    Images of other suites are other hosts' and stay."""
    mountinfo = Path("/proc/self/mountinfo").read_text()
    for stale in IMAGE_DIR.glob(f"debian-{suite}-*.tar"):
        if stale != keep:
            stale.unlink()
    for stale in IMAGE_DIR.glob(f"debian-{suite}-*.rootfs"):
        if stale != base_rootfs(keep) and f"lowerdir={stale}" not in mountinfo:
            shutil.rmtree(stale)


def customize(root: Path) -> None:
    def write(path: str, text: str, mode: int = 0o644) -> None:
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    # Hosts reach the outside world only through the proxy on the bridge.
    write("/etc/apt/apt.conf.d/80sentinel-lab-proxy",
          f'Acquire::http::Proxy "{PROXY_URL}";\nAcquire::https::Proxy "{PROXY_URL}";\n')
    write("/etc/pip.conf", f"[global]\nproxy = {PROXY_URL}\ncert = /etc/ssl/certs/ca-certificates.crt\n")
    for name, pem in _extra_cas().items():
        (root / "usr/local/share/ca-certificates" / name).write_bytes(pem)
    run(["chroot", str(root), "update-ca-certificates"], capture=True)

    (root / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
    write("/root/.ssh/authorized_keys", public_key() + "\n", 0o600)
    write("/etc/ssh/sshd_config.d/sentinel-lab.conf",
          "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n")
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    # Debian starts sshd from ssh.service; the package also left ssh.socket
    # enabled here, which would make two units own port 22.
    (root / "etc/systemd/system/sockets.target.wants/ssh.socket").unlink(missing_ok=True)
    write("/etc/systemd/system/sentinel-ssh-hostkeys.service", HOSTKEYS_UNIT)
    _symlink(root, "/etc/systemd/system/ssh.service.wants/sentinel-ssh-hostkeys.service",
             "/etc/systemd/system/sentinel-ssh-hostkeys.service")

    for unit in MASKED_UNITS:
        _symlink(root, f"/etc/systemd/system/{unit}", "/dev/null")

    # pam_env warns on every SSH login without it; C.UTF-8 needs no locales package.
    write("/etc/default/locale", "LANG=C.UTF-8\n")

    # Keep the journal small: three hosts share one disk.
    write("/etc/systemd/journald.conf.d/sentinel-lab.conf", "[Journal]\nSystemMaxUse=64M\n")

    # Identity is per host: with an empty /etc/machine-id systemd makes a new
    # one at boot and writes it back. Empty rather than missing: a missing file
    # means "first boot", and then systemd presets (enables) every unit again,
    # ssh.socket included. hosts.py writes /etc/hostname and /etc/hosts per host.
    write("/etc/machine-id", "", 0o444)
    (root / "etc/hostname").unlink(missing_ok=True)
    shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)


def _extra_cas() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(EXTRA_CA_DIR.glob("*.crt"))}


def _symlink(root: Path, link: str, target: str) -> None:
    path = root / link.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.symlink_to(target)
