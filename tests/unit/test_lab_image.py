"""One base image per Debian suite the lab's hosts run: named, cached and pruned per suite."""

import pytest

from lab import image
from lab.paths import HOSTS, SUITE_PYTHON, LabHost


@pytest.fixture
def recipe(monkeypatch, tmp_path):
    """The image recipe's inputs from the machine, fixed; images in tmp_path."""
    monkeypatch.setattr(image, "IMAGE_DIR", tmp_path)
    monkeypatch.setattr(image, "public_key", lambda: "ssh-ed25519 AAAA lab")
    monkeypatch.setattr(image, "_extra_cas", lambda: {})
    monkeypatch.setattr(image, "sources_for", lambda suite: [f"deb http://mirror.example/debian {suite} main"])
    return tmp_path


def test_each_suite_has_its_own_image(recipe):
    bookworm, trixie = image.image_path("bookworm"), image.image_path("trixie")
    assert bookworm.name.startswith("debian-bookworm-") and trixie.name.startswith("debian-trixie-")
    assert bookworm.parent == trixie.parent == recipe
    assert image.image_path("trixie") == trixie  # same recipe, same cached image


def test_a_suite_the_lab_does_not_test_is_refused(recipe):
    with pytest.raises(ValueError, match="unknown suite 'sid'"):
        image.image_path("sid")


def test_the_images_are_those_of_the_hosts_suites_oldest_first(monkeypatch):
    monkeypatch.setattr(image, "HOSTS", {"a": LabHost("10.0.0.1", ["app"], "trixie"),
                                         "b": LabHost("10.0.0.2", ["monitoring"], "bookworm")})
    assert image.host_suites() == ["bookworm", "trixie"]
    monkeypatch.setattr(image, "HOSTS", {"b": LabHost("10.0.0.2", ["monitoring"], "bookworm")})
    assert image.host_suites() == ["bookworm"]


def test_every_lab_host_runs_a_tested_suite():
    assert {host.suite for host in HOSTS.values()} <= set(SUITE_PYTHON)
    # The Node backend needs Debian 13's Node.js (>= 20.19) on the app host.
    assert all(host.suite == "trixie" for host in HOSTS.values() if "app" in host.groups)


def test_pruning_a_suite_leaves_the_other_suites_images(recipe):
    keep = recipe / "debian-trixie-new.tar"
    for name in ("debian-trixie-old.tar", "debian-trixie-new.tar", "debian-bookworm-any.tar"):
        (recipe / name).write_bytes(b"tar")
    for name in ("debian-trixie-old.rootfs", "debian-trixie-new.rootfs", "debian-bookworm-any.rootfs"):
        (recipe / name).mkdir()
    image._prune_stale("trixie", keep=keep)
    assert sorted(p.name for p in recipe.iterdir()) == [
        "debian-bookworm-any.rootfs", "debian-bookworm-any.tar", "debian-trixie-new.rootfs", "debian-trixie-new.tar",
    ]
