# pyinfra's CLI patches the standard library for gevent on import, before anything
# else; the Environment is built with the CLI's own inventory loader, so the tests
# import it first too, exactly like `pyinfra inventory/<env>.py deploy.py` runs.
import pyinfra_cli  # noqa: F401, I001

import os
import sys
import threading
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


def pytest_unconfigure(config):
    """A test that leaves a non-daemon thread running (a stand-in server it never shut down: cheroot's
    workers are not daemons) keeps the interpreter from exiting after the report, and CI would wait
    for its time limit. Name the threads and end the run as failed instead (os._exit: a normal exit
    would join them forever). Executor workers are left out: interpreter exit wakes and joins them."""
    stray = [t for t in threading.enumerate()
             if t is not threading.main_thread() and t.is_alive() and not t.daemon and not t.name.startswith("ThreadPoolExecutor")]
    if stray:
        sys.stdout.flush()
        sys.stderr.write("\nthreads a test left running would keep pytest from exiting; failing the run instead:\n  "
                         + "\n  ".join(repr(t) for t in stray) + "\n")
        sys.stderr.flush()
        os._exit(3)


@pytest.fixture(scope="session")
def first_converge():
    """The first converge of the lab in this session; later tests build on it."""
    reason = lab_session.lab_missing_reason()
    if reason:
        pytest.skip(reason)
    return lab_session.converge()
