"""The building block's rendering: hardened units and configs the real checker accepts."""

import subprocess

import yaml

from roles._environment import host_settings as build
from roles._service import unit_file
from roles.node_exporter import service_spec as node_exporter_spec
from roles.prometheus import ScrapeJob, Target, render_config, scrape_jobs, service_spec as prometheus_spec
from tests.environments import environment_of_hosts
from tests.mirror_binaries import extract

LAB = {"artifact_base_url": "http://10.213.0.1:8080", "firewall": {"admin_networks": ["10.213.0.1/32"]}}


def host(name, groups, data=None):
    return name, build(name, list(groups) + ["lab"], {**LAB, "address": f"10.0.0.{len(name)}", **(data or {})})


def unit_for(spec, hardening=True):
    return unit_file(spec, hardening)


def test_prometheus_unit_is_hardened_and_reloads_with_sighup():
    _, settings = host("mon1", ["monitoring"])
    unit = unit_for(prometheus_spec(settings, "config"))
    assert "ExecStart=/opt/prometheus/current/prometheus \\\n    --config.file=/etc/prometheus/prometheus.yml" in unit
    assert "--storage.tsdb.retention.time=15d" in unit
    assert "--web.enable-remote-write-receiver" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    for directive in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/prometheus", "User=prometheus"):
        assert directive in unit
    assert "CapabilityBoundingSet=\n" in unit  # no capabilities at all


def test_hardening_can_be_switched_off():
    _, settings = host("mon1", ["monitoring"])
    assert "ProtectSystem" not in unit_for(prometheus_spec(settings, "config"), hardening=False)


def test_retention_size_flag_only_when_set():
    _, settings = host("mon1", ["monitoring"], {"retention": {"prometheus": {"time": "15d", "size": "10GB"}}})
    assert "--storage.tsdb.retention.size=10GB" in prometheus_spec(settings, "").exec_start
    _, settings = host("mon1", ["monitoring"])
    assert not any("retention.size" in a for a in prometheus_spec(settings, "").exec_start)


def test_node_exporter_may_use_netlink_and_has_no_config():
    _, settings = host("app1", ["app"])
    spec = node_exporter_spec(settings, "10.0.0.4:9100")
    assert spec.configs == () and "--web.listen-address=10.0.0.4:9100" in spec.exec_start
    assert "AF_NETLINK" in unit_for(spec)


def test_scrape_jobs_follow_the_inventory():
    mon = host("mon1", ["monitoring"])
    app_a, app_b = host("app1", ["app"]), host("app22", ["app"], {"backend": {"port": 4000}, "address": "10.0.0.5"})
    tel = host("tel1", ["telemetry"], {"address": "10.0.0.9"})
    topology = environment_of_hosts(*((n, g, s) for (n, s), g in ((mon, ["monitoring"]), (app_a, ["app"]), (app_b, ["app"]), (tel, ["telemetry"])))).topology
    jobs = {job.name: job for job in scrape_jobs(topology, mon[1])}
    assert jobs["prometheus"].targets == (Target("mon1", "10.0.0.4:9090"),)
    assert jobs["sentinel-backend"].targets == (Target("app1", "10.0.0.4:3000"), Target("app22", "10.0.0.5:4000"))
    assert [t.host for t in jobs["node"].targets] == ["app1", "app22", "mon1", "tel1"]
    assert jobs["grafana"].targets == (Target("mon1", "10.0.0.4:3000"),)


def test_no_grafana_job_where_only_grafanas_files_are_installed():
    mon = host("mon1", ["monitoring"], {"grafana": {"install_binary": False}})
    topology = environment_of_hosts(("mon1", ["monitoring"], mon[1])).topology
    assert "grafana" not in {job.name for job in scrape_jobs(topology, mon[1])}


def _promtool(tmp_path):
    return extract("prometheus", "promtool", tmp_path)


def test_rendered_config_passes_promtool(tmp_path):
    mon = host("mon1", ["monitoring"], {"prometheus": {"external_labels": {"region": "ca-central"}}})
    jobs = [ScrapeJob("prometheus", (Target("mon1", "10.0.0.4:9090"),)), ScrapeJob("sentinel-backend", (), "/custom")]
    config = tmp_path / "prometheus.yml"
    config.write_text(render_config(mon[1], jobs))
    result = subprocess.run([_promtool(tmp_path), "check", "config", config], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "metrics_path: /custom" in config.read_text()
    assert yaml.safe_load(config.read_text())["global"]["external_labels"]["region"] == "ca-central"


def test_promtool_refuses_a_broken_config(tmp_path):
    """Guards the validate-then-swap step: the checker the role relies on does refuse."""
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: soon\n")
    assert subprocess.run([_promtool(tmp_path), "check", "config", config], capture_output=True).returncode != 0
