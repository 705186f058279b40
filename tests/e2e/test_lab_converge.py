"""The lab converges from nothing, then again with no change, and refuses bad artifacts and configs."""

import hashlib
import json
import shutil
import time

import pytest

from lab import paths
from tests import lab_session
from tests.stack import hosts_in, stack_hosts

pytestmark = pytest.mark.lab


def test_first_converge_succeeds(first_converge):
    assert first_converge.returncode == 0, first_converge.output[-5000:]
    assert set(first_converge.changed) == {h.name for h in stack_hosts()}
    assert all(n > 0 for n in first_converge.changed.values())


def test_second_converge_changes_nothing(first_converge):
    assert first_converge.returncode == 0
    second = lab_session.converge()
    assert second.returncode == 0, second.output[-5000:]
    assert second.changed == {h.name: 0 for h in stack_hosts()}, second.output[-5000:]


def _prometheus_state(mon):
    pid = mon.testinfra.check_output("systemctl show -p MainPID --value prometheus")
    sha = mon.testinfra.check_output("sha256sum /etc/prometheus/prometheus.yml | cut -d' ' -f1")
    return pid, sha


def test_config_change_reloads_without_restart(first_converge):
    mon = hosts_in("monitoring")[0]
    pid_before, sha_before = _prometheus_state(mon)
    changed = {**lab_session.lab_group_data()["prometheus"], "scrape_interval": "7s"}
    try:
        run = lab_session.converge("--limit", mon.name, "--data", f"prometheus={json.dumps(changed)}")
        assert run.returncode == 0, run.output[-5000:]
        pid_after, sha_after = _prometheus_state(mon)
        assert sha_after != sha_before
        assert pid_after == pid_before, "a config change must reload, not restart"
        config = json.loads(mon.curl(mon.local("prometheus.web", "/api/v1/status/config")))["data"]["yaml"]
        assert "scrape_interval: 7s" in config
    finally:
        restore = lab_session.converge("--limit", mon.name)
        assert restore.returncode == 0, restore.output[-5000:]
    assert _prometheus_state(mon) == (pid_before, sha_before)


def test_broken_config_is_refused_and_prometheus_keeps_serving(first_converge):
    mon = hosts_in("monitoring")[0]
    pid_before, sha_before = _prometheus_state(mon)
    run = lab_session.pyinfra("inventory/lab.py", "--limit", mon.name, "tests/e2e/deploys/broken_prometheus_config.py")
    assert run.returncode != 0
    assert "refused /etc/prometheus/prometheus.yml" in run.output
    assert _prometheus_state(mon) == (pid_before, sha_before)
    assert not mon.testinfra.file("/etc/prometheus/prometheus.yml.staged").exists
    mon.curl(mon.local("prometheus.web", "/-/ready"))


@pytest.fixture
def corrupted_mirror():
    """A copy of the node_exporter release whose archive no longer matches its checksums file."""
    from roles._service.artifacts import resolve

    good = resolve("node_exporter", paths.MIRROR_URL)
    relative = good.url.removeprefix(paths.MIRROR_URL + "/")
    source = paths.MIRROR_DIR / relative
    target = paths.MIRROR_DIR / "corrupt" / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source.parent / "sha256sums.txt", target.parent / "sha256sums.txt")
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    assert hashlib.sha256(data).hexdigest() != good.sha256
    yield f"{paths.MIRROR_URL}/corrupt"
    shutil.rmtree(paths.MIRROR_DIR / "corrupt")


def test_corrupted_artifact_fails_with_a_checksum_error(first_converge, corrupted_mirror):
    app = hosts_in("app")[0]
    run = lab_session.pyinfra(
        "inventory/lab.py", "--limit", app.name, "tests/e2e/deploys/corrupted_artifact.py", env={"CORRUPT_BASE_URL": corrupted_mirror}
    )
    assert run.returncode != 0
    assert "checksum mismatch" in run.output
    assert not app.testinfra.file("/opt/corruption-test/1").exists
    assert not app.testinfra.file("/opt/corruption-test/1.new").exists


def test_prometheus_scrapes_every_node_and_the_backend(first_converge):
    mon = hosts_in("monitoring")[0]
    expected = {(job, h.name) for h in stack_hosts() for job in ["node"]}
    expected |= {("sentinel-backend", h.name) for h in hosts_in("app")}
    deadline = time.time() + 60
    while True:
        targets = json.loads(mon.curl(mon.local("prometheus.web", "/api/v1/targets")))["data"]["activeTargets"]
        up = {(t["labels"]["job"], t["labels"]["host"]) for t in targets if t["health"] == "up"}
        if expected <= up or time.time() > deadline:
            break
        time.sleep(3)
    assert expected <= up, f"not up: {expected - up}"
