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
import yaml

from roles._schema import SettingsError

VERSIONS_FILE = Path(__file__).resolve().parents[2] / "files" / "versions.yml"
_EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_KNOWN_KEYS = {"version", "url", "checksums", "sha256", "archive_dir", "arch_names", "binaries"}


@dataclass(frozen=True)
class Artifact:
    name: str
    version: str
    url: str
    sha256: str
    archive_dir: str  # directory inside the tarball holding the binaries ("" = top level)
    binaries: tuple[str, ...]

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@functools.cache
def load_versions(path: Path = VERSIONS_FILE) -> dict[str, dict]:
    """Read and check the versions file; every entry must be pinned and verifiable."""
    entries = yaml.safe_load(path.read_text())
    for name, entry in entries.items():
        key = f"{path.name}:{name}"
        unknown = set(entry) - _KNOWN_KEYS
        if unknown:
            raise SettingsError(f"{key}.{sorted(unknown)[0]}", "unknown key", f"use only {', '.join(sorted(_KNOWN_KEYS))}")
        version = str(entry.get("version", ""))
        if not _EXACT_VERSION.match(version):
            raise SettingsError(
                f"{key}.version", f"{version!r} is not a pinned version", "pin an exact release such as 3.16.0, never 'latest'"
            )
        if "{version}" not in entry.get("url", ""):
            raise SettingsError(f"{key}.url", "the URL does not contain {version}", "template the URL with {version}")
        pinned = entry.get("sha256") or {}
        if not entry.get("checksums") and not pinned:
            raise SettingsError(f"{key}", "no checksum source", "add `sha256: {amd64: <hex>}` or a `checksums` URL")
        for arch, digest in pinned.items():
            if not _SHA256.match(str(digest)):
                raise SettingsError(f"{key}.sha256.{arch}", "not a sha256 hex digest", "paste the 64-hex-digit sum")
        if not entry.get("binaries"):
            raise SettingsError(f"{key}.binaries", "no binaries listed", "list the executables in the archive")
    return entries


class ChecksumError(RuntimeError):
    pass


@functools.cache
def _published_sums(url: str) -> dict[str, str]:
    try:
        response = requests.get(url, timeout=30)
        response.raise_for_status()
    except requests.RequestException as err:
        raise ChecksumError(f"cannot read the published checksums {url}: {err}") from None
    sums = {}
    for line in response.text.splitlines():
        parts = line.split()
        if len(parts) == 2 and _SHA256.match(parts[0]):
            sums[parts[1].lstrip("*")] = parts[0]
    return sums


def resolve(name: str, base_url: str, arch: str = "amd64") -> Artifact:
    """The artifact for component `name` on `arch`, with its expected sha256."""
    entry = load_versions()[name]
    upstream_arch = (entry.get("arch_names") or {}).get(arch, arch)
    fields = {"base": base_url.rstrip("/"), "version": entry["version"], "arch": upstream_arch}
    url = entry["url"].format(**fields)
    filename = url.rsplit("/", 1)[-1]
    sha256 = (entry.get("sha256") or {}).get(arch)
    if not sha256:
        sums_url = entry["checksums"].format(**fields)
        sha256 = _published_sums(sums_url).get(filename)
        if not sha256:
            raise ChecksumError(f"{sums_url} lists no checksum for {filename}; refusing an unverified artifact")
    return Artifact(
        name=name,
        version=entry["version"],
        url=url,
        sha256=sha256,
        archive_dir=entry.get("archive_dir", "").format(**fields),
        binaries=tuple(entry["binaries"]),
    )
