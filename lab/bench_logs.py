"""Benchmark of the log path on the lab: backend log file -> collector agent -> gateway -> VictoriaLogs.

    python -m lab.bench_logs [--rates 250,500,1000,2000,4000] [--seconds 20] [--agent-unit otelcol]

Prints figures, asserts nothing:

- the highest rate (lines/s) the agent carries to the store with zero loss: at each
  rate, lines shaped like the backend's are appended to the backend's log file on the
  app host for --seconds, then the store is counted until the count stops moving;
  lost = written - stored (negative = duplicates);
- the agent's CPU (share of one core) and memory (cgroup, peak of the run) at each rate,
  from systemd's accounting of its unit;
- the time from a line written to it being queryable: single lines, one at a time,
  polled every 50 ms (median and maximum of --probes).

Each run marks its lines with a fresh id (`benchRun`), so runs never see each other.
Run it when no one else uses the lab: the load is real.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid


from lab import operator_tls
from lab.process_usage import unit_cpu_and_rss
from tests.stack import hosts_in

WRITER = r"""
import json, sys, time
path, run, rate, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
written, start = 0, time.monotonic()
with open(path, "a", buffering=1) as f:
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= seconds:
            break
        due = int(elapsed * rate) + 1
        while written < due:
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000Z"
            f.write(json.dumps({"ts": ts, "level": "info", "msg": "bench line", "service": "sentinel-backend",
                                "env": "lab", "stream": "app", "benchRun": run, "seq": written}, separators=(",", ":")) + "\n")
            written += 1
        time.sleep(0.005)
print(written)
"""


def count(store: str, logsql: str) -> int:
    response = operator_tls.post(f"{store}/select/logsql/query", data={"query": f"{logsql} | stats count() rows"}, timeout=60)
    response.raise_for_status()
    rows = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    return int(rows[0]["rows"]) if rows else 0


def settle(store: str, logsql: str, expected: int, timeout: float = 120) -> int:
    """The stored count once it reaches `expected` or stops moving for 10 s."""
    last, still_since, deadline = -1, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = count(store, logsql)
        if n >= expected:
            return n
        if n != last:
            last, still_since = n, time.monotonic()
        elif time.monotonic() - still_since > 10:
            return n
        time.sleep(1)
    return last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="250,500,1000,2000,4000")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--probes", type=int, default=10)
    parser.add_argument("--agent-unit", default="otelcol", help="the collector agent's systemd unit on the app host")
    parser.add_argument("--log-file", default="/var/log/sentinel/backend.log")
    args = parser.parse_args()

    app, tel = hosts_in("app")[0], hosts_in("telemetry")[0]
    store = f"https://{tel.settings.address}:{tel.settings.victorialogs.port}"  # its front: the operator may /select/
    print(f"log path: {app.name}:{args.log_file} -> {args.agent_unit} -> gateway -> {store}")

    best = 0
    for rate in [float(r) for r in args.rates.split(",")]:
        run = uuid.uuid4().hex
        cpu0, _ = unit_cpu_and_rss(app, args.agent_unit)
        start = time.monotonic()
        written = int(app.testinfra.check_output(
            "python3 -c %s %s %s %s %s", WRITER, args.log_file, run, str(rate), str(args.seconds)
        ))
        duration = time.monotonic() - start
        cpu1, rss_kib = unit_cpu_and_rss(app, args.agent_unit)
        stored = settle(store, f'benchRun:="{run}"', written)
        cpu_share = (cpu1 - cpu0) / duration
        lost = written - stored
        print(f"rate {rate:7.0f}/s: written {written}, stored {stored}, lost {lost}; "
              f"agent CPU {cpu_share:.0%} of a core, memory {rss_kib / 1024:.1f} MiB RSS")
        if lost == 0:
            best = max(best, int(written / duration))
        else:
            break
    print(f"highest rate with zero loss: {best} lines/s")

    latencies = []
    for _ in range(args.probes):
        run = uuid.uuid4().hex
        line = json.dumps({"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000Z", "level": "info",
                           "msg": "bench probe", "service": "sentinel-backend", "env": "lab", "stream": "app", "benchRun": run})
        app.testinfra.check_output("sh -c %s", f"printf '%s\\n' '{line}' >> {args.log_file}")
        written_at = time.monotonic()
        while count(store, f'benchRun:="{run}"') == 0:
            if time.monotonic() - written_at > 120:
                print("a probe line was not queryable after 120 s", file=sys.stderr)
                break
            time.sleep(0.05)
        latencies.append(time.monotonic() - written_at)
    print(f"written -> queryable: median {statistics.median(latencies):.2f}s, max {max(latencies):.2f}s "
          f"({args.probes} probes; includes one ssh round trip)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
