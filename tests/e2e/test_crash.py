"""Crashes, not polite stops: processes killed with SIGKILL, a host powered off, under load; nothing lost.

The lab's backend log on the app host gets JSON lines appended at a bounded rate (3,000 at about
150 lines/s, each with its run id and sequence number), and for the drills that involve the trace
path an OpenTelemetry SDK sends spans to the gateway at a bounded rate (400 traces of 3 spans at
20 traces/s, the run id as service name), while the agent, the gateway, the stores or the whole
telemetry host are killed (systemd brings a killed unit back: Restart=always). Then what is stored
is counted against what was sent: every line stored, none twice; every span whose batch the gateway
acknowledged is in Jaeger. The alert drill kills Alertmanager and Prometheus around a critical
alert and counts the notifications the receiver stand-ins got. Traffic goes only to lab hosts.
"""

from __future__ import annotations

import shlex
import subprocess
import threading
import time
import uuid
from datetime import datetime, timezone

import pytest
import requests

from lab import hosts as lab_hosts, operator_tls
from lab.alert_drills import pagerduty_events, slack_alerts
from lab.hosts import ssh_argv
from roles._model import duration_seconds
from roles.alertmanager import DATA_DIR as ALERTMANAGER_DATA, SNAPSHOT_INTERVAL
from roles.victorialogs import FLUSH_INTERVAL as VICTORIALOGS_FLUSH_INTERVAL
from tests.e2e import units
from tests.e2e.test_alerting import ALERTS, _start_clean
from tests.e2e.test_logs import count, query, wait_for
from tests.e2e.tracing_load import send_traces, stored_span_ids, until
from tests.stack import hosts_in, reconnected

pytestmark = [pytest.mark.lab, pytest.mark.crash]

LINES, RATE = 3000, 150  # bounded: 20 s of appends
TRACES, TRACE_RATE = 400, 20.0  # bounded: 1,200 spans over the same 20 s
SPANS_PER_TRACE = 3
DELIVERY_DEADLINE_S = 240  # the queues' retries back off to 30 s, then drain

# Appends LINES contract-shaped JSON lines (docs/contract.md section 4) to the backend's log, as it would.
WRITER = """
import datetime, json, sys, time
run, lines, rate, path = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
with open(path, "a", buffering=1) as log:
    for seq in range(lines):
        ts = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        log.write(json.dumps({"ts": ts, "level": "info", "msg": "crash drill", "service": "sentinel-backend", "env": "lab",
                              "stream": "app", "testRun": run, "seq": seq}, separators=(",", ":")) + "\\n")
        time.sleep(1 / rate)
"""


@pytest.fixture(scope="module")
def stack(first_converge):
    assert first_converge.returncode == 0, first_converge.output[-3000:]
    return hosts_in("telemetry")[0], hosts_in("app")[0]


def _writer(app, run: str) -> subprocess.Popen:
    path = app.settings.otel_collector.log_file
    command = f"python3 -c {shlex.quote(WRITER)} {run} {LINES} {RATE} {shlex.quote(path)}"
    return subprocess.Popen(ssh_argv(app.name, command), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


class _SpanSender(threading.Thread):
    """The tracing load helper in the background: TRACES traces to the gateway, counting what it acknowledged."""

    def __init__(self, tel, run: str):
        super().__init__(daemon=True)
        self.gateway = f"https://{tel.settings.address}:{tel.settings.otel_collector.http_port}"  # the operator's certificate
        self.run_id, self.sent = run, None

    def run(self):
        self.sent = send_traces(self.gateway, self.run_id, TRACES, TRACE_RATE, SPANS_PER_TRACE, tls=operator_tls.operator_files())


def _back_after(host, pid: str) -> None:
    units.wait_restarted(host, "otelcol", pid, host.local("otelcol.health", "/"))


def _store_url(tel) -> str:
    # The store binds the host's IP; the controller may reach it (group_data/lab.py firewall.allow).
    listener = tel.topology.instances("victorialogs.http")[0]
    return f"https://{listener.address}:{listener.port}"  # the store's front: test_logs's helpers carry the certificates


def _queued(hosts) -> int:
    """Requests waiting in the collectors' sending queues (their own metric)."""
    total = 0
    for host in hosts:
        bind = next(l for l in host.topology.instances("otelcol.metrics") if l.host == host.name)
        metrics = requests.get(f"http://{bind.address}:{bind.port}/metrics", timeout=10).text
        total += sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith("otelcol_exporter_queue_size{"))
    return int(total)


