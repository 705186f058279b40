"""Pinned release artifacts: versions from files/versions.yml, checksums verified.

The controller resolves each artifact to a URL and an expected sha256 before any
operation is queued: a pinned `sha256` wins; otherwise the checksums file that
upstream (or the lab mirror) publishes next to the artifact is read.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import requests

from roles._versions import VERSIONS_FILE, load_versions_file

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Artifact:
    name: str
    version: str
    url: str
    sha256: str
    archive_dir: str  # directory inside the archive holding the binaries ("" = top level)
    binaries: tuple[str, ...]
    # Name inside the archive of each binary that upstream names differently
    # (Loki's zip holds loki-linux-amd64, installed as loki).
    archive_names: tuple[tuple[str, str], ...] = ()

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def is_zip(self) -> bool:
        return self.filename.endswith(".zip")

    def archive_name(self, binary: str) -> str:
        return dict(self.archive_names).get(binary, binary)


def load_versions(path: Path = VERSIONS_FILE, environment: str | None = None) -> dict[str, dict]:
    """The checked entries of the versions file (roles/_versions.py), as plain dicts."""
    return {name: release.model_dump(exclude_unset=True) for name, release in load_versions_file(path, environment).items()}


load_versions.cache_clear = load_versions_file.cache_clear  # type: ignore[attr-defined]


class ChecksumError(RuntimeError):
    pass


@functools.cache
def _published_sums(url: str) -> dict[str, str]:
    try:
        response = requests.get(url, timeout=30)
        response.raise_for_status()
    except requests.RequestException as err:
        raise ChecksumError(f"cannot read the published checksums {url}: {err}") from None
    return parse_sums(response.text)


def published_sha256(sums_url: str, filename: str) -> str:
    """The sha256 of `filename` in the checksums file at `sums_url`; ChecksumError if it is not listed."""
    sha256 = _published_sums(sums_url).get(filename)
    if not sha256:
        raise ChecksumError(f"{sums_url} lists no checksum for {filename}; refusing an unverified artifact")
    return sha256


def parse_sums(text: str) -> dict[str, str]:
    """file name -> sha256 from a `sha256sum` file (`*name` for binary mode).

    A file holding nothing but a digest (Grafana's `<archive>.sha256`) is
    returned under the key "": it names no file, so only the archive whose URL
    it sits next to may use it (see resolve()).
    """
    sums = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and _SHA256.match(parts[0]):
            sums[parts[1].lstrip("*")] = parts[0]
        elif len(parts) == 1 and _SHA256.match(parts[0]):
            sums[""] = parts[0]
    return sums


def resolve(name: str, base_url: str, arch: str = "amd64") -> Artifact:
    """The artifact for component `name` on `arch`, with its expected sha256."""
    entry = load_versions()[name]
    upstream_arch = (entry.get("arch_names") or {}).get(arch, arch)
    # release_tag: upstream's tag when it is not v{version} (Jaeger 2.x ships under its v1 tag).
    fields = {
        "base": base_url.rstrip("/"),
        "version": entry["version"],
        "arch": upstream_arch,
        "release_tag": entry.get("release_tag") or f"v{entry['version']}",
    }
    url = entry["url"].format(**fields)
    filename = url.rsplit("/", 1)[-1]
    sha256 = (entry.get("sha256") or {}).get(arch)
    if not sha256:
        sums_url = entry["checksums"].format(**fields)
        sums = _published_sums(sums_url)
        sha256 = sums.get(filename)
        if not sha256 and sums_url == f"{url}.sha256":
            sha256 = sums.get("")
        if not sha256:
            raise ChecksumError(f"{sums_url} lists no checksum for {filename}; refusing an unverified artifact")
    return Artifact(
        name=name,
        version=entry["version"],
        url=url,
        sha256=sha256,
        archive_dir=entry.get("archive_dir", "").format(**fields),
        binaries=tuple(entry["binaries"]),
        archive_names=tuple(
            (binary, template.format(**fields)) for binary, template in (entry.get("archive_names") or {}).items()
        ),
    )
