"""The alerting bench's arithmetic (lab/bench_alerting.py, lab/watcher_drills.py); the bench itself needs the lab."""

import pytest

from lab.bench_alerting import QUIET_MINUTES, SCENARIOS, WATCHER_CASES, summary
from lab.watcher_drills import production_heartbeat_bound
from roles._model import duration_seconds
from roles.alerting.catalog import load_catalog
from roles.alerting.settings import AlertingSettings
from roles.prometheus.settings import PrometheusSettings

pytestmark = pytest.mark.alerting


def test_the_worst_case_of_each_alert_is_its_slowest_run_of_either_case():
    lines, over = summary({("backend-down", "first occurrence"): [150.0, 160.0], ("backend-down", "returning"): [175.0, 241.0],
                           ("db-pool-exhausted", "first occurrence"): [90.0], ("db-pool-exhausted", "returning"): [110.0]}, 240)
    assert over == ["backend-down"]
    worst = lines[lines.index("  worst case per alert:") + 1:]
    assert [line.split() for line in worst] == [["backend-down", "241.0s", "OVER", "BUDGET"], ["db-pool-exhausted", "110.0s"]]
    assert any(line.split()[:4] == ["backend-down", "returning", "208.0s", "66.0s"] for line in lines)  # median, spread


def test_the_production_switch_bound_at_the_defaults_is_the_budget():
    """Prometheus stopped: its Watchdog expires at most 4 evaluations (60 s) later, and production's switch
    pages 3 calls' worth (3 x 1m) after the last call: 240 s at worst, whatever the lab's run measured."""
    evaluation = duration_seconds(PrometheusSettings().evaluation_interval)
    repeat = duration_seconds(AlertingSettings().heartbeat.repeat_interval)
    assert production_heartbeat_bound(58.0, 10, evaluation, repeat) == 240
    # A last call early in the Watchdog's life: the expiry is bounded by the next (missing) lab call.
    assert production_heartbeat_bound(20.0, 10, evaluation, repeat) == 30 + 180


def test_a_first_occurrence_waits_out_prometheus_resending_the_resolved_alert():
    """Prometheus re-sends a resolved alert for 15 minutes, keeping its Alertmanager group: the quiet must be longer."""
    assert QUIET_MINUTES > 15


def test_the_cases_name_critical_alerts_and_the_watchers_wait_for_a_real_alert():
    critical = {a.uid for a in load_catalog() if a.severity == "critical"}
    assert {s.uid for s in SCENARIOS} <= critical
    assert all(clear is None or clear in critical for clear, _ in WATCHER_CASES.values())
