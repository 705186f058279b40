"""The log store cluster (issue 26, stores.mode scalable): one storage node stopped under a bounded load.

The lab runs a VictoriaLogs storage node and an access tier on tel1 and tel2 (group_data/lab.py `stores`,
docs/architecture.md "The log store cluster"); each host's gateway writes through its own front to its
access tier, which spreads the streams over both nodes. The drill, on app1 as the backend would load it:
3,000 contract-shaped lines (four levels, so four streams) appended to the backend's log at a fixed rate;
a few seconds in, tel2's storage node is stopped (`systemctl stop victorialogs`) and stays down. Measured
while it is down, through tel1's front (stores.host's: Grafana's and the erasure command's):

- ingestion goes on: every line written after the stop is stored (on tel1's node), none twice;
- a query as Grafana sends it never gets a complete answer (`-search.allowPartialResponse` is off): a count fails
  with HTTP 502, a query for rows is cut (200 and a broken body, or the connection closed); one that asks for a
  partial response (`allow_partial_response=1`) answers from tel1's node alone, with no mark that it is partial;
- tel2's node's data is not there: the lines it held before the stop are missing from that partial answer.

Then the node is started again: every line is stored exactly once, and the lines missing during the outage are
exactly those tel2's node held (none written after the stop).
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import time
import uuid

import pytest
import requests

from lab import operator_tls
from lab.hosts import ssh_argv
from tests.e2e.test_logs import wait_for
from tests.stack import hosts_in

pytestmark = [pytest.mark.lab, pytest.mark.ha, pytest.mark.retention]

LINES, RATE = 3000, 150  # bounded: 20 s of appends
STOP_AFTER_S = 5
DELIVERY_DEADLINE_S = 180
LEVELS = ("info", "warn", "error", "debug")  # contract levels (docs/contract.md section 4): one stream each

# Appends LINES contract-shaped JSON lines to the backend's log, as it would; the level cycles (a stream each).
WRITER = """
import datetime, json, sys, time
run, lines, rate, path, levels = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5].split(",")
with open(path, "a", buffering=1) as log:
    for seq in range(lines):
        ts = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        log.write(json.dumps({"ts": ts, "level": levels[seq % len(levels)], "msg": "store cluster drill", "service": "sentinel-backend",
                              "env": "lab", "stream": "app", "testRun": run, "seq": seq}, separators=(",", ":")) + "\\n")
        time.sleep(1 / rate)
