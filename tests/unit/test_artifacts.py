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
