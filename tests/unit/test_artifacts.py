"""Versions are pinned in one place and every artifact is verified."""

import http.server
import threading
from pathlib import Path

import pytest
import yaml

from roles._model import SettingsError
from roles._service import artifacts


def write_versions(tmp_path: Path, entry: dict) -> Path:
    path = tmp_path / "versions.yml"
    path.write_text(yaml.safe_dump({"thing": entry}))
    return path


GOOD = {
    "version": "1.2.3",
    "url": "{base}/t/v{version}/thing-{version}.linux-{arch}.tar.gz",
    "checksums": "{base}/t/v{version}/sha256sums.txt",
    "archive_dir": "thing-{version}.linux-{arch}",
    "binaries": ["thing"],
}


def test_the_repo_versions_file_is_valid():
    entries = artifacts.load_versions()
    assert {"prometheus", "node_exporter", "versitygw"} <= set(entries)


@pytest.mark.parametrize(
    "change, key",
    [
        ({"version": "latest"}, "thing.version"),
        ({"version": "3.x"}, "thing.version"),
        ({"url": "{base}/thing.tar.gz"}, "thing.url"),
        ({"checksums": None}, "thing"),
        ({"sha256": {"amd64": "abc"}}, "thing.sha256.amd64"),
        ({"binaries": []}, "thing.binaries"),
        ({"sha265": {}}, "thing.sha265"),
    ],
)
def test_unpinned_or_unverifiable_entries_are_refused(tmp_path, change, key):
    path = write_versions(tmp_path, {**GOOD, **change})
    artifacts.load_versions.cache_clear()
    with pytest.raises(SettingsError) as err:
        artifacts.load_versions(path)
    assert err.value.key == f"versions.yml:{key}"


@pytest.fixture
def sums_server(tmp_path):
    root = tmp_path / "site"
    (root / "t" / "v1.2.3").mkdir(parents=True)
    (root / "t" / "v1.2.3" / "sha256sums.txt").write_text(
        f"{'a' * 64}  thing-1.2.3.linux-amd64.tar.gz\n{'b' * 64}  thing-1.2.3.linux-arm64.tar.gz\n"
    )
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_checksum_comes_from_the_published_file(tmp_path, monkeypatch, sums_server):
    monkeypatch.setattr(artifacts, "load_versions", lambda: {"thing": GOOD})
    art = artifacts.resolve("thing", sums_server, "arm64")
    assert art.sha256 == "b" * 64
    assert art.url == f"{sums_server}/t/v1.2.3/thing-1.2.3.linux-arm64.tar.gz"
    assert art.archive_dir == "thing-1.2.3.linux-arm64"


def test_a_pinned_checksum_wins(monkeypatch, sums_server):
    monkeypatch.setattr(artifacts, "load_versions", lambda: {"thing": {**GOOD, "sha256": {"amd64": "c" * 64}}})
    assert artifacts.resolve("thing", sums_server).sha256 == "c" * 64


def test_an_artifact_missing_from_the_checksums_file_is_refused(monkeypatch, sums_server):
    entry = {**GOOD, "url": "{base}/t/v{version}/other-{version}.tar.gz"}
    monkeypatch.setattr(artifacts, "load_versions", lambda: {"thing": entry})
    with pytest.raises(artifacts.ChecksumError, match="no checksum for other-1.2.3.tar.gz"):
        artifacts.resolve("thing", sums_server)


def test_upstream_arch_names(monkeypatch, sums_server):
    entry = {**GOOD, "arch_names": {"amd64": "x86_64"}, "sha256": {"amd64": "d" * 64}}
    monkeypatch.setattr(artifacts, "load_versions", lambda: {"thing": entry})
    assert artifacts.resolve("thing", sums_server).url.endswith("linux-x86_64.tar.gz")


# --- release_tag, archive_names, digest-only checksum files, .zip archives ---

