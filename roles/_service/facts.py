"""Facts the building block reads from hosts."""

import shlex

from pyinfra.api import FactBase

MARKER = ".artifact-sha256"


class InstalledArtifactSha256(FactBase):
    """The sha256 of the archive unpacked into `install_dir`, or None if not installed."""

    def command(self, install_dir):
        return f"cat {shlex.quote(f'{install_dir}/{MARKER}')} 2>/dev/null || true"

    def process(self, output):
        value = "".join(output).strip()
        return value or None


class FileState(FactBase):
    """A regular file's sha256, owner, group and octal mode in one round trip, or None if it is missing.

    `validated_file` needs all four; pyinfra's Sha256File and File facts would be two
    commands per file on every converge.
    """

    def command(self, path):
        p = shlex.quote(path)
        return f"if [ -f {p} ]; then stat -c '%U %G %a' {p} && sha256sum {p} | cut -d' ' -f1; fi"

    def process(self, output):
        lines = [line.strip() for line in output if line.strip()]
        if len(lines) != 2:
            return None
        user, group, mode = lines[0].split()
        return {"user": user, "group": group, "mode": mode.zfill(4), "sha256": lines[1]}
