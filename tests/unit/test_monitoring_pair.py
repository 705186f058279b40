"""One monitoring host, then two: the Alertmanager cluster and the Prometheus pair as the roles render them.

Environments are inventories read by pyinfra's own loader (tests/environments.py), as deploy.py
reads them; every host's service and config come from the roles' own `host_*` functions.
"""

from __future__ import annotations

import subprocess
import textwrap

import pytest
import yaml

from roles._pki import identity_uri
from roles._tls import allowed_clients
from roles.alertmanager import TLS as ALERTMANAGER_TLS, host_service_spec
from roles.firewall import openings_of
from roles.prometheus import REPLICA_LABEL, host_config
from tests.environments import GOOD_SECRETS, context_of, environment
from tests.mirror_binaries import extract
from tests.tls_files import tls_on_disk

pytestmark = pytest.mark.alerting


def inventory(monitoring: int) -> str:
    mons = ", ".join(f'("mon{i}.prod", {{"ip": "10.9.0.{10 + i}"}})' for i in range(1, monitoring + 1))
    return textwrap.dedent(
        f"""
        monitoring = [{mons}]
        telemetry = [("tel1.prod", {{"ip": "10.9.0.21"}})]
        app = [("app1.prod", {{"ip": "10.9.0.31"}})]
        """
    )


@pytest.fixture
def one(tmp_path):
    (tmp_path / "one").mkdir()
    return environment(tmp_path / "one", "prod", inventory(1))


@pytest.fixture
def two(tmp_path):
    (tmp_path / "two").mkdir()
    return environment(tmp_path / "two", "prod", inventory(2))


def flags(spec) -> dict[str, list[str]]:
    """--flag=value arguments of a unit, by flag (a repeated flag keeps every value)."""
    found: dict[str, list[str]] = {}
    for arg in spec.exec_start[1:]:
        name, _, value = arg.partition("=")
        found.setdefault(name, []).append(value)
    return found


def alertmanager_flags(env, host):
    return flags(host_service_spec(context_of(env, host, GOOD_SECRETS)))


def prometheus_yml(env, host) -> dict:
    return yaml.safe_load(host_config(context_of(env, host)))


def pushes_to(config: dict) -> list[str]:
    """The Alertmanagers a prometheus.yml sends its alerts to; over TLS with Prometheus's own certificate."""
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    assert alertmanagers["scheme"] == "https"
    assert alertmanagers["tls_config"]["cert_file"] == "/etc/prometheus/tls/prometheus.crt"
    (static,) = alertmanagers["static_configs"]
    return static["targets"]


# --- Alertmanager -------------------------------------------------------------------------------


def test_one_alertmanager_runs_no_cluster(one):
    am = alertmanager_flags(one, "mon1.prod")
    assert am["--cluster.listen-address"] == [""]  # gossip off, no port
    assert not [f for f in am if f.startswith("--cluster.") and f != "--cluster.listen-address"]
    assert "alertmanager.cluster" not in {l.name for l in one.topology.instances("alertmanager.cluster")}


def test_two_alertmanagers_gossip_with_each_other_on_their_own_ip_with_stable_names(two):
    for me, ip, other in (("mon1.prod", "10.9.0.11", "mon2.prod"), ("mon2.prod", "10.9.0.12", "mon1.prod")):
        am = alertmanager_flags(two, me)
        assert am["--cluster.listen-address"] == [f"{ip}:9094"]
        assert am["--cluster.advertise-address"] == [f"{ip}:9094"]  # an IP: what the others reach it at
        assert am["--cluster.peer"] == [f"{other}:9094"]  # every other peer, never itself
        # The inventory name: the same after every restart, so the positions (mon1 first) are stable.
        assert am["--cluster.peer-name"] == [me]
        assert am["--cluster.label"] == ["sentinel-prod"]
        assert am["--cluster.peer-timeout"] == ["15s"] and am["--cluster.settle-timeout"] == ["1m"]


def test_three_alertmanagers_list_both_other_peers(tmp_path):
    env = environment(tmp_path, "prod", inventory(3))
    assert alertmanager_flags(env, "mon2.prod")["--cluster.peer"] == ["mon1.prod:9094", "mon3.prod:9094"]


def test_the_pinned_alertmanager_accepts_the_cluster_flags(two, tmp_path):
    """Every cluster flag the role renders exists in the pinned release (an unknown flag stops it at start)."""
    alertmanager = extract("alertmanager", "alertmanager", tmp_path)
    result = subprocess.run([alertmanager, "--help"], capture_output=True, text=True)
    help_text = result.stdout + result.stderr
    cluster = [f for f in alertmanager_flags(two, "mon1.prod") if f.startswith("--cluster.")]
    assert len(cluster) == 7
    for flag in cluster:
        assert f"{flag}=" in help_text or f"{flag}]" in help_text or f" {flag} " in help_text, flag


