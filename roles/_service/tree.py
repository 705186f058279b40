"""Release archives installed whole: programs that need their tree, not just binaries.

Grafana runs from its home directory (bin/grafana, conf/defaults.ini, public/),
and a Grafana plugin is a directory. `release_tree` installs the archive's
`archive_dir` as is, fetched and verified exactly like `release_archive`
(operations.fetch_script: download to a temporary directory, compare the sha256,
only then unpack), checks that each binary (at its `archive_names` path) is in
the tree, and only then moves it into place.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation

from roles._service.artifacts import Artifact
from roles._service.facts import MARKER, InstalledArtifactSha256
from roles._service.operations import _script, fetch_script
from roles._service.quoting import sh_quote


def tree_script(artifact: Artifact, install_dir: str) -> list[str]:
    """The lines of the root script behind `release_tree`; every value is one quoted shell word."""
    q = sh_quote
    inner, lines = fetch_script(artifact, install_dir)
    staging = q(f"{install_dir}.new")
    top = artifact.archive_dir or "."
    return [
        *lines,
        *[
            f"[ -e {inner}/{q(path)} ] || {{ echo {q(f'{artifact.filename} has no {top}/{path}')} >&2; exit 1; }}"
            for path in (artifact.archive_name(binary) for binary in artifact.binaries)
        ],
        f"rm -rf {staging}",
        f"mv {inner} {staging}",
        f"chown -R root:root {staging}",
        f"chmod -R u=rwX,go=rX {staging}",
        f"echo {artifact.sha256} > {staging}/{MARKER}",
        f"rm -rf {q(install_dir)} && mv {staging} {q(install_dir)}",
    ]


@operation()
def release_tree(artifact: Artifact, install_dir: str):
    """
    Install a release archive's whole `archive_dir` into ``install_dir``.

    + artifact: the resolved artifact; each binary (at its ``archive_names`` path) must exist in the tree
    + install_dir: e.g. ``/opt/grafana/12.4.14``

    Nothing happens when the directory already holds the archive with the expected checksum.
    """
    if host.get_fact(InstalledArtifactSha256, install_dir=install_dir) == artifact.sha256:
        return
    yield _script(tree_script(artifact, install_dir))
