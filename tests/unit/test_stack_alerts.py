"""The stack's own alerts cover the whole stack: every scrape job, every systemd unit.

What each alert does is proven by its promtool fixture (test_alert_rules.py) and
its routing by amtool (test_alert_routing.py); these tests keep the alerts in step
with the stack when a component, a job or a unit is added.
"""

import ast
import re
from pathlib import Path

import pytest

from roles._placement import COMPONENTS
from roles.alerting.catalog import load_catalog
from roles.node_exporter import service_spec as node_exporter_spec, watched_units
from roles.prometheus import SCRAPED
from tests.unit.test_alert_routing import settings_of

pytestmark = pytest.mark.alerting

ROLES = Path(__file__).resolve().parents[2] / "roles"


def _alert(uid):
    return next(a for a in load_catalog() if a.uid == uid)


def _jobs_with_their_own_down_alert() -> set[str]:
    """Jobs named by an `up{job="<job>"}` selector in some alert other than TargetDown."""
    return {job for a in load_catalog() if a.uid != "target-down" for job in re.findall(r'\bup\{job="([a-z-]+)"\}', a.expr)}


def test_target_down_covers_exactly_the_jobs_without_their_own_alert():
    excluded = re.fullmatch(r'up\{job!~"([a-z|-]+)"\} == 0', _alert("target-down").expr).group(1).split("|")
    assert sorted(excluded) == sorted(_jobs_with_their_own_down_alert())
    # Every scrape job of the stack is watched: by its own alert or by TargetDown.
    assert {job for job, _ in SCRAPED} - set(excluded) == {"node", "otelcol"}


def _service_spec_names() -> set[str]:
    """The `name=` of every ServiceSpec(...) and Front(...) call in the roles, literal or a module constant. The
    building blocks' own calls (roles/_front.py: `name=front.name`) are their callers' names, found at the callers."""
    names = set()
    for path in ROLES.rglob("*.py"):
        tree = ast.parse(path.read_text())
        constants = {
            target.id: node.value.value
            for node in tree.body if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            for target in node.targets if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("ServiceSpec", "Front"):
                value = next(k.value for k in node.keywords if k.arg == "name")
                if isinstance(value, ast.Attribute) and path.name == "_front.py":
                    continue
                names.add(value.value if isinstance(value, ast.Constant) else constants[value.id])
    return names


@pytest.mark.parametrize("environment", ["lab", "prod"])
def test_node_exporter_watches_every_unit_the_stack_installs(environment):
    from roles.firewall import UNIT as FIREWALL_UNIT
    from roles.victorialogs import ENFORCE_UNIT

    settings = settings_of(environment)
    include = re.compile(watched_units(settings))
    services = _service_spec_names()
    assert {"prometheus", "alertmanager", "node_exporter", "otelcol", "jaeger", "victorialogs", "grafana", "jaeger-front",
            "victorialogs-front"} <= services
    units = {f"{name}.service" for name in services} | {FIREWALL_UNIT, f"{ENFORCE_UNIT}.service", settings.backend.unit, "cron.service"}
    assert {unit for unit in units if not include.fullmatch(unit)} == set()
    # and nothing else of the host: node_exporter's unit-include is anchored, as this fullmatch
    for other in ("ssh.service", "systemd-journald.service", "alertmanager-old.service", "prometheus.service.d", "cron.timer"):
        assert not include.fullmatch(other), other


def test_the_units_come_from_the_placement_table():
    settings = settings_of("prod").model_copy(update={"backend": settings_of("prod").backend.model_copy(update={"unit": "checkin-api.service"})})
    assert re.compile(watched_units(settings)).fullmatch("checkin-api.service")
    every = {unit for component in COMPONENTS for unit in component.unit_names(settings)}
    assert {c.artifact for c in COMPONENTS if c.artifact} <= every


def test_node_exporter_exposes_restart_counts():
    args = node_exporter_spec(settings_of("lab"), "10.0.0.1:9100").exec_start
    assert "--collector.systemd.enable-restarts-metrics" in args
    assert f"--collector.systemd.unit-include={watched_units(settings_of('lab'))}" in args


def test_collector_alerts_leave_jaeger_to_its_own():
    """Jaeger v2 is a collector too (otelcol_* metrics, job jaeger): the collector alerts select job otelcol only."""
    for alert in load_catalog():
        if alert.uid.startswith("otelcol-"):
            selectors = re.findall(r"otelcol_[a-z_]+\{([^}]*)\}", alert.expr)
            assert selectors and all('job="otelcol"' in s for s in selectors), alert.uid
