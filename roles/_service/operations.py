"""Operations of the building block: verified release archives and validated files."""

from __future__ import annotations

import hashlib
import shlex
from io import StringIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, StringCommand, operation
from pyinfra.facts.files import File, Sha256File

from roles._service.artifacts import Artifact
from roles._service.facts import MARKER, InstalledArtifactSha256


def _script(lines: list[str]) -> StringCommand:
    return StringCommand("sh", "-c", shlex.quote("set -eu\n" + "\n".join(lines)))


@operation()
def release_archive(artifact: Artifact, install_dir: str):
    """
    Install the binaries of a release archive into a directory of their own.

    + artifact: the resolved artifact (URL, expected sha256, archive layout, binaries)
    + install_dir: directory for this version, e.g. ``/opt/prometheus/3.16.0``

    The archive is downloaded to a temporary directory and its sha256 compared with
    the expected one; on a mismatch the download is deleted and the operation fails.
    Binaries land in ``install_dir`` only once verified, so a half-finished install
    never becomes visible. Nothing happens when the directory already holds the
    archive with the expected checksum.
    """
    if host.get_fact(InstalledArtifactSha256, install_dir=install_dir) == artifact.sha256:
        return
    inner = f"$tmp/x/{artifact.archive_dir}" if artifact.archive_dir else "$tmp/x"
    staging = f"{install_dir}.new"
    yield _script(
        [
            "tmp=$(mktemp -d)",
            "trap 'rm -rf \"$tmp\"' EXIT",
            f"curl -fsSL --retry 3 -o \"$tmp/{artifact.filename}\" {shlex.quote(artifact.url)}",
            f"got=$(sha256sum \"$tmp/{artifact.filename}\" | cut -d' ' -f1)",
            f"if [ \"$got\" != {artifact.sha256} ]; then",
            f"  echo \"checksum mismatch for {artifact.url}: expected {artifact.sha256}, got $got;"
            " the download was deleted\" >&2",
            "  exit 1",
            "fi",
            "mkdir -p \"$tmp/x\"",
            f"tar -xzf \"$tmp/{artifact.filename}\" -C \"$tmp/x\"",
            f"rm -rf {staging} && mkdir -p {staging}",
            *[f"install -m 0755 \"{inner}/{binary}\" {staging}/{binary}" for binary in artifact.binaries],
            f"echo {artifact.sha256} > {staging}/{MARKER}",
            f"rm -rf {install_dir} && mv {staging} {install_dir}",
        ]
    )


@operation()
def validated_file(
    dest: str,
    content: str,
    validate: str | None = None,
    user: str = "root",
    group: str = "root",
    mode: str = "0644",
):
    """
    Put a file in place only after its own checker accepts it.

    + dest: final path of the file
    + content: the desired content, rendered on the controller
    + validate: shell command checking the file; ``{path}`` is replaced by the path
      of the staged copy. A failure leaves the live file untouched and fails the operation.
    + user: owner of the file
    + group: group of the file
    + mode: octal mode, e.g. ``0640``

    The content never appears in pyinfra's output, so files holding secrets are safe
    here. Nothing happens when the live file already has this content, owner and mode.
    """
    desired = hashlib.sha256(content.encode()).hexdigest()
    current = host.get_fact(Sha256File, path=dest)
    info = host.get_fact(File, path=dest) or {}
    staged = f"{dest}.staged"
    if current != desired:
        yield FileUploadCommand(StringIO(content), staged, remote_temp_filename=host.get_temp_filename(staged))
        yield StringCommand("chown", f"{user}:{group}", staged)
        yield StringCommand("chmod", mode, staged)
        if validate:
            check = validate.replace("{path}", staged)
            yield _script(
                [
                    f"if ! out=$({check} 2>&1); then",
                    f"  rm -f {staged}",
                    f"  printf 'refused %s: the checker failed, the live file is unchanged\\n%s\\n' {dest} \"$out\" >&2",
                    "  exit 1",
                    "fi",
                ]
            )
        yield StringCommand("mv", "-f", staged, dest)
        return
    if info.get("user") != user or info.get("group") != group:
        yield StringCommand("chown", f"{user}:{group}", dest)
    if str(info.get("mode", "")).zfill(4) != mode.zfill(4):
        yield StringCommand("chmod", mode, dest)
