"""The lab artifact builder's reproducible parts: tarballs, checksum files,
version mapping and artifact paths. No network, no Go."""

import gzip
import hashlib
import os
import tarfile
import time
from pathlib import Path

import pytest

from lab.artifacts import recipes, stamps, tarball, wheels


@pytest.fixture
def payload(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    binary = src / "server"
    binary.write_bytes(b"\x7fELF fake binary" * 1000)
    binary.chmod(0o755)
    tool = src / "servertool"
    tool.write_bytes(b"tool")
    tool.chmod(0o750)
    lic = src / "LICENSE"
    lic.write_text("Apache License\n")
    lic.chmod(0o600)
    return {"server": binary, "servertool": tool, "LICENSE": lic}


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_same_input_packs_to_same_sha(tmp_path, payload):
    a = tarball.pack(tmp_path / "a.tar.gz", payload, root="server-1.0.0.linux-amd64", mtime=1700000000)
    # Different mtimes, atime and insertion order on the inputs must not matter.
    for p in payload.values():
        os.utime(p, (time.time(), time.time() - 12345))
    reordered = dict(reversed(list(payload.items())))
    time.sleep(1.1)  # a gzip or tar header taking the wall clock would differ now
    b = tarball.pack(tmp_path / "b.tar.gz", reordered, root="server-1.0.0.linux-amd64", mtime=1700000000)
    assert a == b == _sha(tmp_path / "a.tar.gz") == _sha(tmp_path / "b.tar.gz")


def test_different_mtime_or_content_changes_sha(tmp_path, payload):
    a = tarball.pack(tmp_path / "a.tar.gz", payload, mtime=1)
    b = tarball.pack(tmp_path / "b.tar.gz", payload, mtime=2)
    payload["LICENSE"].write_text("changed\n")
    c = tarball.pack(tmp_path / "c.tar.gz", payload, mtime=1)
    assert len({a, b, c}) == 3


def test_tar_entries_are_normalised(tmp_path, payload):
    dest = tmp_path / "out.tar.gz"
    tarball.pack(dest, payload, root="server-1.0.0.linux-amd64", mtime=1700000000)
    raw = dest.read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    assert raw[4:8] == b"\0\0\0\0"  # gzip header mtime
    assert not raw[3] & 0x08  # no file name in the gzip header
    with tarfile.open(dest) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names)
        assert names == [
            "server-1.0.0.linux-amd64",
            "server-1.0.0.linux-amd64/LICENSE",
            "server-1.0.0.linux-amd64/server",
            "server-1.0.0.linux-amd64/servertool",
        ]
        for m in members:
            assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "root", "root", 1700000000)
        modes = {m.name.rsplit("/", 1)[-1]: m.mode for m in members}
        assert modes == {"server-1.0.0.linux-amd64": 0o755, "LICENSE": 0o644,
                         "server": 0o755, "servertool": 0o755}
        assert tar.extractfile("server-1.0.0.linux-amd64/server").read() == payload["server"].read_bytes()


def test_empty_root_puts_files_at_top(tmp_path, payload):
    dest = tmp_path / "flat.tar.gz"
    tarball.pack(dest, payload, root="", mtime=0)
    with tarfile.open(dest) as tar:
        assert tar.getnames() == ["LICENSE", "server", "servertool"]


def test_pack_rejects_escaping_names(tmp_path, payload):
    with pytest.raises(ValueError):
        tarball.pack(tmp_path / "x.tar.gz", {"../evil": payload["server"]})


def test_pack_leaves_no_temp_files_and_replaces_atomically(tmp_path, payload):
    out = tmp_path / "mirror" / "x.tar.gz"
    tarball.pack(out, payload, mtime=0)
    tarball.pack(out, payload, mtime=0)
    assert sorted(p.name for p in out.parent.iterdir()) == ["x.tar.gz"]
    assert gzip.decompress(out.read_bytes())  # a complete gzip stream