def test_gossip_is_open_to_the_peers_only_tcp_and_udp(two, one):
    openings = [o for o in openings_of(context_of(two, "mon1.prod")) if o.port == 9094]
    assert {(o.protocol, o.sources) for o in openings} == {("tcp", ("10.9.0.12",)), ("udp", ("10.9.0.12",))}
    assert not [o for o in openings_of(context_of(one, "mon1.prod")) if o.port == 9094]


def test_each_alertmanager_admits_both_prometheus_and_both_grafanas_by_certificate(two):
    """TLS with two monitoring hosts: every Prometheus pushes to every Alertmanager, so each
    Alertmanager's web config (as the role ships it) admits both Prometheus; gossip is not TLS."""
    prometheus = [identity_uri("prod", mon, "prometheus") for mon in ("mon1.prod", "mon2.prod")]
    grafana = [identity_uri("prod", mon, "grafana") for mon in ("mon1.prod", "mon2.prod")]
    for me in ("mon1.prod", "mon2.prod"):
        spec = host_service_spec(context_of(two, me, GOOD_SECRETS))
        (web,) = [c for c in spec.configs if c.dest == ALERTMANAGER_TLS.web_config]
        allowed = yaml.safe_load(web.content)["tls_server_config"]["client_allowed_sans"]
        assert set(prometheus + grafana) <= set(allowed), allowed
        # The other Alertmanager is a gossip peer, not an API client: not admitted on the web port.
        other = "mon2.prod" if me == "mon1.prod" else "mon1.prod"
        assert identity_uri("prod", other, "alertmanager") not in allowed
        assert identity_uri("prod", "app1.prod", "node_exporter") not in allowed


def test_every_node_exporter_and_prometheus_admit_both_prometheus(two):
    """Both Prometheus scrape every node_exporter and each other: mon2's is admitted wherever mon1's is."""
    mon2 = identity_uri("prod", "mon2.prod", "prometheus")
    for host in ("mon1.prod", "mon2.prod", "tel1.prod", "app1.prod"):
        allowed = allowed_clients(two.topology, host, "node_exporter.metrics")
        assert mon2 in allowed and identity_uri("prod", "mon1.prod", "prometheus") in allowed, (host, allowed)
    assert mon2 in allowed_clients(two.topology, "mon1.prod", "prometheus.web")
    assert identity_uri("prod", "mon1.prod", "prometheus") in allowed_clients(two.topology, "mon2.prod", "prometheus.web")


# --- Prometheus ---------------------------------------------------------------------------------


def test_one_prometheus_has_no_replica_label_and_no_relabeling(one):
    config = prometheus_yml(one, "mon1.prod")
    assert config["global"]["external_labels"] == {"environment": "prod"}
    assert "alert_relabel_configs" not in config["alerting"]
    assert pushes_to(config) == ["mon1.prod:9093"]


def test_a_pair_differs_only_by_the_replica_label_which_alerts_drop(two):
    first, second = prometheus_yml(two, "mon1.prod"), prometheus_yml(two, "mon2.prod")
    assert first["global"]["external_labels"] == {"environment": "prod", REPLICA_LABEL: "mon1.prod"}
    assert second["global"]["external_labels"][REPLICA_LABEL] == "mon2.prod"
    second["global"]["external_labels"][REPLICA_LABEL] = "mon1.prod"
    assert first == second  # the same scrape jobs, rules and Alertmanagers on both
    assert first["alerting"]["alert_relabel_configs"] == [{"action": "labeldrop", "regex": REPLICA_LABEL}]
    # Each Prometheus sends to every Alertmanager directly, and scrapes both Prometheus (each watches the other).
    assert pushes_to(first) == ["mon1.prod:9093", "mon2.prod:9093"]
    scraped = {job["job_name"]: [c["targets"][0] for c in job["static_configs"]] for job in first["scrape_configs"]}
    assert scraped["prometheus"] == ["mon1.prod:9090", "mon2.prod:9090"]
    assert scraped["alertmanager"] == ["mon1.prod:9093", "mon2.prod:9093"]


def test_promtool_accepts_the_pair_s_config(two, tmp_path):
    promtool = extract("prometheus", "promtool", tmp_path)
    path = tmp_path / "prometheus.yml"
    # The tls_config's files must exist for promtool: a CA, certificate and key under tmp_path.
    path.write_text(host_config(context_of(two, "mon2.prod"), tls_on_disk(tmp_path, "prometheus", "mon2.prod")))
    result = subprocess.run([promtool, "check", "config", path], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_replica_and_environment_labels_are_refused_in_group_data(tmp_path):
    from roles.preflight import check_environment

    body = inventory(2).replace('"ip": "10.9.0.11"', '"ip": "10.9.0.11", "prometheus": {"external_labels": {"replica": "a"}}')
    with pytest.raises(Exception, match="replica is set by the toolkit"):
        check_environment(environment(tmp_path, "prod", body))
