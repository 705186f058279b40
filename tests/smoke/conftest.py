"""Smoke tests run against any inventory: SENTINEL_INVENTORY=inventory/prod.py pytest tests/smoke.

On the lab they first make sure the stack has been converged in this session.
"""

import pytest

from tests import lab_session
from tests.stack import hosts_in, stack_hosts

GROUP_FIXTURES = {"monitoring_host": "monitoring", "telemetry_host": "telemetry", "app_host": "app"}


def _stores_hosts():
    """The telemetry host that runs the stores (stores.host; every telemetry host when unset, one then)."""
    return [h for h in hosts_in("telemetry") if h.settings.stores.host in (None, h.name)]


def _available():
    if lab_session.INVENTORY.endswith("lab.py"):
        return lab_session.lab_missing_reason()
    return None


def pytest_generate_tests(metafunc):
    reason = _available()
    for fixture, group in GROUP_FIXTURES.items():
        if fixture in metafunc.fixturenames:
            hosts = [] if reason else hosts_in(group)
            metafunc.parametrize(fixture, hosts or [None], ids=[h.name for h in hosts] or ["no-host"], indirect=True)
    if "stores_host" in metafunc.fixturenames:
        hosts = [] if reason else _stores_hosts()
        metafunc.parametrize("stores_host", hosts or [None], ids=[h.name for h in hosts] or ["no-host"], indirect=True)
    if "any_host" in metafunc.fixturenames:
        hosts = [] if reason else list(stack_hosts())
        metafunc.parametrize("any_host", hosts or [None], ids=[h.name for h in hosts] or ["no-host"], indirect=True)


def _host(request):
    reason = _available()
    if reason:
        pytest.skip(reason)
    if lab_session.INVENTORY.endswith("lab.py"):
        converge = request.getfixturevalue("first_converge")
        assert converge.returncode == 0, converge.output[-3000:]
    return request.param


@pytest.fixture
def monitoring_host(request):
    return _host(request)


@pytest.fixture
def telemetry_host(request):
    return _host(request)


@pytest.fixture
def stores_host(request):
    return _host(request)


@pytest.fixture
def app_host(request):
    return _host(request)


@pytest.fixture
def any_host(request):
    return _host(request)