def test_checksum_file_lists_file_in_sha256sum_format(tmp_path, payload):
    dest = tmp_path / "server-1.0.0.linux-amd64.tar.gz"
    sha = tarball.pack(dest, payload, mtime=0)
    sums = tmp_path / "sha256sums.txt"
    tarball.write_checksums(sums, {dest.name: sha})
    assert sums.read_text() == f"{_sha(dest)}  server-1.0.0.linux-amd64.tar.gz\n"
    assert tarball.read_checksums(sums) == {dest.name: sha}


def test_checksum_file_keeps_other_entries_sorted(tmp_path):
    sums = tmp_path / "sha256sums.txt"
    sums.write_text(f"{'b' * 64}  x-1.0.0.linux-arm64.tar.gz\n{'c' * 64}  x-1.0.0.linux-amd64.tar.gz\n")
    tarball.write_checksums(sums, {"x-1.0.0.linux-amd64.tar.gz": "a" * 64})
    assert sums.read_text().splitlines() == [
        f"{'a' * 64}  x-1.0.0.linux-amd64.tar.gz",
        f"{'b' * 64}  x-1.0.0.linux-arm64.tar.gz",
    ]


def test_prometheus_module_version_mapping():
    prom = recipes.RECIPES["prometheus"]
    assert prom.module_version("3.16.0") == "v0.316.0"
    assert prom.module_version("3.0.1") == "v0.300.1"
    with pytest.raises(ValueError):
        prom.module_version("2.53.0")
    assert recipes.RECIPES["versitygw"].module_version("1.8.0") == "v1.8.0"


def test_release_paths_follow_versions_yml():
    releases = recipes.load_releases()
    for name in recipes.RECIPES:
        assert set(releases[name].binaries) == {b for b, _ in recipes.RECIPES[name].binaries}
    vgw = recipes.Release(
        name="versitygw", version="1.8.0",
        url="{base}/versity/versitygw/releases/download/v{version}/versitygw_v{version}_Linux_{arch}.tar.gz",
        checksums="{base}/versity/versitygw/releases/download/v{version}/checksums.txt",
        archive_dir="", binaries=("versitygw",), arch_names={"amd64": "x86_64"},
    )
    assert str(vgw.tarball_path("amd64")) == \
        "versity/versitygw/releases/download/v1.8.0/versitygw_v1.8.0_Linux_x86_64.tar.gz"
    assert str(vgw.checksums_path("amd64")) == "versity/versitygw/releases/download/v1.8.0/checksums.txt"
    assert vgw.archive_root("amd64") == ""


def test_build_info_is_deterministic():
    a = recipes.build_info("3.16.0", "v0.316.0", "2026-11-05T15:06:51Z")
    assert a == recipes.build_info("3.16.0", "v0.316.0", "2026-11-05T15:06:51Z")
    assert a["date"] == "20261105-15:06:51"


def test_recipe_fingerprint_changes_with_recipe():
    prom = recipes.RECIPES["prometheus"]
    other = recipes.GoRecipe(**{**prom.__dict__, "tags": ("netgo", "builtinassets")})
    assert prom.fingerprint() == recipes.RECIPES["prometheus"].fingerprint()
    assert prom.fingerprint() != other.fingerprint()


def test_wheel_index_links_every_file(tmp_path):
    (tmp_path / "a-1.0-py3-none-any.whl").write_bytes(b"a")
    (tmp_path / "b-2.0-cp311-cp311-manylinux_2_17_x86_64.whl").write_bytes(b"b")
    names = sorted(p.name for p in tmp_path.iterdir())
    wheels.write_index(tmp_path, names)
    page = (tmp_path / "index.html").read_text()
    for n in names:
        assert f'href="{n}#sha256={_sha(tmp_path / n)}"' in page
    assert wheels.present(tmp_path, names)


def test_stamp_roundtrip(tmp_path):
    path = tmp_path / "stamps" / "x.json"
    assert stamps.read(path) is None
    stamps.write(path, {"inputs": {"a": 1}})
    assert stamps.read(path) == {"inputs": {"a": 1}}
