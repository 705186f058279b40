"""MTTD of the critical alerts on the lab: seconds from fault injection to the Slack stand-in.

    flock /var/cache/sentinel-lab/lab.lock .venv/bin/python -m lab.bench_alerting [N] [--lab-timings]

For each critical alert the lab can cause (backend down, error rate, p95
latency, pool exhausted) it injects the fault N times (default 3), measures the
time until Slack #critical-alerts receives the alert, removes the fault and
waits until Alertmanager has no such alert left, then prints the median and the
spread (max - min) per alert, and exits 1 if a run at production timings took
longer than the 4-minute budget.

By default it first converges the monitoring host with PRODUCTION timings
(Alertmanager's critical group_wait 10s; Prometheus scraping and evaluating
every 15s, as in prod) through pyinfra --data, and converges it back to the lab's
group data at the end. --lab-timings measures with the lab's short timers.
Host memory, Prometheus and Alertmanager down cannot be caused here (the lab
has one monitoring host, and an Alertmanager cannot deliver its own death).
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

from lab.alert_drills import MEMBER, Load, clear_receivers, set_faults, slack_alerts, wait_for
from lab.paths import HOSTS, LAB_INVENTORY, REPO
from roles._environment import group_data as load_group_data

APP = f"http://{HOSTS['app1'][0]}:3000"
PROMETHEUS = f"http://{HOSTS['mon1'][0]}:9090"
PYINFRA = str(Path(sys.executable).parent / "pyinfra")
# Every critical alert must reach Slack within 4 minutes of the fault (docs/alerting.md, "Detection time").
BUDGET_SECONDS = 240


def production_timings_data() -> list[str]:
    """pyinfra --data arguments: the lab's group data with production's timers."""
    alerting = {k: v for k, v in load_group_data("lab")["alerting"].items() if k not in ("critical", "warning", "info")}
    prometheus = {**load_group_data("lab")["prometheus"], "scrape_interval": "15s", "evaluation_interval": "15s"}
    return ["--data", f"alerting={json.dumps(alerting)}", "--data", f"prometheus={json.dumps(prometheus)}"]


def converge(*options: str) -> None:
    result = subprocess.run([PYINFRA, "-y", *options, str(LAB_INVENTORY), "deploy.py", "--limit", "mon1"],
                            cwd=REPO, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"converge failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")


def active_uids() -> set[str]:
    """Alert uids Prometheus holds as pending or firing."""
    alerts = requests.get(f"{PROMETHEUS}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    return {a["labels"].get("uid") for a in alerts}


def ssh(command: str) -> None:
    from lab import hosts

    subprocess.run(hosts.ssh_argv("app1", command), check=True, capture_output=True, timeout=60)


def backend_healthy() -> bool:
    try:
        return requests.get(f"{APP}/health", timeout=5).ok
    except requests.RequestException:
        return False


def start_backend() -> None:
    ssh("systemctl start sentinel-backend")
    wait_for("the backend answering /health", backend_healthy, 90, 1)


def active_since(uid: str) -> float | None:
    """When Prometheus first saw the alert's condition (activeAt), as a Unix time."""
    from datetime import datetime

    alerts = requests.get(f"{PROMETHEUS}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    times = [datetime.fromisoformat(a["activeAt"].replace("Z", "+00:00")).timestamp()
             for a in alerts if a["labels"].get("uid") == uid]
    return min(times) if times else None


class Scenario:
    """One fault and the critical alert it must raise."""

    def __init__(self, uid: str, inject, clear, timeout: float):
        self.uid, self.inject, self.clear, self.timeout = uid, inject, clear, timeout


SCENARIOS = [
    Scenario("backend-down", lambda: ssh("systemctl stop sentinel-backend"), start_backend, 6 * 60),
    Scenario("backend-error-rate-critical", lambda: set_faults(APP, error_rate=0.5), lambda: set_faults(APP), 12 * 60),
    Scenario("backend-latency-p95-high", lambda: set_faults(APP, latency_ms=2500), lambda: set_faults(APP), 12 * 60),
    Scenario("db-pool-exhausted", lambda: set_faults(APP, db_pool_exhausted=True), lambda: set_faults(APP), 6 * 60),
]


def measure(scenario: Scenario, measured: set[str]) -> tuple[float, float | None]:
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
            return received, (since - started_at if since else None)
        finally:
            scenario.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.bench_alerting", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="?", type=int, default=3, help="runs per alert (default 3)")
    parser.add_argument("--lab-timings", action="store_true", help="keep the lab's short Alertmanager timers")
    parser.add_argument("--only", action="append", help="measure only these alert uids")
    args = parser.parse_args(argv)
    # A run stopped with SIGTERM (kill, a CI timeout) still restores the lab in the
    # `finally` below; otherwise the backend could stay stopped and mon1 keep production timers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    scenarios = [s for s in SCENARIOS if not args.only or s.uid in args.only]
    if not args.lab_timings:
        print("converging mon1 with production timings ...", flush=True)
        converge(*production_timings_data())
    results: dict[str, list[float]] = {}
    try:
        for run in range(args.runs):
            for scenario in scenarios:
                seconds, pending_after = measure(scenario, {s.uid for s in scenarios})
                results.setdefault(scenario.uid, []).append(seconds)
                seen = f"condition seen after {pending_after:.1f}s" if pending_after is not None else "resolved before it was read"
                print(f"run {run + 1}/{args.runs}  {scenario.uid:<30} {seconds:7.1f}s  ({seen})", flush=True)
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
            print("converged mon1 back to the lab's group data", flush=True)
    print(f"\nMTTD (fault injected -> Slack #critical-alerts), median and spread of {args.runs} run(s), "
          f"{'lab' if args.lab_timings else 'production'} timings; budget {BUDGET_SECONDS}s (docs/alerting.md)")
    print(f"  {'alert':<30} {'median':>8} {'spread':>8}   {'min..max':<15} runs")
    over = []
    for uid, values in results.items():
        median, low, high = statistics.median(values), min(values), max(values)
        if high > BUDGET_SECONDS:
            over.append(uid)
        print(f"  {uid:<30} {median:7.1f}s {high - low:7.1f}s   {f'{low:.1f}..{high:.1f}':<15} "
              f"{', '.join(f'{v:.1f}' for v in values)}{'   OVER BUDGET' if high > BUDGET_SECONDS else ''}")
    return 1 if over and not args.lab_timings else 0


if __name__ == "__main__":
    sys.exit(main())
