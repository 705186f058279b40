"""The lab follows the machine's own apt sources."""

from lab.apt_sources import source_hosts, source_lines


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
