"""files/versions.yml as a pydantic model: the one loader of pinned release artifacts.

Used by the deploy (roles/_service/artifacts.py) and by the lab's artifact builder
(lab/artifacts/recipes.py), so the two can never read the file differently.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from roles._placement import COMPONENTS
from roles._model import Model, Name, RelativeName, Sha256, SettingsError, matching, parse
from roles._yaml import load_yaml

VERSIONS_FILE = Path(__file__).resolve().parent.parent / "files" / "versions.yml"
# Components the roles install with the building block; each needs an entry. The
# placement table names each component's release (roles/_placement.py, `artifact`).
DEPLOYED_COMPONENTS = tuple(c.artifact for c in COMPONENTS if c.artifact)


def _version(value: str) -> str:
    if not re.fullmatch(r"\d+\.\d+\.\d+", value):
        raise ValueError(f"{value!r} is not a pinned version. Fix: pin an exact release such as 3.16.0, never 'latest'")
    return value


def _url_template(value: str) -> str:
    if "{version}" not in value:
        raise ValueError("the URL does not contain {version}. Fix: template the URL with {version}")
    if not re.fullmatch(r"(\{base\}|https?://[A-Za-z0-9.:-]+)/[A-Za-z0-9._~/{}+-]*", value):
        raise ValueError(
            f"{value!r} is not a URL template. Fix: start it with {{base}}/ (or https://host/) and use only "
            "letters, digits, . _ ~ / + - and the {version} and {arch} placeholders"
        )
    return value


Version = Annotated[str, AfterValidator(_version)]
Tag = matching("release tag", r"v?[0-9][A-Za-z0-9._-]{0,63}", "write upstream's tag, e.g. v1.75.0")
UrlTemplate = Annotated[str, AfterValidator(_url_template)]
def _binary(value: str) -> str:
    if "/" in value:
        raise ValueError(f"{value!r} is a path. Fix: name the executable only, e.g. promtool")
    return value


BinaryName = Annotated[RelativeName, AfterValidator(_binary)]


class Release(Model):
    """One component's pinned release archive."""

    version: Version = Field(description="Exact x.y.z release.")
    url: UrlTemplate = Field(description="Archive URL; {base} is artifact_base_url, {arch} the host's architecture.")
    checksums: UrlTemplate | None = Field(None, description="The checksums file published next to the archive.")
    sha256: dict[Name, Sha256] = Field(default_factory=dict, description="Pinned sha256 per architecture; wins over checksums.")
    archive_dir: RelativeName | Literal[""] = Field("", description="Directory inside the archive holding the binaries; unset = top level.")
    arch_names: dict[Name, Name] = Field(default_factory=dict, description="Upstream's names of Debian architectures.")
    binaries: tuple[BinaryName, ...] = Field(min_length=1, description="The executables the archive holds.")
    release_tag: Tag | None = Field(None, description="Upstream's tag when it is not v{version} ({release_tag} in the URLs).")
    archive_names: dict[BinaryName, RelativeName] = Field(
        default_factory=dict, description="Path inside the archive of a binary whose file is named otherwise."
    )

    @model_validator(mode="after")
    def _verifiable(self):
        if not self.checksums and not self.sha256:
            raise SettingsError("", "no checksum source", "add `sha256: {amd64: <hex>}` or a `checksums` URL")
        stray = sorted(set(self.archive_names) - set(self.binaries))
        if stray:
            raise SettingsError(f"archive_names.{stray[0]}", "not one of the binaries", "key archive_names by a name listed in binaries")
        if "{release_tag}" in self.url + (self.checksums or "") and not self.release_tag:
            raise SettingsError("release_tag", "the URL uses {release_tag} but none is set", "set release_tag to upstream's tag, e.g. v1.75.0")
        return self


@functools.cache
def load_versions_file(path: Path = VERSIONS_FILE, environment: str | None = None) -> dict[str, Release]:
    """The checked releases of `path`; with `environment`, also its rules (https outside the lab, every component)."""
    document = load_yaml(path)
    if not isinstance(document, dict) or not document:
        raise SettingsError(path.name, "holds no releases", "write one `<component>:` entry per deployed component")
    for name in document:
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
            raise SettingsError(f"{path.name}:{name}", "is not a component name", "use the ServiceSpec name, e.g. node_exporter")
    releases = {name: parse(Release, entry, f"{path.name}:{name}") for name, entry in document.items()}
    if environment is not None:
        for component in DEPLOYED_COMPONENTS:
            if component not in releases:
                raise SettingsError(f"{path.name}:{component}", "the component has no entry", f"pin {component}'s release here (version, url, checksums, binaries)")
        if environment != "lab":
            for name, release in releases.items():
                for key in ("url", "checksums"):
                    value = getattr(release, key)
                    if value and value.startswith("http://"):
                        raise SettingsError(f"{path.name}:{name}.{key}", f"plain http outside the lab ({environment})", "use https:// or {base}")
    return releases
