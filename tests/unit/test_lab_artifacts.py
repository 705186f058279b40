"""The lab artifact builder's reproducible parts: tarballs, checksum files,
version mapping and artifact paths. No network, no Go."""

import gzip
import hashlib
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from lab.artifacts import recipes, stamps, tarball, wheels
from lab.paths import LabHost


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
    for name, recipe in recipes.BUILDER_RECIPES.items():
        assert releases[name].binaries == (recipe.binary,)
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


# --- the collector, Jaeger, VictoriaLogs and the production-only components ---

def test_jaeger_v2_module_version_mapping():
    jaeger = recipes.RECIPES["jaeger"]
    # v1.74.0 / v2.11.0 (CHANGELOG.md) and v1.75.0 / v2.12.0 (RELEASE.md) share commits.
    assert jaeger.module_version("2.11.0") == "v1.74.0"
    assert jaeger.module_version("2.12.0") == "v1.75.0"
    with pytest.raises(ValueError):
        jaeger.module_version("1.75.0")
    # versions.yml's release tag (the GitHub release the archives sit under)
    # is the module version the lab builds.
    release = recipes.load_releases()["jaeger"]
    assert jaeger.module_version(release.version) == release.release_tag == "v1.75.0"
    assert recipes.RECIPES["victorialogs"].module_version("1.52.2") == "v1.52.2"


def test_new_tarballs_mimic_upstream_names_and_layout():
    releases = recipes.load_releases()
    otel, jaeger, vlogs = releases["otelcol"], releases["jaeger"], releases["victorialogs"]
    # goreleaser archive of opentelemetry-collector-releases: binary at the top.
    assert otel.tarball_path().name == f"otelcol-contrib_{otel.version}_linux_amd64.tar.gz"
    assert otel.checksums_path().name == "opentelemetry-collector-releases_otelcol-contrib_checksums.txt"
    assert otel.archive_root() == "" and otel.binaries == ("otelcol-contrib",)
    # scripts/build/package-deploy.sh: a directory named like the archive.
    assert str(jaeger.tarball_path()) == \
        "jaegertracing/jaeger/releases/download/v1.75.0/jaeger-2.12.0-linux-amd64.tar.gz"
    assert jaeger.checksums_path().name == "jaeger-2.12.0.sha256sum.txt"
    assert jaeger.archive_root() == "jaeger-2.12.0-linux-amd64"
    # Makefile release-victoria-logs-goos-goarch.
    assert vlogs.tarball_path().name == "victoria-logs-linux-amd64-v1.52.2.tar.gz"
    assert vlogs.checksums_path().name == "victoria-logs-linux-amd64-v1.52.2_checksums.txt"
    assert vlogs.archive_root() == "" and vlogs.binaries == ("victoria-logs-prod",)
    assert not recipes.RECIPES["jaeger"].include_license
    assert not recipes.RECIPES["victorialogs"].include_license


def test_version_ldflags_fill_from_build_info():
    values = recipes.build_info("2.12.0", "v1.75.0", "2025-11-05T10:00:00Z")
    jaeger = [f.format(**values) for f in recipes.RECIPES["jaeger"].ldflags]
    assert "-X github.com/jaegertracing/jaeger/internal/version.latestVersion=v2.12.0" in jaeger
    assert "-X github.com/jaegertracing/jaeger/internal/version.date=2025-11-05T10:00:00Z" in jaeger
    values = recipes.build_info("1.52.2", "v1.52.2", "2026-07-01T08:09:10Z")
    (vlogs,) = [f.format(**values) for f in recipes.RECIPES["victorialogs"].ldflags]
    assert vlogs.endswith("buildinfo.Version=victoria-logs-20260701-080910-tags-v1.52.2")


def test_collector_manifest_is_one_consistent_release():
    recipe = recipes.BUILDER_RECIPES["otelcol"]
    manifest = recipe.load_manifest()
    assert manifest["dist"]["name"] == recipe.binary == "otelcol-contrib"
    parts = recipe.components()
    core = [v for mods in parts.values() for m, v in mods if m.startswith("go.opentelemetry.io/collector/")]
    contrib = {v for mods in parts.values() for m, v in mods if "opentelemetry-collector-contrib" in m}
    assert recipe.core_version() == "v0.165.0"
    assert set(core) <= {"v0.165.0", "v1.71.0"}  # 0.x modules and the stable 1.x ones of one release
    assert contrib == {"v0.165.1"}
    # The release the lab labels its tarball with is the contrib release it builds.
    assert "v" + recipes.load_releases()["otelcol"].version in contrib
    assert recipe.module_version("0.165.1") == "v0.165.0"  # the builder's (and core's) version
    assert recipe.tags == ("grpcnotrace",)


def test_collector_manifest_has_every_component_the_roles_configure():
    names = {kind: {m.rsplit("/", 1)[-1] for m, _ in mods}
             for kind, mods in recipes.BUILDER_RECIPES["otelcol"].components().items()}
    assert names["receivers"] == {"otlpreceiver", "filelogreceiver"}
    assert names["processors"] == {"batchprocessor", "memorylimiterprocessor", "resourceprocessor"}
    assert names["exporters"] == {"otlpexporter", "otlphttpexporter", "prometheusremotewriteexporter",
                                  "debugexporter"}
    assert names["connectors"] == {"spanmetricsconnector"}
    assert names["extensions"] == {"healthcheckextension", "filestorage", "bearertokenauthextension"}
    assert {"envprovider", "fileprovider"} <= names["providers"]


def test_collector_fingerprint_follows_the_manifest(tmp_path, monkeypatch):
    recipe = recipes.BUILDER_RECIPES["otelcol"]
    before = recipe.fingerprint()
    copy = tmp_path / recipe.manifest
    copy.write_text(recipe.manifest_path.read_text() + "# changed\n")
    monkeypatch.setattr(recipes, "MANIFEST_DIR", tmp_path)
    assert recipe.fingerprint() != before


