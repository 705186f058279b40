"""What the smoke test reads from the backup's textfile metrics: not yet run, failed, stale, ok."""

import pytest

from roles.grafana_backup.status import INSTALLED, LAST_RUN, LAST_RUN_SUCCESS, LAST_SUCCESS, backup_status, samples_of

NOW, DAY = 1_800_000_000.0, 24 * 3600.0
STALE = 26 * 3600.0


@pytest.mark.parametrize(
    "samples, state, words",
    [
        ({INSTALLED: NOW - 60}, "not yet run", "has not run yet"),
        ({}, "not yet run", "installed never"),  # from before the install metric
        ({INSTALLED: NOW - 2 * DAY, LAST_RUN: NOW - 60, LAST_RUN_SUCCESS: 0}, "failed", "last success: never"),
        ({LAST_SUCCESS: NOW - 3 * DAY, LAST_RUN: NOW - 60, LAST_RUN_SUCCESS: 0}, "failed", "72.0 hours ago"),
        ({LAST_SUCCESS: NOW - 27 * 3600, LAST_RUN: NOW - 27 * 3600, LAST_RUN_SUCCESS: 1}, "stale", "27.0 hours old"),
        ({LAST_SUCCESS: NOW - 27 * 3600}, "stale", "27.0 hours old"),  # a job from before the last-run metric
        ({LAST_RUN: NOW - 60, LAST_RUN_SUCCESS: 1}, "failed", "no success metric"),
        ({LAST_SUCCESS: NOW - 3600, LAST_RUN: NOW - 3600, LAST_RUN_SUCCESS: 1, INSTALLED: NOW - 9 * DAY}, "ok", "1.0 hours ago"),
    ],
)
def test_each_state_is_told_apart_with_its_reason(samples, state, words):
    status = backup_status(samples, NOW, STALE)
    assert status.state == state and words in status.message, status


def test_samples_are_read_from_a_metrics_page_labelled_series_aside():
    page = (
        "# TYPE sentinel_grafana_backup_last_run_success gauge\nsentinel_grafana_backup_last_run_success 0\n"
        '# TYPE sentinel_grafana_backup_objects gauge\nsentinel_grafana_backup_objects{kind="dashboards"} 3\n'
        "# TYPE node_load1 gauge\nnode_load1 0.5\n"
    )
    assert samples_of(page) == {LAST_RUN_SUCCESS: 0.0}
