"""The topology on the converged lab: what listens where, who gets through the firewall, and the
intruder (10.213.0.66, a network namespace on the lab bridge in no group) refused everywhere.

Every expectation is computed from the same topology the deploy used (roles/_topology.py), so a
new listener without a declared flow, a bind the topology does not name, or a firewall that lets
one more source in fails here. Traffic goes only to the lab's hosts.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json

import pytest

from lab import hosts as lab_hosts, operator_tls
from lab.paths import BRIDGE_IP, INTRUDER, INTRUDER_IP
from lab.probe import probe_from, request_from
from roles._service.operations import validate_script
from roles.firewall import RULESET, UNIT, VALIDATE
from tests import lab_session
from tests.e2e import units
from tests.stack import hosts_in, reconnected, stack_hosts

pytestmark = [pytest.mark.lab, pytest.mark.topology]

# Far from every port of the stack: a port nothing listens on, to tell "refused" from "dropped".
UNUSED_PORT = 47013


@pytest.fixture(scope="module")
def lab(first_converge):
    assert first_converge.returncode == 0, first_converge.output[-3000:]
    hosts = {h.name: h for h in stack_hosts()}
    return hosts, next(iter(hosts.values())).topology


def _allowed(topology, host: str, source_ip: str) -> set[int]:
    """The ports of `host` that `source_ip` may reach, per the topology's openings."""
    ports = set()
    for opening in topology.openings(host):
        if opening.protocol == "tcp" and any(ipaddress.ip_address(source_ip) in ipaddress.ip_network(s) for s in opening.sources):
            ports.add(opening.port)
    fw = topology.hosts[host].settings.firewall
    if any(ipaddress.ip_address(source_ip) in ipaddress.ip_network(n) for n in fw.admin_networks):
        ports.add(fw.ssh_port)
    return ports


def _targets(topology) -> list[tuple[str, int]]:
    """Every TCP port of every host's listeners (the local ones too), and one unused port per host."""
    found = set()
    for listener in topology.listeners:
        if "tcp" in listener.spec.protocols:
            found.add((topology.hosts[listener.host].settings.ip, listener.port))
    for host in topology.hosts.values():
        found.add((host.settings.ip, UNUSED_PORT))
    return sorted(found)


def test_every_host_listens_on_exactly_what_the_topology_binds(lab):
    """Bind audit: `ss -ltnu` on each host equals the topology's binds; only sshd listens on every address."""
    hosts, topology = lab
    for name, host in hosts.items():
        out = host.testinfra.check_output("ss -Hltnu")
        seen = {(line.split()[0], line.split()[4]) for line in out.splitlines() if line.strip()}
        expected = set()
        for listener in topology.on(name):
            for protocol in listener.spec.protocols:
                if listener.name == "ssh":
                    expected |= {("tcp", f"0.0.0.0:{listener.port}"), ("tcp", f"[::]:{listener.port}")}
                else:
                    expected.add((protocol, listener.bind))
        assert seen == expected, f"{name}: listening but not in the topology {seen - expected}, missing {expected - seen}"


def test_the_intruder_reaches_no_port_of_any_host(lab):
    _, topology = lab
    results = probe_from(INTRUDER, _targets(topology))
    opened = {target: result for target, result in results.items() if result == "open"}
    assert not opened, f"the intruder got through to {sorted(opened)}"
    # Dropped, not refused: the firewall answers nothing (a refused port would show that a host is there).
    assert set(results.values()) == {"filtered"}, results


def test_each_host_reaches_exactly_its_declared_peers(lab):
    """The reachability matrix: from every host to every port of every other host."""
    hosts, topology = lab
    targets = _targets(topology)
    for name, host in hosts.items():
        results = probe_from(name, [t for t in targets if t[0] != host.settings.ip])
        for (ip, port), result in ((tuple(k.rsplit(":", 1)), v) for k, v in results.items()):
            target = next(h for h in topology.hosts.values() if h.settings.ip == ip).name
            should = int(port) in _allowed(topology, target, host.settings.ip)
            assert (result == "open") == should, f"{name} -> {target}:{port}: {result}, declared: {should}"


def test_the_controller_reaches_ssh_and_the_apis_group_data_allows(lab):
    _, topology = lab
    results = probe_from("controller", _targets(topology))
    for key, result in results.items():
        ip, port = key.rsplit(":", 1)
        target = next(h for h in topology.hosts.values() if h.settings.ip == ip).name
        should = int(port) in _allowed(topology, target, BRIDGE_IP)
        assert (result == "open") == should, f"controller -> {target}:{port}: {result}, declared: {should}"


