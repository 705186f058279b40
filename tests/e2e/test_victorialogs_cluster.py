"""The lab's log store is a VictoriaLogs cluster (stores.mode scalable, roles/victorialogs/cluster.py): a storage node
and an access tier on tel1 and on tel2. Stop one storage node under load, for real (systemctl stop, then a SIGKILL):
ingestion goes on, and the figures of what the outage does to that node's lines and to queries are printed.

The load is the crash drills' (tests/e2e/test_crash.py): JSON lines appended to the backend's log on the app host,
tailed by the agent, balanced over both gateways, each writing to its own host's storage node. Queries go through
tel1's access tier, which asks both nodes. Traffic goes only to lab hosts.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests

from lab import operator_tls
from tests.e2e import units
from tests.e2e.test_crash import LINES, _drill, _lines_missing, _store_url, _writer, stack  # noqa: F401 (the fixture)
from tests.e2e.test_logs import count, wait_for
from tests.stack import hosts_in

pytestmark = [pytest.mark.lab, pytest.mark.ha]


def _partial_count(store: str, logsql: str) -> int:
    """The count the reachable storage nodes give (VictoriaLogs' `allow_partial_response`)."""
    response = requests.post(f"{store}/select/logsql/query", timeout=30, **operator_tls.operator_kwargs(),
                             data={"query": f"{logsql} | stats count() rows", "allow_partial_response": "1"})
    response.raise_for_status()
    rows = [line for line in response.text.splitlines() if line.strip()]
    return int(json.loads(rows[0])["rows"]) if rows else 0


def _ingested_rows(host) -> float:
    """Rows the storage node on `host` took in since it started (its own /metrics, on the host)."""
    text = host.testinfra.check_output("curl -fsS %s", host.local("victorialogs.local", "/metrics"))
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("vl_rows_ingested_total"))


@pytest.fixture(scope="module")
def cluster(stack):
    tels = hosts_in("telemetry")
    assert len(tels) == 2, "the lab's cluster needs two telemetry hosts"
    for tel in tels:
        assert tel.settings.stores.mode == "scalable", "group_data/lab.py runs the stores scalable"
        assert tel.testinfra.service("victorialogs-access").is_running and tel.testinfra.service("victorialogs").is_running
    return tels


def test_each_storage_node_takes_part_of_the_lines(cluster, stack):
    """Each gateway writes to its own host's storage node, so both take part, and a query through one front finds them all."""
    before = {tel.name: _ingested_rows(tel) for tel in cluster}
    run = f"cluster-spread-{uuid.uuid4().hex[:10]}"
    writer = _writer(stack[1], run)
    assert writer.wait(timeout=120) == 0, writer.stderr.read()
    assert _lines_missing(stack, run, None) == ""
    taken = {tel.name: _ingested_rows(tel) - before[tel.name] for tel in cluster}
    print(f"rows each storage node took in: {taken}")
    assert all(rows > 0 for rows in taken.values()), taken


def test_stopping_one_storage_node_under_load_loses_no_line(cluster, stack):
    """tel2's storage node stops 5 s into the load and starts again once the load is over. Meanwhile tel1's gateway
    writes on to tel1's node and tel2's gateway holds its lines in its disk queue; a query without
    `allow_partial_response` fails, with it counts the lines the reachable node holds. Once tel2's node is back,
    every line is stored, none twice."""
    tel1, tel2 = cluster
    store = _store_url(tel1)
    run = f"cluster-stop-{uuid.uuid4().hex[:10]}"
    logsql = f'testRun:="{run}"'
    started = time.monotonic()
    writer = _writer(stack[1], run)
    try:
        time.sleep(5)
        before_stop = count(store, logsql)
        tel2.testinfra.check_output("systemctl stop victorialogs")
        stopped = time.monotonic()
        # Queries while it is down: the default refuses to answer without tel2's lines.
        refused = requests.post(f"{store}/select/logsql/query", timeout=60, **operator_tls.operator_kwargs(),
                                data={"query": f"{logsql} | stats count() rows"})
        partial_at_stop = _partial_count(store, logsql)
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
        # Ingestion goes on: the reachable node's count grows while tel2's is stopped (tel1's gateway's lines).
        grown = wait_for("the lines sent during the outage on tel1's node", lambda: (n := _partial_count(store, logsql)) > partial_at_stop and n, 120, 3)
        time.sleep(10)
        partial_after_load = _partial_count(store, logsql)
    finally:
        # A deliberate start, not a crash: the unit's start limit (StartLimitBurst) is no business of this test's.
        tel2.testinfra.check_output("systemctl reset-failed victorialogs; systemctl start victorialogs")
    outage = time.monotonic() - stopped
    wait_for("tel2's storage node back", lambda: tel2.testinfra.run("curl -fsS -o /dev/null %s", tel2.local("victorialogs.local", "/health")).rc == 0, 60)
    problem = _lines_missing(stack, run, None)
    print(f"storage node stop: {before_stop} lines stored before it; a query without partial responses got HTTP "
          f"{refused.status_code} ({refused.text.strip()[:160]!r}); with them {partial_at_stop} at the stop and "
          f"{partial_after_load} of {LINES} once the load was over (tel1's node's lines: tel2's node held its gateway's "
          f"lines before the stop, its gateway's queue those after); the node was down {outage:.0f} s; {time.monotonic() - started:.0f} s from the first line to the last count")
    assert refused.status_code == 502 and "cannot connect to storage node" in refused.text, "a query answered without the stopped node's lines"
    # The front closes the connection of a node that is down: the access tier counts it unreachable, and a partial
    # query answers from the other node (with a 502 from the front it answered 0 rows: roles/_front.py down_closes).
    assert 0 < partial_at_stop < grown <= LINES
    assert problem == "", problem


def test_a_sigkilled_storage_node_keeps_what_it_flushed_and_the_rest_is_rerouted(cluster, stack):
    """tel2's storage node killed with SIGKILL 5 s into the load (systemd brings it back): every line the cluster
    held a few flush intervals before is still there, none twice, and tel2's gateway resends what the node refused
    meanwhile. What tel2 had acknowledged and not yet written is the one loss, printed."""
    tel1, tel2 = cluster

    def crash(tel, app):
        pid = units.sigkill(tel2, "victorialogs")
        units.wait_restarted(tel2, "victorialogs", pid, tel2.local("victorialogs.local", "/health"))

    _drill(stack, "cluster-storage-node", crash, store_crashes=True)


def test_the_retention_job_runs_once_for_the_cluster(cluster):
    """One delete through an access tier reaches every storage node: the timer runs on stores.host (tel1) alone."""
    by_host = {tel.name: tel.testinfra.run("systemctl is-enabled victorialogs-retention.timer").stdout.strip() for tel in cluster}
    assert by_host == {"tel1": "enabled", "tel2": "disabled"}, by_host