def _settled(store: str, run: str, collectors) -> int:
    """The run's stored line count once delivery is over: every line there, or the queues empty and the count still.

    A batch in its retry back-off (30 s at most) is out of the queue, hence the 35 s of stillness.
    """
    logsql, seen = f'testRun:="{run}"', {}

    def over():
        now, stored = time.monotonic(), count(store, logsql)
        if stored >= LINES:
            return True
        if stored != seen.get("stored") or _queued(collectors):
            seen.update(stored=stored, since=now)
        return now - seen["since"] >= 35

    try:
        wait_for(f"{LINES} lines stored, or the delivery over", over, DELIVERY_DEADLINE_S, 3)
    except AssertionError:
        pass  # the count says how many are missing
    time.sleep(5)  # late duplicates would show now
    return count(store, logsql)


def _stored_seqs(store: str, run: str) -> list[int]:
    return [int(row["seq"]) for row in query(store, f'testRun:="{run}" | fields seq', limit=2 * LINES)]


def _held_seqs(store: str, run: str) -> set[int]:
    """The run's lines VictoriaLogs holds now: its force flush (buffered lines become searchable, still in
    memory), then their sequence numbers."""
    requests.get(f"{store}/internal/force_flush", timeout=30, **operator_tls.operator_kwargs()).raise_for_status()
    return set(_stored_seqs(store, run))


def _lines_missing(stack, run: str, held: set[int] | None) -> str:
    """'' when exactly LINES lines of the run are stored, else what is wrong.

    When the store itself crashed (`held`: the lines it held a few flush intervals before), it
    loses what it acknowledged since its last flush (docs/tracing.md): then every held line must
    still be there, none twice, and the loss is printed.
    """
    store = _store_url(stack[0])
    stored = _settled(store, run, stack)
    seqs = _stored_seqs(store, run) if stored else []
    duplicates = len(seqs) - len(set(seqs))
    missing = sorted(set(range(LINES)) - set(seqs))
    print(f"lines: sent {LINES}, stored {stored}, {duplicates} twice, missing {len(missing)}"
          + (f" (sequence numbers {missing[0]}..{missing[-1]}; {len(held)} held by the store before it)" if missing and held is not None else ""))
    if duplicates:
        return f"{duplicates} lines stored twice"
    if held is None:
        return f"sent {LINES} lines, stored {stored}" if missing else ""
    gone = held - set(seqs)
    return f"{len(gone)} lines the store held a flush interval before its crash are gone" if gone else ""


def _spans_missing(tel, sent) -> str:
    """'' when every span the gateway acknowledged is in Jaeger, else how many are not."""
    query = f"https://{tel.settings.address}:{tel.settings.traces.jaeger.query_port}"
    http = operator_tls.operator_session()
    http.trust_env = False

    def every_acknowledged_span():
        found = stored_span_ids(http, query, sent.trace_ids)
        return found if sent.acknowledged <= found else None

    stored = until(every_acknowledged_span, DELIVERY_DEADLINE_S, 10) or stored_span_ids(http, query, sent.trace_ids)
    missing = sent.acknowledged - stored
    print(f"spans: {len(sent.acknowledged)} acknowledged, {sent.refused_spans} refused, {len(stored)} stored")
    return f"{len(missing)} of {len(sent.acknowledged)} acknowledged spans not in Jaeger" if missing else ""


