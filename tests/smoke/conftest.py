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


def _log_store_hosts():
    """Every host that runs the chosen log store: stores.host, or every telemetry host when it scales out (the
    VictoriaLogs cluster, stores.mode scalable), as the placement table says."""
    hosts = hosts_in("telemetry")
    if not hosts:
        return []
    runs = hosts[0].topology.runs.get(hosts[0].settings.logs.store, ())
    return [h for h in hosts if h.name in runs]


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
    if "log_store_host" in metafunc.fixturenames:
        hosts = [] if reason else _log_store_hosts()
        metafunc.parametrize("log_store_host", hosts or [None], ids=[h.name for h in hosts] or ["no-host"], indirect=True)
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
def log_store_host(request):
    return _host(request)


@pytest.fixture
def app_host(request):
    return _host(request)


@pytest.fixture
def any_host(request):
    return _host(request)
