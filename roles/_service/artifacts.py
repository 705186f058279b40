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
_KNOWN_KEYS = {
    "version", "url", "checksums", "sha256", "archive_dir", "arch_names", "binaries", "release_tag",
    "archive_names",
}


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
        stray = set(entry.get("archive_names") or {}) - set(entry["binaries"])
        if stray:
            raise SettingsError(f"{key}.archive_names.{sorted(stray)[0]}", "not one of the binaries",
                                "key archive_names by a name listed in binaries")
        if "{release_tag}" in entry["url"] + entry.get("checksums", "") and not entry.get("release_tag"):
            raise SettingsError(f"{key}.release_tag", "the URL uses {release_tag} but none is set",
                                "set release_tag to upstream's tag, e.g. v1.75.0")
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
    return parse_sums(response.text)


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
