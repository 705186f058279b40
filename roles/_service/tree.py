"""Release archives installed whole: programs that need their tree, not just binaries.

Grafana runs from its home directory (bin/, conf/defaults.ini, public/), and a
Grafana plugin is a directory. `release_tree` installs the archive's top
directory as is, verified like `release_archive`: download to a temporary
directory, compare the sha256, unpack, check the expected files are there, and
only then move it into place.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import StringCommand, operation

from roles._service.artifacts import Artifact
from roles._service.facts import MARKER, InstalledArtifactSha256


def tree_script(artifact: Artifact, install_dir: str) -> list[str]:
    q = shlex.quote
    inner = f"$tmp/x/{artifact.archive_dir}" if artifact.archive_dir else "$tmp/x"
    staging = f"{install_dir}.new"
    return [
        "tmp=$(mktemp -d)",
        "trap 'rm -rf \"$tmp\"' EXIT",
        f"curl -fsSL --retry 3 -o \"$tmp/{artifact.filename}\" {q(artifact.url)}",
        f"got=$(sha256sum \"$tmp/{artifact.filename}\" | cut -d' ' -f1)",
        f"if [ \"$got\" != {artifact.sha256} ]; then",
        f"  echo \"checksum mismatch for {artifact.url}: expected {artifact.sha256}, got $got; the download was deleted\" >&2",
        "  exit 1",
        "fi",
        "mkdir -p \"$tmp/x\"",
        f"tar -xzf \"$tmp/{artifact.filename}\" -C \"$tmp/x\" --no-same-owner",
        *[
            f"[ -e \"{inner}/{path}\" ] || {{ echo {q(f'{artifact.filename} has no {artifact.archive_dir}/{path}')} >&2; exit 1; }}"
            for path in artifact.binaries
        ],
        f"rm -rf {q(staging)}",
        f"mv \"{inner}\" {q(staging)}",
        f"chown -R root:root {q(staging)}",
        f"chmod -R u=rwX,go=rX {q(staging)}",
        f"echo {artifact.sha256} > {q(staging)}/{MARKER}",
        f"rm -rf {q(install_dir)} && mv {q(staging)} {q(install_dir)}",
    ]


@operation()
def release_tree(artifact: Artifact, install_dir: str):
    """
    Install a release archive's whole top directory into ``install_dir``.

    + artifact: the resolved artifact; ``binaries`` are paths that must exist in the tree
    + install_dir: e.g. ``/opt/grafana/12.4.14``

    Nothing happens when the directory already holds the archive with the expected checksum.
    """
    if host.get_fact(InstalledArtifactSha256, install_dir=install_dir) == artifact.sha256:
        return
    yield StringCommand("sh", "-c", shlex.quote("set -eu\n" + "\n".join(tree_script(artifact, install_dir))))