def test_release_tag_fills_the_url(monkeypatch, sums_server):
    entry = {**GOOD, "release_tag": "v9.9.9", "sha256": {"amd64": "e" * 64},
             "url": "{base}/t/{release_tag}/thing-{version}.linux-{arch}.tar.gz"}
    monkeypatch.setattr(artifacts, "load_versions", lambda: {"thing": entry})
    assert artifacts.resolve("thing", sums_server).url == f"{sums_server}/t/v9.9.9/thing-1.2.3.linux-amd64.tar.gz"


@pytest.mark.parametrize(
    "change, key",
    [
        ({"url": "{base}/t/{release_tag}/thing-{version}.tar.gz"}, "thing.release_tag"),
        ({"archive_names": {"other": "x"}}, "thing.archive_names.other"),
    ],
)
def test_inconsistent_entries_are_refused(tmp_path, change, key):
    path = write_versions(tmp_path, {**GOOD, **change})
    artifacts.load_versions.cache_clear()
    with pytest.raises(SettingsError) as err:
        artifacts.load_versions(path)
    assert err.value.key == f"versions.yml:{key}"


def test_a_digest_only_file_verifies_only_the_archive_it_sits_next_to(monkeypatch, tmp_path):
    assert artifacts.parse_sums(f"{'f' * 64}\n") == {"": "f" * 64}
    assert artifacts.parse_sums(f"{'f' * 64} *a.tar.gz\n") == {"a.tar.gz": "f" * 64}
    monkeypatch.setattr(artifacts, "_published_sums", lambda url: {"": "f" * 64})
    beside = {**GOOD, "checksums": "{base}/t/v{version}/thing-{version}.linux-{arch}.tar.gz.sha256"}
    monkeypatch.setattr(artifacts, "load_versions", lambda: {"thing": beside})
    assert artifacts.resolve("thing", "http://x").sha256 == "f" * 64
    # The same lone digest in a shared checksums file names no archive: refused.
    monkeypatch.setattr(artifacts, "load_versions", lambda: {"thing": GOOD})
    with pytest.raises(artifacts.ChecksumError):
        artifacts.resolve("thing", "http://x")


def test_the_production_only_entries_are_verified_from_published_checksums():
    entries = artifacts.load_versions()
    for name in ("tempo", "loki", "grafana"):
        assert "sha256" not in entries[name], f"{name}: no digest can be pinned from here"
        assert entries[name]["checksums"].startswith("{base}/grafana/")
    assert entries["loki"]["url"].endswith(".zip")


def _serve(root: Path):
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_install_script_verifies_then_unpacks_zip_and_tar(tmp_path, kind):
    """Run the building block's install script for real against a local server."""
    import hashlib
    import subprocess
    import tarfile
    import zipfile

    from roles._service.operations import install_script

    site = tmp_path / "site"
    site.mkdir()
    archive = site / f"loki-linux-amd64.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr("loki-linux-amd64", "#!/bin/sh\necho loki\n")
    else:
        payload = tmp_path / "loki-linux-amd64"
        payload.write_text("#!/bin/sh\necho loki\n")
        with tarfile.open(archive, "w:gz") as t:
            t.add(payload, arcname="loki-linux-amd64")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    server = _serve(site)
    try:
        url = f"http://127.0.0.1:{server.server_port}/{archive.name}"

        def run(sha):
            art = artifacts.Artifact(name="loki", version="3.7.8", url=url, sha256=sha, archive_dir="",
                                     binaries=("loki",), archive_names=(("loki", "loki-linux-amd64"),))
            script = "set -eu\n" + "\n".join(install_script(art, str(tmp_path / "opt" / "3.7.8")))
            return subprocess.run(["sh", "-c", script], capture_output=True, text=True)

        bad = run("0" * 64)
        assert bad.returncode != 0 and "checksum mismatch" in bad.stderr
        assert not (tmp_path / "opt" / "3.7.8").exists()
        good = run(digest)
        assert good.returncode == 0, good.stderr
        installed = tmp_path / "opt" / "3.7.8" / "loki"
        assert installed.read_text() == "#!/bin/sh\necho loki\n"
        assert installed.stat().st_mode & 0o777 == 0o755
    finally:
        server.shutdown()
