# pyinfra's CLI patches the standard library for gevent on import, before anything
# else; the Environment is built with the CLI's own inventory loader, so the tests
# import it first too, exactly like `pyinfra inventory/<env>.py deploy.py` runs.
import pyinfra_cli  # noqa: F401, I001

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests import lab_session  # noqa: E402
from tests.mirror_binaries import MISSING_TOOL  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a test skipped for a missing tool (promtool, amtool, sentry-cli...) fails:
    CI must prove everything, not quietly skip it."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") == "true":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if MISSING_TOOL in reason:
            report.outcome = "failed"
            report.longrepr = f"CI=true and a tool is missing: {reason}"


@pytest.fixture(scope="session")
def first_converge():
    """The first converge of the lab in this session; later tests build on it."""
    reason = lab_session.lab_missing_reason()
    if reason:
        pytest.skip(reason)
    return lab_session.converge()
