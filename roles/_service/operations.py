"""Operations of the building block: verified release archives and validated files."""

from __future__ import annotations

import hashlib
import re
import shlex
from io import StringIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, OperationError, QuoteString, StringCommand, operation

from roles._service.artifacts import Artifact
from roles._service.facts import MARKER, FileState, InstalledArtifactSha256, PathStates, SystemAccount, path_states
from roles._service.quoting import QuotingError, refuse_control, sh_quote

_SHA256 = re.compile(r"[0-9a-f]{64}")


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
    yield _script(install_script(artifact, install_dir))


def install_script(artifact: Artifact, install_dir: str) -> list[str]:
    """The lines of the root script behind `release_archive`.

    Every value from files/versions.yml or the settings (URL, file name,
    archive_dir, binaries, install_dir) is one quoted shell word; the sha256 is
    checked to be hex first, since it is compared inside the script. The
    sha256 is checked before anything is unpacked; a .zip (Loki) is unpacked
    with unzip, anything else with tar -xz.
    """
    q = sh_quote
    for binary in artifact.binaries:
        if "/" in binary or binary in ("", ".", ".."):
            raise QuotingError(f"{artifact.name}: binary {binary!r} is not a file name; list names of files in archive_dir")
    inner, lines = fetch_script(artifact, install_dir)
    staging = q(f"{install_dir}.new")
    return [
        *lines,
        f"rm -rf {staging} && mkdir -p {staging}",
        *[f"install -m 0755 {inner}/{q(artifact.archive_name(binary))} {staging}/{q(binary)}" for binary in artifact.binaries],
        f"echo {artifact.sha256} > {staging}/{MARKER}",
        f"rm -rf {q(install_dir)} && mv {staging} {q(install_dir)}",
    ]


def fetch_script(artifact: Artifact, install_dir: str) -> tuple[str, list[str]]:
    """(the unpacked archive_dir as a shell word, the lines that download, verify and unpack the archive).

    Shared by `install_script` (binaries) and roles/_service/tree.py (whole trees).
    Every value is refused if it holds a control character and quoted as one word.
    """
    q = sh_quote
    if not _SHA256.fullmatch(artifact.sha256):
        raise QuotingError(f"{artifact.name}: the expected sha256 is not 64 hex digits")
    sources = [artifact.archive_name(binary) for binary in artifact.binaries]
    for value in (artifact.url, artifact.archive_dir, install_dir, *artifact.binaries, *sources):
        refuse_control(value, f"{artifact.name} artifact")
    for source in sources:
        if source.startswith("/") or ".." in source.split("/"):
            raise QuotingError(f"{artifact.name}: archive name {source!r} escapes the archive")
    download = f'"$tmp"/{q(artifact.filename)}'
    inner = f'"$tmp"/x/{q(artifact.archive_dir)}' if artifact.archive_dir else '"$tmp"/x'
    unpack = f'unzip -q {download} -d "$tmp"/x' if artifact.is_zip else f'tar -xzf {download} -C "$tmp"/x'
    return inner, [
        "tmp=$(mktemp -d)",
        "trap 'rm -rf \"$tmp\"' EXIT",
        f"curl -fsSL --retry 3 -o {download} {q(artifact.url)}",
        f"got=$(sha256sum {download} | cut -d' ' -f1)",
        f"if [ \"$got\" != {artifact.sha256} ]; then",
        f"  echo checksum mismatch for {q(artifact.url)}: expected {artifact.sha256}, got \"$got\""
        "'; the download was deleted' >&2",
        "  exit 1",
        "fi",
        'mkdir -p "$tmp"/x',
        # Unpacked only after the checksum matched. Loki ships a .zip.
        unpack,
    ]


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
    info = host.get_fact(FileState, path=dest) or {}
    current = info.get("sha256")
    staged = f"{dest}.staged"
    refuse_control(dest, "validated_file dest")
    if current != desired:
        yield FileUploadCommand(StringIO(content), staged, remote_temp_filename=host.get_temp_filename(staged))
        yield StringCommand("chown", QuoteString(f"{user}:{group}"), QuoteString(staged))
        yield StringCommand("chmod", QuoteString(mode), QuoteString(staged))
        if validate:
            yield _script(validate_script(validate, staged, dest))
        yield StringCommand("mv", "-f", QuoteString(staged), QuoteString(dest))
        return
    if info.get("user") != user or info.get("group") != group:
        yield StringCommand("chown", QuoteString(f"{user}:{group}"), QuoteString(dest))
    if str(info.get("mode", "")).zfill(4) != mode.zfill(4):
        yield StringCommand("chmod", QuoteString(mode), QuoteString(dest))


