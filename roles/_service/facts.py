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
