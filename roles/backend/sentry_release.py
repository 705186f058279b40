"""The backend's Sentry release: created, source maps uploaded and finalized, once per release.

The backend build ships its `*.map` files to `backend.sourcemaps_dir` on the
app hosts; `sentry-cli` (installed with the build) uploads them for the
release the backend reports (`SENTRY_RELEASE`). A marker file per release on
the host makes a second converge do nothing. Whenever the step need not or
cannot run (no DSN, no maps, no sentry-cli), the deploy says why and goes on.
A failed upload fails the deploy and writes no marker, so the next converge
retries it.

The auth token reaches the host only in a file inside a root-only directory,
which the upload script sources and deletes; it is never on a command line,
in pyinfra's output or in a log.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from io import StringIO

from pyinfra import host, logger
from pyinfra.api import FactBase, FileUploadCommand, StringCommand, deploy, operation

from roles.backend.sentry import release_name
from roles.backend.settings import BackendSettings

MARKER_DIR = "/var/lib/sentinel-observability/sentry-releases"
# Root-only and on tmpfs: the token file is unreadable by others and gone on reboot.
AUTH_DIR = "/run/sentinel-sentry-release"
AUTH_FILE = f"{AUTH_DIR}/auth.env"


@dataclass(frozen=True)
class HostState:
    """What the release step needs to know about an app host."""

    map_files: int  # *.map files under the source maps directory (0 if it is missing)
    sentry_cli: str | None  # path of sentry-cli, None when it is not installed
    uploaded: bool  # the marker of this release exists


@dataclass(frozen=True)
class Decision:
    """Whether to upload, and the line the deploy prints."""

    upload: bool
    message: str
    warn: bool = False  # something the operator should fix, rather than a normal skip


def marker_path(release: str, marker_dir: str = MARKER_DIR) -> str:
    """The marker file of a release (the settings keep '/' out of release names)."""
    return f"{marker_dir}/{release}.uploaded"


def skip_before_host(backend: BackendSettings, dsn_set: bool) -> Decision | None:
    """A skip decided from the settings alone, so the host is not even asked; None = ask it."""
    if not dsn_set:
        return Decision(False, f"{backend.sentry_dsn_secret} unset: Sentry off, no release to create")
    if not backend.sourcemaps_dir:
        return Decision(False, "backend.sourcemaps_dir unset: no source maps to upload: skipped")
    return None


def decide(backend: BackendSettings, state: HostState, token_set: bool) -> Decision:
    """Upload or skip, once the host's state is known (`skip_before_host` returned None)."""
    release = release_name(backend.service_name, backend.version)
    if state.map_files == 0:
        return Decision(False, f"no source maps in {backend.sourcemaps_dir}: skipped")
    if state.uploaded:
        return Decision(False, f"release {release}: source maps already uploaded ({marker_path(release)})")
    if state.sentry_cli is None:
        return Decision(
            False,
            f"sentry-cli is not installed: {state.map_files} source maps in {backend.sourcemaps_dir} not uploaded: "
            "skipped (install sentry-cli with the backend build)",
            warn=True,
        )
    if not token_set:  # preflight refuses this; kept so the step never runs without it
        return Decision(False, f"{backend.sentry_auth_token_secret} unset: source maps not uploaded: skipped", warn=True)
    return Decision(True, f"release {release}: uploading {state.map_files} source maps from {backend.sourcemaps_dir}")


def auth_env(token: str, backend: BackendSettings) -> str:
    """The file sentry-cli's environment comes from (sourced by sh, so every value is quoted)."""
    values = {
        "SENTRY_AUTH_TOKEN": token,
        "SENTRY_ORG": backend.sentry_org or "",
        "SENTRY_PROJECT": backend.sentry_project or "",
        "SENTRY_URL": backend.sentry_url,
    }
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in values.items())