def validate_script(validate: str, staged: str, dest: str) -> list[str]:
    """Lines of the script that runs the checker on the staged file and removes it on refusal.

    `{path}` in `validate` becomes the staged path as one quoted shell word; the
    rest of `validate` is the role's own command, written in code.
    """
    check = validate.replace("{path}", sh_quote(staged))
    return [
        f"if ! out=$({check} 2>&1); then",
        f"  rm -f {sh_quote(staged)}",
        f"  printf 'refused %s: the checker failed, the live file is unchanged\\n%s\\n' {sh_quote(dest)} \"$out\" >&2",
        "  exit 1",
        "fi",
    ]


@operation()
def directories(specs: tuple[tuple[str, str, str, str], ...]):
    """
    Several directories with their owner, group and mode, read in one round trip.

    + specs: (path, user, group, octal mode) of each directory, parents first

    A missing directory is created; a wrong owner or mode is corrected; a path that
    exists but is not a directory fails the operation (it is never replaced).
    """
    paths = tuple(path for path, *_ in specs)
    for path in paths:
        refuse_control(path, "directory path")
    states = path_states(host.get_fact(PathStates, paths=paths), paths)
    for path, user, group, mode in specs:
        state = states.get(path)
        if state is None:
            yield StringCommand("mkdir", "-p", QuoteString(path))
            yield StringCommand("chown", QuoteString(f"{user}:{group}"), QuoteString(path))
            yield StringCommand("chmod", QuoteString(mode), QuoteString(path))
            continue
        if state["type"] != "directory":
            raise OperationError(f"{path} exists and is a {state['type']}, not a directory; the deploy does not replace it")
        if (state["user"], state["group"]) != (user, group):
            yield StringCommand("chown", QuoteString(f"{user}:{group}"), QuoteString(path))
        if state["mode"] != mode.zfill(4):
            yield StringCommand("chmod", QuoteString(mode), QuoteString(path))


@operation()
def system_account(user: str, group: str, home: str, shell: str = "/usr/sbin/nologin"):
    """
    A system group and a system user in it, without a login shell or a created home, in one read.

    + user: the user's name
    + group: its primary group (created as a system group)
    + home: its home directory (not created here)
    + shell: its shell
    """
    for value in (user, group, home, shell):
        refuse_control(value, "system account")
    state = host.get_fact(SystemAccount, user=user, group=group)
    if state["gid"] is None:
        yield StringCommand("groupadd", "--system", QuoteString(group))
    current = state["user"]
    if current is None:
        yield StringCommand(
            "useradd", "--system", "--gid", QuoteString(group), "--home-dir", QuoteString(home), "--no-create-home",
            "--shell", QuoteString(shell), QuoteString(user),
        )
        return
    if state["gid"] is not None and current["gid"] != state["gid"]:
        yield StringCommand("usermod", "--gid", QuoteString(group), QuoteString(user))
    if current["home"] != home:
        yield StringCommand("usermod", "--home", QuoteString(home), QuoteString(user))
    if current["shell"] != shell:
        yield StringCommand("usermod", "--shell", QuoteString(shell), QuoteString(user))
