"""Where the lab keeps things, and how its network is laid out.

Everything heavy lives in a cache outside the repository so that it survives
`git clean` and fresh clones: the base image, Go caches, built artifacts.
"""

import os
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("SENTINEL_LAB_CACHE", "/var/cache/sentinel-lab"))

MIRROR_DIR = CACHE / "mirror"  # served over HTTP as the lab's "release download" site
WHEELS_DIR = MIRROR_DIR / "wheels"  # Python wheels for the stand-in backend
BUILD_DIR = CACHE / "build"  # Go wrapper modules, GOMODCACHE, GOCACHE
IMAGE_DIR = CACHE / "image"  # cached base rootfs tarball
HOSTS_DIR = CACHE / "hosts"  # one rootfs per running lab host
RUN_DIR = CACHE / "run"  # pid files and logs of lab daemons
SSH_DIR = CACHE / "ssh"  # the lab's SSH key pair

VERSIONS_FILE = REPO / "files" / "versions.yml"
LAB_INVENTORY = REPO / "inventory" / "lab.py"

# The lab network: one bridge in the root namespace, one namespace per host.
BRIDGE = "sentinel0"
BRIDGE_IP = "10.213.0.1"
PREFIX_LEN = 24
MIRROR_PORT = 8080
PROXY_PORT = 8888  # tinyproxy, for apt and pip inside the hosts
MIRROR_URL = f"http://{BRIDGE_IP}:{MIRROR_PORT}"
# Stand-ins for the alert receivers (lab/receivers), on the bridge IP.
SLACK_STANDIN_PORT = 9101
PAGERDUTY_STANDIN_PORT = 9102
SMTP_STANDIN_PORT = 2525
SMTP_STANDIN_HTTP_PORT = 9103  # the SMTP stand-in's /api/received
HEARTBEAT_STANDIN_PORT = 9104  # the dead man's switch stand-in (lab/receivers/heartbeat.py)
# Its check: a ping expected every period, paged after period + grace of silence. As an
# operator sets a real one: period 2 x and grace 1 x alerting.heartbeat.repeat_interval
# (group_data/lab.py: 10s).
HEARTBEAT_PERIOD_SECONDS, HEARTBEAT_GRACE_SECONDS = 20, 10
# The Grafana HTTP API STAND-IN (lab/receivers/grafana_api.py), for the backup job's tests only.
GRAFANA_API_STANDIN_PORT = 9110


class LabHost(NamedTuple):
    address: str
    groups: list[str]
    suite: str  # the Debian release it boots (lab/image.py builds one image per suite)


# The Debian releases the lab tests, oldest first, and the Python each ships as python3:
# the lab mirror's wheelhouse serves wheels for the Pythons of the suites its hosts run.
SUITE_PYTHON = {"bookworm": "3.11", "trixie": "3.13"}
SUITES = tuple(SUITE_PYTHON)

# name -> LabHost. Mirrors a small prod layout. Half the hosts run Debian 13 (trixie) and
# half Debian 12, so that every role converges and is tested on both: each pair has one
# of each (mon1 12, mon2 13), and app1 is 13 because the Node backend's @sentry/node
# needs Node >= 20.19, which Debian 12 (Node 18) lacks.
HOSTS = {
    "mon1": LabHost("10.213.0.11", ["monitoring"], "bookworm"),
    # The second monitoring host: the Alertmanager cluster and the Prometheus pair (docs/alerting.md "Two monitoring hosts").
    "mon2": LabHost("10.213.0.14", ["monitoring"], "trixie"),
    "tel1": LabHost("10.213.0.12", ["telemetry"], "bookworm"),
    # The second telemetry host: a second collector gateway in the pool the agents balance over
    # (docs/architecture.md "The gateway pool"); the stores stay on tel1 (group_data/lab.py `stores`).
    "tel2": LabHost("10.213.0.15", ["telemetry"], "trixie"),
    "app1": LabHost("10.213.0.13", ["app"], "trixie"),
}

# The intruder: a bare network namespace on the bridge, in no inventory group and in
# no admin network. It runs nothing; the topology tests connect from it as "anyone on
# the network" would (tests/e2e/test_topology.py).
INTRUDER = "intruder"
INTRUDER_IP = "10.213.0.66"

# The lab's SSH identity (generated once) and the ssh_config written by `up`
# so that ssh, testinfra and humans can say `mon1` instead of an address.
SSH_KEY = SSH_DIR / "id_ed25519"
SSH_CONFIG = RUN_DIR / "ssh_config"