def upload_script(
    release: str, sourcemaps_dir: str, sentry_cli: str, auth_file: str = AUTH_FILE, marker_dir: str = MARKER_DIR
) -> str:
    """Shell script: create the release, upload the maps, finalize, then write the marker.

    sentry-cli reads its token, organization, project and URL from the
    environment, which comes from `auth_file`. The file is deleted whatever
    happens; the marker is written only after every step succeeded, so a
    failure is retried on the next converge.
    """
    q = shlex.quote
    cli, rel, auth = q(sentry_cli), q(release), q(auth_file)
    return "\n".join(
        [
            "set -eu",
            f'trap "rm -f {auth}" EXIT',
            "set -a",
            f". {auth}",
            "set +a",
            f"{cli} releases new {rel}",
            f"{cli} sourcemaps upload --release {rel} {q(sourcemaps_dir)}",
            f"{cli} releases finalize {rel}",
            f"mkdir -p {q(marker_dir)}",
            f"date -u +%Y-%m-%dT%H:%M:%SZ > {q(marker_path(release, marker_dir))}",
        ]
    )


class SentryReleaseState(FactBase):
    """`HostState` of an app host: source map count, sentry-cli path, release marker."""

    def command(self, sourcemaps_dir: str, marker: str) -> str:
        d, m = shlex.quote(sourcemaps_dir), shlex.quote(marker)
        return (
            f"maps=$(find {d} -type f -name '*.map' 2>/dev/null | wc -l); "
            "cli=$(command -v sentry-cli || true); "
            f"if [ -e {m} ]; then up=1; else up=0; fi; "
            'echo "$maps|$cli|$up"'
        )

    def process(self, output) -> HostState:
        maps, cli, uploaded = "".join(output).strip().split("|")
        return HostState(int(maps or 0), cli or None, uploaded == "1")


@operation()
def upload_release(release: str, sourcemaps_dir: str, sentry_cli: str, backend: BackendSettings, secrets: Mapping[str, str]):
    """
    Create a Sentry release, upload its source maps and finalize it, once.

    + release: the release name, the backend's SENTRY_RELEASE
    + sourcemaps_dir: directory on the host holding the *.map files
    + sentry_cli: path of sentry-cli on the host
    + backend: the host's backend settings (organization, project, Sentry URL, token secret name)
    + secrets: the run's resolved secrets; the token is looked up here, so its value
      is never an argument pyinfra prints
    """
    token = secrets.get(backend.sentry_auth_token_secret)
    if not token:
        raise ValueError(f"{backend.sentry_auth_token_secret} is not set")
    yield StringCommand("install", "-d", "-m", "0700", "-o", "root", "-g", "root", AUTH_DIR)
    yield FileUploadCommand(StringIO(auth_env(token, backend)), AUTH_FILE)
    yield StringCommand("sh", "-c", shlex.quote(upload_script(release, sourcemaps_dir, sentry_cli)))


@deploy("Backend Sentry release")
def sentry_release(backend: BackendSettings, secrets: Mapping[str, str]):
    """Create the backend's Sentry release and upload its source maps, or say why not.

    + backend: the host's backend settings (sourcemaps_dir, sentry_org, sentry_project,
      sentry_url, the DSN and auth token secret names)
    + secrets: the run's resolved secrets (the DSN and the auth token, when set)
    """
    release = release_name(backend.service_name, backend.version)
    decision = skip_before_host(backend, bool(secrets.get(backend.sentry_dsn_secret)))
    state = None
    if decision is None:
        state = host.get_fact(SentryReleaseState, sourcemaps_dir=backend.sourcemaps_dir, marker=marker_path(release))
        decision = decide(backend, state, bool(secrets.get(backend.sentry_auth_token_secret)))
    (logger.warning if decision.warn else logger.info)(f"{host.name}: Sentry release: {decision.message}")
    if decision.upload:
        upload_release(
            name=f"backend: Sentry release {release} and source maps",
            release=release,
            sourcemaps_dir=backend.sourcemaps_dir,
            sentry_cli=state.sentry_cli,
            backend=backend,
            secrets=secrets,
        )
