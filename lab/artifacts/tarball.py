"""Release-style tarballs and sha256sum files that are byte-for-byte reproducible.

A rebuild of the same binaries must give the same sha256, or every warm rebuild
would invalidate the checksums that hosts already verified against.
"""

import contextlib
import gzip
import hashlib
import os
import tarfile
import tempfile
from pathlib import Path

_CHUNK = 1 << 20


def pack(dest: Path, files: dict[str, Path], root: str = "", mtime: int = 0) -> str:
    """Write `files` (name in archive -> source) under directory `root` into a
    .tar.gz at `dest`; return its sha256.

    Entries are sorted, owned by 0:0, stamped with `mtime`, and modes are only
    0755 or 0644 (from the source's owner-execute bit), so nothing about the
    build machine leaks in. The gzip header carries no name and mtime 0.
    """
    dest = Path(dest)
    root = root.strip("/")
    for name in files:
        if not name or name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"bad archive member name {name!r}")

    def info(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.size, ti.mtime = kind, mode, size, mtime
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        return ti

    def write(fileobj) -> None:
        # compresslevel 6: level 9 costs several times the CPU on 100+ MB
        # binaries for a few percent; the output is fixed either way.
        with gzip.GzipFile(filename="", mode="wb", fileobj=fileobj, mtime=0, compresslevel=6) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                dirs = set()
                for name in files:
                    parts = ([root] if root else []) + name.split("/")[:-1]
                    for i in range(1, len(parts) + 1):
                        dirs.add("/".join(parts[:i]))
                members = [(d + "/", None) for d in dirs]
                members += [((f"{root}/" if root else "") + n, Path(src)) for n, src in files.items()]
                for arcname, src in sorted(members, key=lambda m: m[0]):
                    if src is None:
                        tar.addfile(info(arcname.rstrip("/"), tarfile.DIRTYPE, 0o755))
                        continue
                    st = src.stat()
                    mode = 0o755 if st.st_mode & 0o100 else 0o644
                    with open(src, "rb") as fh:
                        tar.addfile(info(arcname, tarfile.REGTYPE, mode, st.st_size), fh)

    _atomic_write(dest, write)
    return sha256_file(dest)


def write_checksums(path: Path, entries: dict[str, str]) -> None:
    """Record `entries` (file name -> sha256) in a `sha256sum`-format file.

    Lines for other files already listed there (other architectures) are kept,
    so the file can be shared the way upstream shares one per release.
    """
    path = Path(path)
    merged = read_checksums(path) if path.exists() else {}
    merged.update(entries)
    text = "".join(f"{digest}  {name}\n" for name, digest in sorted(merged.items()))
    _atomic_write(path, lambda fh: fh.write(text.encode()))


def read_checksums(path: Path) -> dict[str, str]:
    out = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        out[name.lstrip("*")] = digest
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write(dest: Path, writer) -> None:
    # The mirror may be serving while we build: readers see the old file or
    # the new one, never half of one.
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