def _drill(stack, name: str, crash, spans: bool = False, store_crashes: bool = False) -> None:
    """Append the lines on the app host (and send spans), run `crash(tel, app)` meanwhile, then count stored against sent.

    `store_crashes`: the crash takes the log store down too. 5 s into the load the drill notes
    which lines the store holds, then waits until its own flush interval has written them to disk
    (it flushes in-memory data older than the interval, checked every interval): they must survive.
    """
    tel, app = stack
    run = f"crash-{name}-{uuid.uuid4().hex[:10]}"
    started = time.monotonic()
    writer = _writer(app, run)
    sender = _SpanSender(tel, run) if spans else None
    if sender:
        sender.start()
    held = None
    try:
        if store_crashes:
            time.sleep(5)
            held = _held_seqs(_store_url(tel), run)
            time.sleep(3 * duration_seconds(VICTORIALOGS_FLUSH_INTERVAL) + 1)
        crash(tel, app)
    finally:
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
        if sender:
            sender.join(timeout=120)
    problems = [_lines_missing(stack, run, held)]
    if sender:
        assert sender.sent, "the span sender did not finish"
        problems.append(_spans_missing(tel, sender.sent))
    print(f"drill {name}: {time.monotonic() - started:.0f} s from the first line to the last count")
    assert not any(problems), "; ".join(p for p in problems if p)


def test_sigkill_of_the_agent_while_the_gateway_restarts_loses_no_line(stack):
    """The issue's case: 2,850 of 3,000 were stored when a batch processor held the lines in memory."""

    def crash(tel, app):
        time.sleep(4)
        tel.testinfra.check_output("systemctl restart otelcol")
        time.sleep(5)
        _back_after(app, units.sigkill(app, "otelcol"))

    _drill(stack, "agent", crash)


def test_sigkill_of_the_gateway_under_load_loses_no_line(stack):
    def crash(tel, app):
        time.sleep(6)
        _back_after(tel, units.sigkill(tel, "otelcol"))

    _drill(stack, "gateway", crash)


def test_sigkill_of_the_agent_and_the_gateway_together_loses_no_line(stack):
    def crash(tel, app):
        time.sleep(6)
        agent, gateway = units.sigkill(app, "otelcol"), units.sigkill(tel, "otelcol")
        _back_after(app, agent)
        _back_after(tel, gateway)

    _drill(stack, "both", crash)


def test_sigkill_of_the_log_store_under_load_keeps_what_it_flushed(stack):
    """What VictoriaLogs had written to disk survives its SIGKILL, and what it refused meanwhile the gateway's
    queue delivers, once. What it had acknowledged but not yet written is lost: that count is printed."""

    def crash(tel, app):
        pid = units.sigkill(tel, "victorialogs")
        units.wait_restarted(tel, "victorialogs", pid, tel.local("victorialogs.local", "/health"))

    _drill(stack, "logstore", crash, store_crashes=True)


def test_sigkill_of_the_trace_store_under_load_loses_no_span(stack):
    """What Jaeger acknowledged survives its SIGKILL; what it refused meanwhile the gateway's queue retries."""

    def crash(tel, app):
        time.sleep(6)
        pid = units.sigkill(tel, "jaeger")
        units.wait_restarted(tel, "jaeger", pid, tel.local("jaeger.health", "/status"), timeout=120)

    _drill(stack, "tracestore", crash, spans=True)


def _alerts(alertmanager: str, uid: str) -> list[dict]:
    return operator_tls.get(f"{alertmanager}/api/v2/alerts", params={"filter": f'uid="{uid}"'}, timeout=10).json()


def _updated_at(alert: dict) -> datetime:
    stamp = alert["updatedAt"].replace("Z", "+00:00")
    seconds, _, rest = stamp.partition(".")
    fraction, _, zone = rest.partition("+")
    return datetime.fromisoformat(f"{seconds}.{fraction[:6].ljust(6, '0')}+{zone}" if rest else stamp)