def test_agpl_components_are_pinned_but_never_built(tmp_path, monkeypatch):
    from lab import paths
    from lab.artifacts import builder

    releases = recipes.load_releases()
    for name in ("tempo", "loki", "grafana"):
        assert name in releases and name in recipes.PRODUCTION_ONLY
        assert name not in recipes.RECIPES and name not in recipes.BUILDER_RECIPES
    monkeypatch.setattr(paths, "BUILD_DIR", tmp_path / "build")

    def no_build(*args, **kwargs):
        raise AssertionError("an AGPL component reached the Go build")

    monkeypatch.setattr(builder, "_go_component", no_build)
    result = builder.build_all(names=["tempo", "loki", "grafana"], log=lambda m: None)
    for name in ("tempo", "loki", "grafana"):
        assert result["components"][name]["status"] == "skipped"
        assert result["components"][name]["reason"] == "AGPL, production only"


def test_wheelhouse_serves_the_python_of_every_suite_the_hosts_run():
    mixed = {"a": LabHost("10.0.0.1", ["app"], "trixie"), "b": LabHost("10.0.0.2", ["monitoring"], "bookworm")}
    assert wheels.lab_pythons(mixed) == ["3.11", "3.13"]
    assert wheels.lab_pythons({"b": mixed["b"]}) == ["3.11"]
    assert wheels.lab_pythons({"a": mixed["a"]}) == ["3.13"]


def test_the_lab_itself_needs_both_pythons():
    # app1 runs Debian 13 (Python 3.13), the others Debian 12 (3.11).
    assert wheels.lab_pythons() == ["3.11", "3.13"]


def test_a_new_python_rebuilds_the_wheelhouse(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("charset-normalizer==3.5.3\n")
    assert wheels.inputs(requirements, ["3.11"]) != wheels.inputs(requirements, ["3.11", "3.13"])


class _Pip:
    """Records pip download calls; fails those whose --python-version is in `no_wheels_for`."""

    def __init__(self, no_wheels_for=()):
        self.calls, self.no_wheels_for = [], set(no_wheels_for)

    def __call__(self, argv, **_):
        self.calls.append(argv)
        version = argv[argv.index("--python-version") + 1] if "--python-version" in argv else None
        if version in self.no_wheels_for:
            return subprocess.CompletedProcess(argv, 1, "", f"no wheel for cp{version}")
        dest = Path(argv[argv.index("-d") + 1])
        if version:
            tag = "cp" + version.replace(".", "")
            (dest / f"charset_normalizer-3.5.3-{tag}-{tag}-manylinux_2_28_x86_64.whl").write_bytes(tag.encode())
        (dest / "idna-3.21-py3-none-any.whl").write_bytes(b"idna")
        return subprocess.CompletedProcess(argv, 0, "", "")


def test_download_fetches_binary_wheels_for_each_python_into_one_index(tmp_path, monkeypatch):
    pip = _Pip()
    monkeypatch.setattr(wheels.subprocess, "run", pip)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("charset-normalizer==3.5.3\n")
    out = wheels.download(requirements, tmp_path / "wheels", ["3.11", "3.13"], python="/py", log=lambda _: None)
    assert [argv[argv.index("--abi") + 1] for argv in pip.calls] == ["cp311", "cp313"]
    assert all("--only-binary=:all:" in argv for argv in pip.calls)
    assert out["modes"] == {"3.11": "binary-only", "3.13": "binary-only"}
    assert out["files"] == [
        "charset_normalizer-3.5.3-cp311-cp311-manylinux_2_28_x86_64.whl",
        "charset_normalizer-3.5.3-cp313-cp313-manylinux_2_28_x86_64.whl",
        "idna-3.21-py3-none-any.whl",
    ]
    assert wheels.present(tmp_path / "wheels", out["files"])


def test_a_python_without_wheels_that_this_machine_cannot_build_for_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(wheels.subprocess, "run", _Pip(no_wheels_for={"3.13"}))
    monkeypatch.setattr(wheels, "_same_target", lambda python, version: version == "3.11")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("charset-normalizer==3.5.3\n")
    with pytest.raises(RuntimeError, match="Python 3.13"):
        wheels.download(requirements, tmp_path / "wheels", ["3.11", "3.13"], python="/py", log=lambda _: None)
    assert not (tmp_path / "wheels").exists()


def test_node_backend_version_names_its_inputs(tmp_path):
    """The backend tarball's version changes with the code or the lockfile, not with node_modules or docs."""
    import shutil

    from lab.artifacts import node_backend

    source = tmp_path / "backend_node"
    source.mkdir()
    for name in ("package.json", "package-lock.json"):
        shutil.copy(node_backend.SOURCE / name, source / name)
    shutil.copytree(node_backend.SOURCE / "src", source / "src")
    version = node_backend.release_version(source)
    assert version == node_backend.release_version()  # the copy is the checkout
    assert version.startswith("1.0.0-") and len(version.split("-")[1]) == 12
    (source / "node_modules").mkdir()
    (source / "node_modules" / "x.js").write_text("ignored")
    (source / "README.md").write_text("ignored")
    assert node_backend.release_version(source) == version
    (source / "src" / "server.js").write_text((source / "src" / "server.js").read_text() + "\n// changed\n")
    changed = node_backend.release_version(source)
    assert changed != version
    (source / "package-lock.json").write_text((source / "package-lock.json").read_text() + "\n")
    assert node_backend.release_version(source) not in (version, changed)
    assert node_backend.tarball_path(version) == f"sentinel-backend/sentinel-backend-{version}.tar.gz"
