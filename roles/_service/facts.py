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


class PathStates(FactBase):
    """Type, owner, group and octal mode of several paths in one round trip: {path: dict or None}.

    The building block's directories are read together instead of one `files.Directory`
    fact each: a no-op converge makes one SSH round trip here, not one per directory.
    """

    def command(self, paths):
        lines = [f"printf '%s ' {i}; stat -c '%F|%U|%G|%a' {shlex.quote(p)} 2>/dev/null || echo missing" for i, p in enumerate(paths)]
        return "; ".join(lines)

    def process(self, output):
        # Indexes, not paths, key the lines: a path never has to be parsed back.
        return [line.split(" ", 1) for line in output if line.strip()]


def path_states(rows, paths) -> dict:
    """PathStates' rows as {path: {"type", "user", "group", "mode"} or None}."""
    found = {}
    for index, state in rows:
        path = paths[int(index)]
        if state.strip() == "missing":
            found[path] = None
            continue
        kind, user, group, mode = state.strip().split("|")
        found[path] = {"type": kind, "user": user, "group": group, "mode": mode.zfill(4)}
    return found


class SystemAccount(FactBase):
    """A system user and its group as one read: {"group": gid or None, "user": passwd fields or None}."""

    def command(self, user, group):
        return f"getent group {shlex.quote(group)} || true; echo --; getent passwd {shlex.quote(user)} || true"

    def process(self, output):
        text = "\n".join(output)
        group_part, _, user_part = text.partition("--")
        group_line = group_part.strip().splitlines()[0] if group_part.strip() else ""
        user_line = user_part.strip().splitlines()[0] if user_part.strip() else ""
        user = None
        if user_line:
            name, _, uid, gid, _, home, shell = user_line.split(":", 6)
            user = {"uid": uid, "gid": gid, "home": home, "shell": shell}
        return {"gid": group_line.split(":")[2] if group_line else None, "user": user}