"""


@pytest.fixture(scope="module")
def cluster(first_converge):
    assert first_converge.returncode == 0, first_converge.output[-3000:]
    telemetry = hosts_in("telemetry")
    nodes = [h for h in telemetry if h.has("victorialogs.access")]
    if len(nodes) < 2:
        pytest.skip("the log store is not scaled out (stores.mode single): no cluster to drill")
    stores = next(h for h in nodes if h.settings.stores.host == h.name)
    stopped = next(h for h in nodes if h.name != stores.name)
    return stores, stopped, hosts_in("app")[0]


def _front(host) -> str:
    listener = host.topology.listener(host.name, "victorialogs.http")
    return f"https://{listener.address}:{listener.port}"


def _select(store: str, logsql: str, partial: bool = False, limit: int = 2 * LINES) -> requests.Response:
    """A query as Grafana sends it (the operator's certificate: the front admits it to /select/), optionally asking
    for a partial response."""
    params = {"allow_partial_response": "1"} if partial else {}
    return requests.post(f"{store}/select/logsql/query", params=params, data={"query": logsql, "limit": str(limit)},
                         timeout=60, **operator_tls.operator_kwargs())


def _whole(store: str, logsql: str) -> tuple[int, str, float]:
    """A query without a partial response, as Grafana sends it, read to its end: (status, what came, seconds).
    A query that streams rows answers 200 with the rows of the nodes that are up and is then cut (the pinned
    vlselect writes its headers with the first rows, app/vlselect/logsql); a stats query answers 502."""
    began = time.monotonic()
    try:
        with requests.post(f"{store}/select/logsql/query", data={"query": logsql, "limit": str(2 * LINES)}, timeout=60, stream=True,
                           **operator_tls.operator_kwargs()) as response:
            read: list[bytes] = []
            try:
                for line in response.iter_lines():
                    if line.strip():
                        read.append(line)
            except requests.exceptions.ChunkedEncodingError:
                return response.status_code, f"cut after {len(read)} lines", time.monotonic() - began
            answer = f"complete, {len(read)} lines" if response.ok else b" ".join(read).decode(errors="replace")[:160]
            return response.status_code, answer, time.monotonic() - began
    except requests.exceptions.ConnectionError as e:
        return 0, f"connection error: {e}", time.monotonic() - began


def _seqs(response: requests.Response) -> list[int]:
    response.raise_for_status()
    return [int(json.loads(line)["seq"]) for line in response.text.splitlines() if line.strip()]


def _writer(app, run: str) -> subprocess.Popen:
    path = app.settings.otel_collector.log_file
    command = f"python3 -c {shlex.quote(WRITER)} {run} {LINES} {RATE} {shlex.quote(path)} {','.join(LEVELS)}"
    return subprocess.Popen(ssh_argv(app.name, command), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _node_active(host) -> bool:
    return host.testinfra.run("systemctl is-active victorialogs").stdout.strip() == "active"


def test_one_storage_node_stopped_under_load_ingestion_goes_on_and_its_data_comes_back(cluster):
    stores, stopped, app = cluster
    store, run = _front(stores), f"vlc-{uuid.uuid4().hex[:10]}"
    logsql = f'testRun:="{run}" | fields seq'
    began = time.monotonic()
    writer = _writer(app, run)
    try:
        time.sleep(STOP_AFTER_S)
        stopped.testinfra.check_output("systemctl stop victorialogs")
        # No line written after this point can have reached the stopped node: the writer appends at most RATE a
        # second from its start (later than `began`), and a line reaches a node only after it is written.
        last_before_stop = math.ceil((time.monotonic() - began) * RATE)
        stopped_at = time.monotonic()
        assert writer.wait(timeout=120) == 0, writer.stderr.read()

        # While the node is down: every line written after the stop is stored on the other node, none twice.
        after_stop = set(range(last_before_stop + 1, LINES))
        wait_for("every line written after the stop", lambda: after_stop <= set(_seqs(_select(store, logsql, partial=True))),
                 DELIVERY_DEADLINE_S, 3)
        time.sleep(5)  # a late duplicate would show now
        partial = _seqs(_select(store, logsql, partial=True))
        rows_status, rows_answer, rows_s = _whole(store, logsql)
        stats_status, stats_answer, stats_s = _whole(store, f'testRun:="{run}" | stats count() rows')
        assert not _node_active(stopped), f"{stopped.name}'s storage node came back during the count"
        down_for = time.monotonic() - stopped_at
    finally:
        # A deliberate start is no crash: the unit's start counter (5 in 10 minutes, then it stays down) is cleared
        # first, or a few runs of the drill in a row would leave the node down.
        stopped.testinfra.run("systemctl reset-failed victorialogs.service")
        stopped.testinfra.check_output("systemctl start victorialogs")
        if writer.poll() is None:
            writer.kill()

    # Back: every line once; what was missing during the outage is what the stopped node held.
    units_ready = wait_for(f"{stopped.name}'s node answering", lambda: _node_active(stopped) and _select(store, f'testRun:="{run}" | limit 1').ok, 60, 2)
    assert units_ready
    wait_for(f"{LINES} lines back", lambda: len(set(_seqs(_select(store, logsql)))) >= LINES, 60, 3)
    final = _seqs(_select(store, logsql))
    held_by_stopped = set(final) - set(partial)

    print(f"{stopped.name}'s storage node stopped {STOP_AFTER_S} s in (after line ~{last_before_stop}), down {down_for:.0f} s; "
          f"during the outage: partial query {len(partial)} lines ({len(partial) - len(set(partial))} twice), "
          f"whole queries: rows HTTP {rows_status} {rows_answer} in {rows_s:.2f} s, stats HTTP {stats_status} in {stats_s:.2f} s "
          f"({stats_answer!r}); "
          f"after: {len(final)} lines stored ({len(final) - len(set(final))} twice), {len(held_by_stopped)} of them "
          f"held by {stopped.name}'s node (invisible during the outage, highest seq {max(held_by_stopped, default=-1)})")
    # During the outage.
    assert after_stop <= set(partial), f"{len(after_stop - set(partial))} lines written after the stop were not stored"
    assert len(partial) == len(set(partial)), f"{len(partial) - len(set(partial))} lines stored twice during the outage"
    # A query that does not ask for a partial answer never gets a complete one (documented): a count is refused,
    # rows stream from the node that is up and the answer is then cut.
    assert stats_status == 502, f"a count during the outage answered {stats_status} {stats_answer}, not 502"
    assert not rows_answer.startswith("complete"), f"a query during the outage got a complete answer: {rows_status} {rows_answer}"
    # After.
    assert sorted(set(final)) == list(range(LINES)), f"lines: sent {LINES}, stored {len(set(final))} distinct"
    assert len(final) == len(set(final)), f"{len(final) - len(set(final))} lines stored twice"
    assert held_by_stopped and max(held_by_stopped) <= last_before_stop, (
        f"the lines missing during the outage should be the stopped node's, all written before the stop: {sorted(held_by_stopped)[:20]}")


def test_a_node_s_cluster_api_answers_the_access_tiers_only(cluster):
    """/internal/* of a storage node, through its front: the access tiers' identities get in, the gateway's, the
    operator's (beyond its force flush) and Grafana's are refused (docs/tls.md "The stores")."""
    from tests.e2e.test_logs import identity

    stores, stopped, _ = cluster
    front = _front(stopped)
    ask = {"data": b"", "timeout": 30}
    for host, component, expected in ((stores.name, "victorialogs_access", True), (stopped.name, "victorialogs_access", True),
                                      (stores.name, "gateway", False), ("mon1", "grafana", False), (None, "operator", False)):
        status = requests.post(f"{front}/internal/select/field_names?version=v1", **ask, **identity(host, component)).status_code
        assert (status != 403) == expected, f"{host}.{component} on {stopped.name}'s /internal/select/: {status}"
    status = requests.post(f"{front}/internal/insert?version=v1", **ask, **identity(stores.name, "gateway")).status_code
    assert status == 403, f"the gateway's certificate wrote to a node's /internal/insert: {status}"