def test_a_critical_alert_notifies_each_receiver_once_through_sigkills_of_alertmanager_and_prometheus(stack):
    """backend-down fires; Alertmanager is killed before it notifies, again after, then Prometheus is.

    1. SIGKILL right after the alert reached Alertmanager (before its group_wait): once back, it has
       lost the alert (alerts live in memory), Prometheus sends it again, one notification per receiver.
    2. SIGKILL once that notification is in the notification log on disk (--storage.path): once back
       and sent the alert again, Alertmanager knows it notified and sends nothing.
    3. SIGKILL of Prometheus: it restores the alert's state from its TSDB and sends it again; the
       alert stays active at Alertmanager, nothing is sent twice.
    Only the group data's timers (critical route) and Prometheus' resend delay set the waits.
    """
    _, app = stack
    mon = hosts_in("monitoring")[0]
    alertmanager = f"https://{mon.settings.address}:{mon.settings.alerting.listen_port}"
    timing = mon.settings.alerting.critical
    resend = duration_seconds(mon.settings.prometheus.evaluation_interval)  # the role's --rules.alert.resend-delay
    group_wait, group_interval = duration_seconds(timing.group_wait), duration_seconds(timing.group_interval)
    quiet = group_wait + group_interval + 15  # a second notification would come within this
    assert resend + quiet < duration_seconds(timing.repeat_interval), "the lab's repeat_interval would send again anyway"
    alert = ALERTS["backend-down"]
    am_ready, prom_ready = mon.local("alertmanager.web", "/-/ready"), mon.local("prometheus.web", "/-/ready")

    def notified() -> tuple[int, int]:
        return len(slack_alerts("#critical-alerts", alert.uid)), len(pagerduty_events(alert.name, "trigger"))

    _start_clean(alert.uid)
    unit, backend = app.settings.backend.unit, app.local("backend.http", "/health")
    started = time.monotonic()
    try:
        app.testinfra.check_output("systemctl stop %s", unit)
        wait_for("backend-down at Alertmanager", lambda: _alerts(alertmanager, alert.uid), duration_seconds(alert.for_) + 120, 0.5)
        units.wait_restarted(mon, "alertmanager", units.sigkill(mon, "alertmanager"), am_ready)
        assert notified() == (0, 0), "killed too late: Alertmanager had notified already"

        wait_for("one notification per receiver", lambda: notified() == (1, 1), resend + group_wait + 60)
        sent_at = datetime.now(timezone.utc)
        nflog = f"{ALERTMANAGER_DATA}/nflog"
        wait_for("the notification log on disk", lambda: float(mon.testinfra.check_output("stat -c %%.3Y %s", nflog)) > sent_at.timestamp(),
                 duration_seconds(SNAPSHOT_INTERVAL) + 30)
        units.wait_restarted(mon, "alertmanager", units.sigkill(mon, "alertmanager"), am_ready)
        wait_for("backend-down sent to Alertmanager again", lambda: _alerts(alertmanager, alert.uid), resend + 30)
        time.sleep(quiet)
        assert notified() == (1, 1), "Alertmanager notified again after a SIGKILL: its notification log was not on disk"

        killed_at = datetime.now(timezone.utc)
        units.wait_restarted(mon, "prometheus", units.sigkill(mon, "prometheus"), prom_ready, timeout=120)
        wait_for("backend-down sent again by the restarted Prometheus",
                 lambda: any(_updated_at(a) > killed_at for a in _alerts(alertmanager, alert.uid)), resend + 60)
        time.sleep(quiet)
        [still] = _alerts(alertmanager, alert.uid)
        assert still["status"]["state"] == "active"
        assert notified() == (1, 1), "a notification was sent again after Prometheus restarted"
    finally:
        app.testinfra.run("systemctl start %s", unit)
        wait_for("backend healthy again", lambda: app.testinfra.run("curl -fsS -o /dev/null %s", backend).rc == 0, 90)
    print(f"alert drill: {time.monotonic() - started:.0f} s")


def test_power_off_of_the_telemetry_host_under_load_loses_nothing_acknowledged(stack):
    """tel1's container is killed whole (no shutdown), then booted: every span the gateway acknowledged is in
    Jaeger; every line is stored but those VictoriaLogs had acknowledged and not yet written (printed).

    Last in the module: the other tests' SSH connections to tel1 die with it.
    """

    def crash(tel, app):
        lab_hosts.power_off(tel.name)
        time.sleep(5)
        lab_hosts.start(tel.name)
        lab_hosts.wait_ready(tel.name)
        back = reconnected(tel)
        wait_for("the stores and the gateway on the booted host", lambda: all(
            back.testinfra.run("curl -fsS -o /dev/null %s", back.local(listener, path)).rc == 0
            for listener, path in (("otelcol.health", "/"), ("victorialogs.local", "/health"), ("jaeger.health", "/status"))), 120)

    _drill(stack, "poweroff", crash, spans=True, store_crashes=True)
