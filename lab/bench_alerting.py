"""MTTD of the critical alerts on the lab: seconds from fault injection to the Slack stand-in.

    flock /var/cache/sentinel-lab/lab.lock .venv/bin/python -m lab.bench_alerting [N] [--lab-timings]

For each critical alert the lab can cause (backend down, error rate, p95
latency, pool exhausted) it measures N times (default 3) two cases, the time
from injecting the fault until Slack #critical-alerts receives the alert:

- first occurrence: the alert has not been pending or firing for 16 minutes, so
  Alertmanager has no group of it left (Prometheus re-sends a resolved alert for
  15 minutes, which keeps or recreates its group): a new group, sent after group_wait;
- returning: the same fault again once the first one resolved (its RESOLVED
  message reached Slack) and the rules' rate windows (3 minutes at most) hold none
  of it, well within those 15 minutes: the alert joins its old group and waits for
  the group's next tick, up to group_interval (docs/alerting.md, "A returning incident").

Then two cases of the monitoring's own failures (lab/watcher_drills.py): Prometheus
stopped -> the heartbeat stand-in's DOWN page, and Slack's critical webhook revoked
-> AlertmanagerFailedToSendAlerts on PagerDuty. It prints the median and the spread
(max - min) per alert and case, and the worst, and exits 1 if a run at production
timings took longer than the 4-minute budget.

By default it first converges the monitoring host with PRODUCTION timings
(the `alerting` group data without the lab's critical/warning/info timers and
its `lab_rule_for_at_most`, so the catalog's own `for`;
Alertmanager's defaults: critical group_wait 10s, group_interval 30s; Prometheus
scraping and evaluating every 15s, as in prod) through pyinfra --data, and
converges it back to the lab's group data at the end. The heartbeat's calls keep
the lab's 10s, which the switch stand-in's check (20s + 10s, fixed when the lab
started) expects; the Prometheus case prints the bound for production's switch
too. --lab-timings measures with the lab's short timers. Host memory, and the
PrometheusDown and AlertmanagerDown alerts, cannot be caused here (the lab has one
monitoring host, and an Alertmanager cannot deliver its own death): the dead
man's switch is what tells of those on the lab.

A run at production timings takes about 40 minutes (per alert: the fault, its
resolve, 3 minutes for the rate windows, the return; a first occurrence also waits
while the alert fired in the last 16 minutes); --only narrows it.
"""

from __future__ import annotations

# pyinfra's CLI patches the standard library for gevent on import (the group data below is read
# with its loader): imported first, as in tests/conftest.py, or ssl breaks for every request after it.
import pyinfra_cli  # noqa: F401, I001

import argparse
import json
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import requests

from lab import operator_tls
from lab.alert_drills import MEMBER, Load, clear_receivers, run_on, set_faults, slack_alerts, wait_for
from lab.paths import HOSTS, LAB_INVENTORY, REPO
from lab.watcher_drills import prometheus_stopped, slack_revoked
from roles._environment import group_data as load_group_data

APP = f"http://{HOSTS['app1'].address}:3000"
PROMETHEUS = f"https://{HOSTS['mon1'].address}:9090"
PYINFRA = str(Path(sys.executable).parent / "pyinfra")
# Every critical alert must reach Slack within 4 minutes of the fault (docs/alerting.md, "Detection time").
BUDGET_SECONDS = 240
# Prometheus re-sends a resolved alert for 15 minutes (keeping its Alertmanager group alive),
# and Alertmanager collects an empty group within 30 s: quiet this long, an alert is new again.
QUIET_MINUTES = 16
# The longest rate window of the critical rules ([3m]): a fault that returns later finds none of
# the first one's data in them, the worst case for a returning alert.
LONGEST_WINDOW_SECONDS = 180


def production_timings_data() -> list[str]:
    """pyinfra --data arguments: the lab's group data with production's timers."""
    alerting = {k: v for k, v in load_group_data("lab")["alerting"].items() if k not in ("critical", "warning", "info", "lab_rule_for_at_most")}
    prometheus = {**load_group_data("lab")["prometheus"], "scrape_interval": "15s", "evaluation_interval": "15s"}
    return ["--data", f"alerting={json.dumps(alerting)}", "--data", f"prometheus={json.dumps(prometheus)}"]


def converge(*options: str) -> None:
    result = subprocess.run([PYINFRA, "-y", *options, str(LAB_INVENTORY), "deploy.py", "--limit", "monitoring"],
                            cwd=REPO, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"converge failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")


