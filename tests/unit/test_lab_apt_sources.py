"""The lab follows the machine's own apt sources."""

import pytest

from lab.apt_sources import machine_suite, source_hosts, source_lines, sources_for, suite_source_lines


def test_deb822_and_one_line_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\nComponents: main\n\n"
        "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n"
    )
    (tmp_path / "sources.list").write_text(
        "# a comment\ndeb [signed-by=/k.gpg] http://sec.example/debian-security bookworm-security main\n"
    )
    assert source_lines(tmp_path) == [
        "deb http://mirror.example/debian bookworm main",
        "deb http://mirror.example/debian bookworm-updates main",
        "deb http://sec.example/debian-security bookworm-security main",
    ]
    assert source_hosts(tmp_path) == ["mirror.example", "sec.example"]


MACHINE = [
    "deb http://mirror.example/debian bookworm main",
    "deb http://mirror.example/debian bookworm-updates main contrib",
    "deb http://sec.example/debian-security bookworm-security main",
    "deb https://vendor.example/apt cloud-sdk-bookworm main",  # a vendor's suite, not Debian's
    "deb https://vendor.example/node nodistro main",
]


def test_another_suite_takes_the_same_debian_archives_and_pockets():
    assert suite_source_lines("trixie", MACHINE, "bookworm") == [
        "deb http://mirror.example/debian trixie main",
        "deb http://mirror.example/debian trixie-updates main contrib",
        "deb http://sec.example/debian-security trixie-security main",
    ]


def test_no_debian_source_of_the_machines_release_is_refused():
    with pytest.raises(RuntimeError, match="no sources for trixie"):
        suite_source_lines("trixie", MACHINE[3:], "bookworm")


def test_sources_for_the_machines_own_suite_are_its_sources_unchanged(tmp_path):
    (tmp_path / "sources.list").write_text("\n".join(MACHINE) + "\n")
    os_release = tmp_path / "os-release"
    os_release.write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n')
    assert machine_suite(os_release) == "bookworm"
    assert sources_for("bookworm", tmp_path, os_release) == MACHINE
    assert sources_for("trixie", tmp_path, os_release)[0] == "deb http://mirror.example/debian trixie main"


def test_a_machine_without_a_codename_is_refused(tmp_path):
    os_release = tmp_path / "os-release"
    os_release.write_text('ID=alpine\nVERSION_ID=3.20\n')
    with pytest.raises(RuntimeError, match="VERSION_CODENAME"):
        machine_suite(os_release)
