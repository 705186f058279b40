"""The Debian repositories this machine already uses, for the lab's image and proxy.

The lab takes its package sources from the machine's own apt configuration
instead of naming mirrors itself, so it follows whatever the machine is set up
to reach.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

APT_DIR = Path("/etc/apt")


def _deb822_entries(text: str) -> list[dict[str, str]]:
    entries = []
    for stanza in re.split(r"\n\s*\n", text):
        fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
        if fields.get("Types", "").split() and "deb" in fields["Types"].split() and fields.get("Enabled", "yes") != "no":
            entries.append(fields)
    return entries


def source_lines(apt_dir: Path = APT_DIR) -> list[str]:
    """One-line `deb URI SUITE COMPONENTS...` entries for every binary source of the machine."""
    lines = []
    for path in sorted(apt_dir.glob("sources.list.d/*.sources")):
        for fields in _deb822_entries(path.read_text()):
            for uri in fields.get("URIs", "").split():
                for suite in fields.get("Suites", "").split():
                    lines.append(f"deb {uri} {suite} {fields.get('Components', 'main')}")
    for path in [apt_dir / "sources.list", *sorted(apt_dir.glob("sources.list.d/*.list"))]:
        if path.exists():
            for line in path.read_text().splitlines():
                line = re.sub(r"\[[^]]*\]\s*", "", line.split("#", 1)[0]).strip()
                if line.startswith("deb "):
                    lines.append(line)
    if not lines:
        raise RuntimeError(f"no Debian package source found under {apt_dir}: the lab image needs one")
    return lines


def machine_suite(os_release: Path = Path("/etc/os-release")) -> str:
    """The Debian release this machine runs (VERSION_CODENAME), e.g. bookworm."""
    fields = dict(re.findall(r'^([A-Z_]+)="?([^"\n]*)"?$', os_release.read_text(), re.M))
    if not fields.get("VERSION_CODENAME"):
        raise RuntimeError(f"{os_release} names no VERSION_CODENAME: the lab needs a Debian machine")
    return fields["VERSION_CODENAME"]


def suite_source_lines(suite: str, lines: list[str], machine: str) -> list[str]:
    """The machine's Debian sources (`lines`, of release `machine`) moved to another release.

    Each entry for the machine's release or one of its pockets (`bookworm`,
    `bookworm-updates`, `bookworm-security`) becomes the same archive at `suite`
    (`trixie`, `trixie-updates`, `trixie-security`): same mirrors, same proxy allowlist.
    Entries of other origins (a vendor's own suite) do not carry over to another release.
    """
    moved = []
    for line in lines:
        deb, uri, line_suite, *components = line.split()
        if line_suite == machine or line_suite.startswith(machine + "-"):
            moved.append(" ".join([deb, uri, suite + line_suite[len(machine):], *components]))
    if not moved:
        raise RuntimeError(f"none of the machine's package sources is a Debian {machine} suite; "
                           f"no sources for {suite}: {lines}")
    return moved


def sources_for(suite: str, apt_dir: Path = APT_DIR, os_release: Path = Path("/etc/os-release")) -> list[str]:
    """Package sources for an image of `suite`: the machine's own, moved to that release if it differs."""
    lines, machine = source_lines(apt_dir), machine_suite(os_release)
    return lines if suite == machine else suite_source_lines(suite, lines, machine)


def source_hosts(apt_dir: Path = APT_DIR) -> list[str]:
    """Host names of those sources: the only destinations the lab's proxy allows."""
    return sorted({urlsplit(line.split()[1]).hostname for line in source_lines(apt_dir)})