def active_uids() -> set[str]:
    """Alert uids Prometheus holds as pending or firing."""
    alerts = operator_tls.get(f"{PROMETHEUS}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    return {a["labels"].get("uid") for a in alerts}


def backend_healthy() -> bool:
    try:
        return requests.get(f"{APP}/health", timeout=5).ok
    except requests.RequestException:
        return False


def start_backend() -> None:
    run_on("app1", "systemctl start sentinel-backend")
    wait_for("the backend answering /health", backend_healthy, 90, 1)


def active_since(uid: str) -> float | None:
    """When Prometheus first saw the alert's condition (activeAt), as a Unix time."""
    from datetime import datetime

    alerts = operator_tls.get(f"{PROMETHEUS}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    times = [datetime.fromisoformat(a["activeAt"].replace("Z", "+00:00")).timestamp()
             for a in alerts if a["labels"].get("uid") == uid]
    return min(times) if times else None


class Scenario:
    """One fault and the critical alert it must raise."""

    def __init__(self, uid: str, inject, clear, timeout: float):
        self.uid, self.inject, self.clear, self.timeout = uid, inject, clear, timeout


SCENARIOS = [
    Scenario("backend-down", lambda: run_on("app1", "systemctl stop sentinel-backend"), start_backend, 6 * 60),
    Scenario("backend-error-rate-critical", lambda: set_faults(APP, error_rate=0.5), lambda: set_faults(APP), 12 * 60),
    Scenario("backend-latency-p95-high", lambda: set_faults(APP, latency_ms=2500), lambda: set_faults(APP), 12 * 60),
    Scenario("db-pool-exhausted", lambda: set_faults(APP, db_pool_exhausted=True), lambda: set_faults(APP), 6 * 60),
]


def quiet(uid: str) -> bool:
    """Whether Prometheus has had no pending or firing `uid` for QUIET_MINUTES (no ALERTS series)."""
    query = f'count_over_time(ALERTS{{uid="{uid}"}}[{QUIET_MINUTES}m])'
    return not operator_tls.get(f"{PROMETHEUS}/api/v1/query", params={"query": query}, timeout=10).json()["data"]["result"]


class Measurement(NamedTuple):
    seconds: float  # fault injected -> Slack
    condition_after: float | None  # fault injected -> Prometheus saw the condition (None: resolved before it was read)
    cleared_at: float  # time.monotonic() when the fault was removed


def first_occurrence(scenario: Scenario, measured: set[str]) -> Measurement:
    """`measure` once Alertmanager can have no group of the alert left."""
    wait_for(f"{scenario.uid} quiet for {QUIET_MINUTES} minutes", lambda: quiet(scenario.uid), (QUIET_MINUTES + 5) * 60, 10)
    return measure(scenario, measured)


def returning(scenario: Scenario, measured: set[str], cleared_at: float) -> Measurement:
    """`measure` again right after the first fault resolved, once its data left the rate windows."""
    wait_for(f"{scenario.uid} RESOLVED on Slack", lambda: slack_alerts("#critical-alerts", scenario.uid, "RESOLVED"), 10 * 60, 2)
    time.sleep(max(0.0, cleared_at + LONGEST_WINDOW_SECONDS - time.monotonic()))
    return measure(scenario, measured)


def measure(scenario: Scenario, measured: set[str]) -> Measurement:
    """Seconds from injecting the fault to the Slack stand-in receiving the alert,
    and to Prometheus first seeing the condition (the rule's `for` starts there).

    Starts only once none of the `measured` alerts is pending or firing: faults
    cross over (an exhausted pool answers 503s, which raise the error rate).
    """
    wait_for("the measured alerts to clear", lambda: not (active_uids() & measured), 15 * 60, 5)
    clear_receivers()
    # Traffic: the rate and latency alerts need requests; a few at a time, bounded.
    with Load(APP, [("/api/events", MEMBER)], rate=2, workers=8, max_seconds=scenario.timeout + 60):
        started, started_at = time.monotonic(), time.time()
        scenario.inject()
        try:
            wait_for(f"{scenario.uid} on Slack", lambda: slack_alerts("#critical-alerts", scenario.uid), scenario.timeout, 1)
            received = time.monotonic() - started
            since = active_since(scenario.uid)
        finally:
            scenario.clear()
    return Measurement(received, since - started_at if since else None, time.monotonic())


# The monitoring's own failures (lab/watcher_drills.py): name -> (what must be quiet first, the drill).
WATCHER_CASES = {
    "prometheus-stopped": (None, prometheus_stopped),
    # AlertmanagerFailedToSendAlerts fires for 15 minutes after a failure: a new one pages only once it resolved.
    "slack-revoked": ("alertmanager-failed-to-send-alerts", slack_revoked),
}


def summary(results: dict[tuple[str, str], list[float]], budget: float) -> tuple[list[str], list[str]]:
    """The report's lines, (name, case) -> seconds of each run, with each name's worst case; and the names over `budget`."""
    lines = [f"  {'alert':<38} {'case':<26} {'median':>8} {'spread':>8}   {'min..max':<15} runs"]
    worst: dict[str, float] = {}
    for (name, case), values in results.items():
        median, low, high = statistics.median(values), min(values), max(values)
        worst[name] = max(worst.get(name, 0.0), high)
        lines.append(f"  {name:<38} {case:<26} {median:7.1f}s {high - low:7.1f}s   {f'{low:.1f}..{high:.1f}':<15} "
                     f"{', '.join(f'{v:.1f}' for v in values)}")
    lines.append("  worst case per alert:")
    for name, seconds in worst.items():
        lines.append(f"  {name:<38} {seconds:7.1f}s{'   OVER BUDGET' if seconds > budget else ''}")
    return lines, [name for name, seconds in worst.items() if seconds > budget]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.bench_alerting", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="?", type=int, default=3, help="runs per alert (default 3)")
    parser.add_argument("--lab-timings", action="store_true", help="keep the lab's short Alertmanager timers")
    parser.add_argument("--only", action="append", help=f"measure only these alert uids or cases ({', '.join(WATCHER_CASES)})")
    args = parser.parse_args(argv)
    # A run stopped with SIGTERM (kill, a CI timeout) still restores the lab in the
    # `finally` below; otherwise the backend could stay stopped and the monitoring hosts keep production timers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    scenarios = [s for s in SCENARIOS if not args.only or s.uid in args.only]
    if not args.lab_timings:
        print("converging the monitoring hosts with production timings ...", flush=True)
        converge(*production_timings_data())
    watchers = [name for name in WATCHER_CASES if not args.only or name in args.only]
    results: dict[tuple[str, str], list[float]] = {}
    try:
        for run in range(args.runs):
            for scenario in scenarios:
                measured = {s.uid for s in scenarios}
                first = first_occurrence(scenario, measured)
                again = returning(scenario, measured, first.cleared_at)
                for case, m in (("first occurrence", first), ("returning", again)):
                    results.setdefault((scenario.uid, case), []).append(m.seconds)
                    seen = f"condition seen after {m.condition_after:.1f}s" if m.condition_after is not None else "resolved before it was read"
                    print(f"run {run + 1}/{args.runs}  {scenario.uid:<30} {case:<17} {m.seconds:7.1f}s  ({seen})", flush=True)
            for name in watchers:
                must_clear, drill = WATCHER_CASES[name]
                if must_clear:
                    wait_for(f"{must_clear} resolved", lambda: must_clear not in active_uids(), 20 * 60, 10)
                cases, note = drill()
                for case, seconds in cases.items():
                    results.setdefault((name, case), []).append(seconds)
                print(f"run {run + 1}/{args.runs}  {name:<30} "
                      f"{', '.join(f'{case} {seconds:.1f}s' for case, seconds in cases.items())}  ({note})", flush=True)
    finally:
        # Each restore step on its own, so one failure does not skip the others.
        for step in (lambda: set_faults(APP), start_backend, None if args.lab_timings else converge):
            if step is None:
                continue
            try:
                step()
            except Exception as err:  # noqa: BLE001 (report and go on restoring)
                print(f"restoring the lab: {err}", file=sys.stderr, flush=True)
        if not args.lab_timings:
            print("converged the monitoring hosts back to the lab's group data", flush=True)
    print(f"\nMTTD (fault injected -> Slack #critical-alerts; the watchers' cases -> their page), median and spread "
          f"of {args.runs} run(s), {'lab' if args.lab_timings else 'production'} timings; budget {BUDGET_SECONDS}s (docs/alerting.md)")
    lines, over = summary(results, BUDGET_SECONDS)
    print("\n".join(lines))
    return 1 if over and not args.lab_timings else 0

if __name__ == "__main__":
    sys.exit(main())
