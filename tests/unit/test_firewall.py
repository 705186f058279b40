"""The firewall role: the nft ruleset it renders (checked by the real nft parser) and its operations."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

import roles.firewall as role
from roles._service.operations import validate_script
from roles.firewall import RULESET, UNIT, Opening, render_ruleset, unit_file
from tests.mirror_binaries import MISSING_TOOL
from tests.unit.op_recorder import Recorder

NFT = "/usr/sbin/nft"
ADMIN = ("192.0.2.0/24", "2001:db8:ad::/48")
OPENINGS = (
    Opening(9100, "tcp", ("10.0.0.11", "10.0.0.10", "fd00::11"), "node_exporter.web <- prometheus"),
    Opening(9090, "tcp", ("10.0.0.12/32", "10.0.0.0/29"), "prometheus.web <- prometheus, grafana"),
    Opening(4317, "tcp", ("fd00::/64",), "otelcol.grpc <- app"),
    Opening(53, "udp", ("10.0.0.0/8",), "dns <- everyone inside"),
)


def rule_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if " saddr " in line]


# --- rendering -----------------------------------------------------------------------


def test_rendering_is_deterministic_whatever_the_order_and_duplicates():
    text = render_ruleset(OPENINGS, ADMIN)
    assert render_ruleset(OPENINGS, ADMIN) == text
    shuffled = (OPENINGS[2], OPENINGS[0], OPENINGS[3], OPENINGS[1], OPENINGS[0])
    assert render_ruleset(shuffled, tuple(reversed(ADMIN)) + ADMIN[:1]) == text
    # The same sources, written differently, are the same opening.
    same = Opening(9100, "tcp", ("fd00:0::11", "10.0.0.10/32", "10.0.0.11", "10.0.0.11"), "node_exporter.web <- prometheus")
    assert same == OPENINGS[0] and render_ruleset((*OPENINGS, same), ADMIN) == text
    assert same.sources == ("10.0.0.10", "10.0.0.11", "fd00::11")


def test_one_rule_per_opening_and_family_with_its_comment():
    rules = rule_lines(render_ruleset(OPENINGS, ADMIN))
    opening_rules = [r for r in rules if "admin networks" not in r]
    assert opening_rules == [
        'ip saddr { 10.0.0.0/8 } udp dport 53 accept comment "dns <- everyone inside"',
        'ip6 saddr { fd00::/64 } tcp dport 4317 accept comment "otelcol.grpc <- app"',
        'ip saddr { 10.0.0.0/29, 10.0.0.12 } tcp dport 9090 accept comment "prometheus.web <- prometheus, grafana"',
        'ip saddr { 10.0.0.10, 10.0.0.11 } tcp dport 9100 accept comment "node_exporter.web <- prometheus"',
        'ip6 saddr { fd00::11 } tcp dport 9100 accept comment "node_exporter.web <- prometheus"',
    ]
    # Two openings of the same port and protocol stay two rules (each with its own comment).
    other = Opening(9100, "tcp", ("10.0.0.99",), "node_exporter.web <- vmagent")
    assert len([r for r in rule_lines(render_ruleset((*OPENINGS, other), ADMIN)) if "dport 9100" in r]) == 3


def test_the_file_replaces_only_its_own_table_and_drops_by_default():
    text = render_ruleset(OPENINGS, ADMIN)
    assert "flush" not in text
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert lines[:3] == ["table inet sentinel_firewall", "delete table inet sentinel_firewall", "table inet sentinel_firewall {"]
    assert text.splitlines()[0] == "# Managed by the Sentinel observability toolkit; local edits are overwritten."
    body = lines[3:]
    assert body[:6] == [
        "chain input {",
        "type filter hook input priority filter; policy drop;",
        "ct state established,related accept",
        "ct state invalid drop",
        'iif "lo" accept',
        "icmp type { destination-unreachable, time-exceeded, parameter-problem } accept",
    ]
    icmpv6 = body[6]
    for kind in ("nd-neighbor-solicit", "nd-neighbor-advert", "nd-router-advert", "destination-unreachable",
                 "packet-too-big", "time-exceeded", "parameter-problem"):
        assert kind in icmpv6
    assert "echo-request" not in icmpv6 and "echo-request" not in body[5]
    # Nothing but the policy drop follows the counter.
    assert body[-3:] == ['counter comment "dropped by policy"', "}", "}"]


def test_admin_networks_appear_only_in_the_ssh_and_ping_rules():
    text = render_ruleset(OPENINGS, ADMIN, ssh_port=2222)
    with_admin = [line.strip() for line in text.splitlines() if "192.0.2.0/24" in line or "2001:db8:ad::/48" in line]
    assert with_admin == [
        'ip saddr { 192.0.2.0/24 } icmp type echo-request accept comment "ping <- admin networks"',
        'ip6 saddr { 2001:db8:ad::/48 } icmpv6 type echo-request accept comment "ping <- admin networks"',
        'ip saddr { 192.0.2.0/24 } tcp dport 2222 accept comment "ssh <- admin networks"',
        'ip6 saddr { 2001:db8:ad::/48 } tcp dport 2222 accept comment "ssh <- admin networks"',
    ]
    assert "dport 22 " not in text
    # IPv4-only admins: no empty IPv6 rule.
    assert "ip6 saddr { 2001" not in render_ruleset(OPENINGS, ADMIN[:1])


@pytest.mark.parametrize("source", ["10.0.0.0/33", "foo", "", "10.0.0.5/24", "fd00::1/129", " 10.0.0.1", "10.0.0.1\n", 167772161])
def test_a_bad_source_is_refused(source):
    with pytest.raises(ValueError):
        Opening(9100, "tcp", ("10.0.0.1", source), "ok")


@pytest.mark.parametrize("sources", [(), [], "10.0.0.1"])
def test_sources_must_be_a_non_empty_list(sources):
    with pytest.raises(ValueError, match="non-empty list"):
        Opening(9100, "tcp", sources, "ok")


@pytest.mark.parametrize("port", [0, -1, 65536, "22", 22.0, True, None])
def test_a_bad_port_is_refused(port):
    with pytest.raises(ValueError, match="port"):
        Opening(port, "tcp", ("10.0.0.1",), "ok")
    with pytest.raises(ValueError, match="ssh_port"):
        render_ruleset(OPENINGS, ADMIN, ssh_port=port)


@pytest.mark.parametrize("protocol", ["TCP", "icmp", "sctp", "tcp ", "", None])
def test_a_bad_protocol_is_refused(protocol):
    with pytest.raises(ValueError, match="protocol"):
        Opening(9100, protocol, ("10.0.0.1",), "ok")


@pytest.mark.parametrize(
    "comment",
    ['say "hi"', "two\nlines", "cr\r", "tab\there", "nul\x00", "sep\u2028", "x" * 129, "é" * 65, None],
    ids=["quote", "newline", "cr", "tab", "nul", "line-separator", "129-bytes", "130-utf8-bytes", "none"],
)
def test_a_comment_nft_cannot_carry_is_refused(comment):
    with pytest.raises(ValueError):
        Opening(9100, "tcp", ("10.0.0.1",), comment)


def test_a_comment_of_128_bytes_and_an_empty_one_are_accepted():
    assert Opening(9100, "tcp", ("10.0.0.1",), "x" * 128).comment == "x" * 128
    rule = rule_lines(render_ruleset((Opening(9100, "tcp", ("10.0.0.1",), ""),), ADMIN))[-1]
    assert rule == "ip saddr { 10.0.0.1 } tcp dport 9100 accept"


@pytest.mark.parametrize("admin", [(), [], "192.0.2.0/24", ("foo",), ("10.0.0.0/33",), ("",)])
def test_bad_or_missing_admin_networks_are_refused(admin):
    with pytest.raises(ValueError, match="admin_networks"):
        render_ruleset(OPENINGS, admin)


def test_unit_loads_the_ruleset_at_boot_before_the_network():
    unit = unit_file()
    for line in (
        "Type=oneshot", "RemainAfterExit=yes", "DefaultDependencies=no", "Wants=network-pre.target",
        "After=local-fs.target", f"ExecStart=/usr/sbin/nft -f {RULESET}", f"ExecReload=/usr/sbin/nft -f {RULESET}",
        "WantedBy=sysinit.target",
    ):
        assert line in unit.splitlines()
    assert any(line.startswith("Before=") and "network-pre.target" in line.split("=")[1].split() for line in unit.splitlines())
    assert "flush" not in unit and "ExecStop" not in unit.replace("# No ExecStop", "")


# --- the real nft parser, in a network namespace of its own ---------------------------


@pytest.fixture(scope="module")
def netns():
    """Runs a shell script in a fresh network namespace, where nft may load rules harmlessly."""
    if os.geteuid() != 0:
        pytest.skip("needs root: nft -c talks to the kernel's nf_tables, here in a network namespace of its own (unshare --net)")
    if not Path(NFT).exists():
        pytest.skip(f"{MISSING_TOOL} {NFT} (nftables); run: apt-get install nftables")
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot create a network namespace here (unshare --net); the nft checks need one")

    def run(script: str) -> subprocess.CompletedProcess:
        return subprocess.run(["unshare", "--net", "sh", "-c", "set -eu\n" + script], capture_output=True, text=True, timeout=30)

    return run


def test_nft_accepts_the_rendered_ruleset_and_refuses_a_broken_one(netns, tmp_path):
    good = tmp_path / "ruleset.nft"
    good.write_text(render_ruleset(OPENINGS, ADMIN))
    result = netns(f"{NFT} -c -f {shlex.quote(str(good))}")
    assert result.returncode == 0, result.stderr
    broken = tmp_path / "broken.nft"
    broken.write_text(good.read_text().replace("tcp dport 9090", "tcp dport 70000"))
    result = netns(f"{NFT} -c -f {shlex.quote(str(broken))}")
    assert result.returncode != 0 and "70000" in result.stderr


def test_the_role_s_on_host_check_refuses_a_broken_ruleset_and_keeps_the_live_one(netns, tmp_path):
    """validated_file's check script with the role's command, as it runs on the host."""
    live, staged = tmp_path / "ruleset.nft", tmp_path / "ruleset.nft.staged"
    live.write_text("live\n")
    staged.write_text(render_ruleset(OPENINGS, ADMIN))
    check = "\n".join(validate_script(role.VALIDATE, str(staged), str(live)))
    assert netns(check).returncode == 0 and staged.exists()
    staged.write_text(render_ruleset(OPENINGS, ADMIN).replace("accept", "acept", 1))
    result = netns(check)
    assert result.returncode != 0 and "the live file is unchanged" in result.stderr
    assert not staged.exists() and live.read_text() == "live\n"


def test_loading_twice_replaces_our_table_and_keeps_the_operators_tables(netns, tmp_path):
    (tmp_path / "ours.nft").write_text(render_ruleset(OPENINGS, ADMIN))
    (tmp_path / "ours2.nft").write_text(render_ruleset(OPENINGS[:1], ADMIN))
    d = shlex.quote(str(tmp_path))
    result = netns(
        f"{NFT} add table ip operators\n"
        f"{NFT} 'add chain ip operators nat {{ type nat hook postrouting priority srcnat; }}'\n"
        f"{NFT} -f {d}/ours.nft\n"
        f"{NFT} -f {d}/ours.nft\n"  # the table exists now: the delete-and-recreate path
        f"{NFT} -f {d}/ours2.nft\n"
        f"{NFT} list ruleset"
    )
    assert result.returncode == 0, result.stderr
    assert "table ip operators" in result.stdout and "chain nat" in result.stdout
    assert result.stdout.count("table inet sentinel_firewall") == 1
    assert "dport 9100" in result.stdout and "dport 9090" not in result.stdout


def test_systemd_accepts_the_unit(tmp_path):
    if shutil.which("systemd-analyze") is None or not Path(NFT).exists():
        pytest.skip(f"{MISSING_TOOL} systemd-analyze and {NFT}; run: apt-get install systemd nftables")
    unit = tmp_path / UNIT  # verify wants the unit's own name, so not through validated_file's .staged copy
    unit.write_text(unit_file())
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# --- the role's operations, recorded instead of run ---------------------------------


def _run_role(monkeypatch, changed: set = frozenset(), openings=OPENINGS, admin=ADMIN) -> list[tuple[str, dict]]:
    calls: list[tuple[str, dict]] = []
    for module in ("apt", "files", "systemd"):
        monkeypatch.setattr(role, module, Recorder(calls, module, changed))
    recorder = Recorder(calls, "", changed)
    monkeypatch.setattr(role, "validated_file", lambda **kwargs: recorder("validated_file", **kwargs))
    role.firewall._inner(openings, admin)
    return calls


def _if(call) -> bool:
    condition = call[1].get("_if", lambda: True)
    return condition()


def test_the_role_installs_nft_writes_checked_files_and_enables_the_unit(monkeypatch):
    calls = _run_role(monkeypatch)
    assert [name for name, _ in calls] == [
        "apt.packages", "files.directory", "validated_file", "validated_file",
        "systemd.daemon_reload", "systemd.service", "systemd.service",
    ]
    (_, apt), (_, directory), (_, rules), (_, unit), _, (_, started), (_, reload) = calls
    assert apt["packages"] == ["nftables"]
    assert (directory["path"], directory["user"], directory["group"], directory["mode"]) == ("/etc/sentinel-firewall", "root", "root", "0750")
    assert (rules["dest"], rules["user"], rules["group"], rules["mode"]) == (RULESET, "root", "root", "0640")
    assert rules["content"] == render_ruleset(OPENINGS, ADMIN) and rules["validate"] == "/usr/sbin/nft -c -f {path}"
    assert (unit["dest"], unit["mode"], unit.get("validate")) == ("/etc/systemd/system/sentinel-firewall.service", "0644", None)
    assert unit["content"] == unit_file()
    assert (started["service"], started["running"], started["enabled"]) == (UNIT, True, True)
    assert (reload["service"], reload["reloaded"]) == (UNIT, True)
    assert "nftables.service" not in repr(calls) and "/etc/nftables.conf" not in repr(calls)


@pytest.mark.parametrize(
    "changed, daemon_reload, reload",
    [
        (set(), False, False),  # second run: nothing to do
        ({"firewall: ruleset"}, False, True),
        ({"firewall: systemd unit"}, True, True),
        ({"firewall: ruleset", "firewall: systemd unit", "firewall: loaded and enabled at boot"}, True, False),  # first run
    ],
    ids=["unchanged", "new-ruleset", "new-unit", "first-run"],
)
def test_the_ruleset_is_reloaded_only_when_it_or_the_unit_changed_and_not_just_started(monkeypatch, changed, daemon_reload, reload):
    calls = _run_role(monkeypatch, changed)
    assert _if(calls[4]) is daemon_reload and _if(calls[6]) is reload


def test_bad_input_stops_the_role_before_any_operation(monkeypatch):
    calls: list = []
    with pytest.raises(ValueError, match="admin_networks"):
        calls = _run_role(monkeypatch, admin=())
    assert calls == []