def test_the_three_attacks_of_the_issue_fail_from_the_intruder(lab):
    hosts, topology = lab
    mon = topology.instances("alertmanager.web")[0]
    silence = json.dumps({
        "matchers": [{"name": "alertname", "value": ".+", "isRegex": True}],
        "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2030-01-01T00:00:00Z", "createdBy": "intruder", "comment": "x",
    })
    store = topology.instances("victorialogs.http")[0]
    prometheus = topology.instances("prometheus.web")[0]
    attacks = [
        ("POST", f"http://{mon.bind}/api/v2/silences", silence),
        ("POST", f"http://{store.bind}/delete/run_task?filter=%7Bstream%3D%22security%22%7D", None),
        ("POST", f"http://{prometheus.bind}/-/quit", None),
    ]
    am_host = hosts[mon.host]
    silences_before = json.loads(am_host.curl(am_host.local("alertmanager.web", "/api/v2/silences")))
    for method, url, body in attacks:
        status, answer = request_from(INTRUDER, method, url, body)
        assert status is None, f"{url} answered the intruder: {status} {answer[:200]}"
    # Nothing changed: no new silence, Prometheus still answers.
    assert json.loads(am_host.curl(am_host.local("alertmanager.web", "/api/v2/silences"))) == silences_before
    hosts[prometheus.host].curl(hosts[prometheus.host].local("prometheus.web", "/-/ready"))


def test_prometheus_lifecycle_api_is_off_even_for_the_operators(lab):
    hosts, topology = lab
    prometheus = topology.instances("prometheus.web")[0]
    status, answer = request_from("controller", "POST", f"https://{prometheus.bind}/-/quit", tls=operator_tls.operator_files())
    assert status == 403 and "Lifecycle API is not enabled" in answer
    hosts[prometheus.host].curl(hosts[prometheus.host].local("prometheus.web", "/-/ready"))


def test_a_prometheus_killed_with_sigkill_comes_back_by_itself(lab):
    mon = hosts_in("monitoring")[0]
    units.wait_restarted(mon, "prometheus", units.sigkill(mon, "prometheus"), mon.local("prometheus.web", "/-/ready"))
    assert "Restart=always" in mon.testinfra.file("/etc/systemd/system/prometheus.service").content_string


def _ruleset(host) -> str:
    # -s: stateless, without the counters (which differ from one moment to the next).
    return host.testinfra.check_output("nft -s list table inet sentinel_firewall")


def test_a_broken_ruleset_is_refused_and_the_live_one_stays(lab):
    """The role's own check (nft -c on the staged file) on a host: refused, the file and the rules unchanged."""
    app = hosts_in("app")[0]
    live_file = app.testinfra.file(RULESET).content_string
    live_rules = _ruleset(app)
    staged = f"{RULESET}.staged"
    broken = live_file.replace("tcp dport", "tcp dportt", 1)
    assert broken != live_file
    app.testinfra.check_output("printf %%s %s > %s", broken, staged)
    script = "\n".join(["set -eu", *validate_script(VALIDATE, staged, RULESET)])
    result = app.testinfra.run("sh -c %s", script)
    assert result.rc != 0 and "refused" in result.stderr
    assert not app.testinfra.file(staged).exists
    assert hashlib.sha256(app.testinfra.file(RULESET).content_string.encode()).hexdigest() == hashlib.sha256(live_file.encode()).hexdigest()
    assert _ruleset(app) == live_rules


def test_the_rules_survive_a_reboot(lab):
    """app1 powered off cleanly and booted again: the firewall is back before anyone can connect."""
    _, topology = lab
    app = hosts_in("app")[0]
    before = _ruleset(app)
    assert app.testinfra.service(UNIT.removesuffix(".service")).is_enabled
    lab_hosts.stop(app.name)
    lab_hosts.start(app.name)
    lab_hosts.wait_ready(app.name)
    fresh = reconnected(app)
    assert _ruleset(fresh) == before
    ip = fresh.settings.ip
    results = probe_from(INTRUDER, [(ip, l.port) for l in topology.on(app.name) if "tcp" in l.spec.protocols])
    assert set(results.values()) == {"filtered"}, results
    # And the stack came back on it (every service enabled): the backend answers its scraper's port.
    fresh.curl(fresh.local("backend.http", "/health"))


def test_the_controller_still_reaches_ssh_after_a_converge(lab):
    run = lab_session.converge()
    assert run.returncode == 0, run.output[-3000:]
    assert run.changed == {h.name: 0 for h in stack_hosts()}, run.output[-3000:]
    for host in stack_hosts():
        assert probe_from("controller", [(host.settings.ip, host.settings.firewall.ssh_port)]) == {f"{host.settings.ip}:22": "open"}


def test_the_intruder_is_in_no_group_and_no_admin_network(lab):
    _, topology = lab
    assert INTRUDER_IP not in {h.settings.ip for h in topology.hosts.values()}
    for host in topology.hosts.values():
        assert not any(ipaddress.ip_address(INTRUDER_IP) in ipaddress.ip_network(n) for n in host.settings.firewall.admin_networks)
