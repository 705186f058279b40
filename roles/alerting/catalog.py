"""The alert catalog (files/alerting/catalog.yml) as a pydantic model, checked before any host is contacted.

Each alert is checked on its own (keys, severity, duration, runbook, the PromQL
parsed by `promql-parser`, the templates) and against the others (duplicate uid
or name, inhibitions). `promtool check rules` on the rendered file stays the
final word; preflight runs it when a promtool is at hand, and the Prometheus
host always runs it before the file replaces the live one.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Annotated, Literal

import promql_parser
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from roles._model import DurationOrZero, LabelName, Model, matching, SettingsError, duration_seconds, parse
from roles._yaml import load_yaml

REPO = Path(__file__).resolve().parents[2]
CATALOG_FILE = REPO / "files" / "alerting" / "catalog.yml"
# none: never shown to people; the Watchdog, whose notifications are the dead man's switch's heartbeat.
SEVERITIES = ("critical", "warning", "info", "none")
_RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}  # 0 is the most severe


def expr_problem(expr: str) -> str | None:
    """Why `expr` is not PromQL (promql-parser's message), or None when it parses."""
    if not expr.strip():
        return "empty expression"
    try:
        promql_parser.parse(expr)
    except ValueError as err:
        return str(err)
    return None


def template_problem(text: str) -> str | None:
    """Unbalanced Go template delimiters, the usual slip in annotations."""
    if text.count("{{") != text.count("}}"):
        return "unbalanced {{ }} template delimiters"
    return None


def _expr(value: str) -> str:
    problem = expr_problem(value)
    if problem:
        raise ValueError(f"the query does not parse: {problem}. Fix: fix the PromQL; `promtool check rules` shows the position")
    return value


def _template(value: str) -> str:
    problem = template_problem(value)
    if problem:
        raise ValueError(f"{problem}. Fix: close every {{{{ with }}}}")
    return value


def _runbook(value: str) -> str:
    if value.startswith("https://"):
        return value
    path = (REPO / value).resolve()
    if ".." in Path(value).parts or not value.startswith("docs/") or REPO not in path.parents:
        raise ValueError(f"{value} is outside the repository's docs/. Fix: write a path such as docs/runbooks/<uid>.md, or an https:// URL")
    if not path.is_file():
        raise ValueError(f"{value} does not exist. Fix: write docs/runbooks/<uid>.md (what it means, first checks, how to resolve)")
    return value


_strip = BeforeValidator(lambda v: v.strip() if isinstance(v, str) else v)
Uid = matching("valid uid", r"[a-z0-9][a-z0-9-]{1,62}", "use 2-63 lowercase letters, digits and dashes")
AlertName = matching("valid alert name", r"[A-Za-z_][A-Za-z0-9_]*", "use CamelCase letters and digits, e.g. BackendDown")
GroupName = matching("valid group", r"[a-z0-9][a-z0-9-]*", "use lowercase letters, digits and dashes")
Expr = Annotated[str, _strip, AfterValidator(_expr)]
Template = Annotated[str, _strip, AfterValidator(_template)]
Dashboard = matching("dashboard link", r"/[A-Za-z0-9._~/?=&%-]+|https://\S+", "write a Grafana path such as /d/<dashboard-uid> or a full URL")


class Alert(Model):
    """One alert of the catalog, rendered to one Prometheus rule."""

    model_config = ConfigDict(populate_by_name=True)

    uid: Uid = Field(description="Stable id: the rule's uid label, the runbook's file name.")
    name: AlertName = Field(description="The alertname.")
    group: GroupName = Field(description="The rule group it is rendered into.")
    severity: Literal["critical", "warning", "info", "none"] = Field(description="Routes the alert (docs/alerting.md).")
    expr: Expr = Field(description="The PromQL expression.")
    for_: DurationOrZero = Field(alias="for", description="How long expr must hold before the alert fires.")
    summary: Template = Field(description="One line with the current value ({{ $value }}).")
    description: Template = Field(description="What is wrong and what it affects.")
    runbook: Annotated[str, AfterValidator(_runbook)] = Field(description="docs/runbooks/<uid>.md, or an https:// URL.")
    dashboard: Dashboard | None = Field(None, description="A Grafana path, e.g. /d/sentinel-backend.")
    inhibited_by: tuple[Uid, ...] = Field(
        (), description="uids of the alerts (at least as severe, none inhibited by this one) that make this one redundant."
    )
    inhibited_on: tuple[LabelName, ...] = Field(
        (), description="Labels the inhibiting alert must share with this one, besides environment (e.g. host): the same cause."
    )
    route_around: Literal["integration"] | None = Field(
        None,
        description="The label naming a failing notification integration (slack, pagerduty, email, webhook): Alertmanager "
        "sends this alert through the other integrations, never the failing one (roles/alertmanager).",
    )

    @field_validator("inhibited_by", mode="before")
    @classmethod
    def _one_or_many(cls, value):
        # `inhibited_by: some-uid` reads as a list of one.
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _shows_value(self):
        if "$value" not in self.summary:
            raise SettingsError("summary", "does not show the current value", "put {{ $value }} (or {{ $value | humanize }}) in the summary")
        return self

    @model_validator(mode="after")
    def _inhibition_and_route_make_sense(self):
        if self.inhibited_on and not self.inhibited_by:
            raise SettingsError("inhibited_on", "without inhibited_by", "name the inhibiting alerts in inhibited_by, or remove inhibited_on")
        if self.route_around and not re.search(rf"\b{self.route_around}\b", self.expr):
            raise SettingsError(
                "route_around", f"the expression never names the label {self.route_around!r}",
                f"keep {self.route_around} in the result (e.g. sum by (..., {self.route_around})), or remove route_around",
            )
        return self


class Catalog(Model):
    alerts: tuple[Alert, ...] = Field(min_length=1, description="Every alert, in rule file order.")


def _parse_alert(index: int, raw, source: str) -> Alert:
    uid = raw.get("uid") if isinstance(raw, dict) else None
    where = f"{source}:{uid}" if isinstance(uid, str) and re.fullmatch(r"[a-z0-9][a-z0-9-]{1,62}", uid) else f"{source}:alerts[{index}]"
    if isinstance(raw, dict) and isinstance(uid, str) and (raw.get("runbook") in (None, "")):
        raise SettingsError(f"{where}.runbook", "required key is missing", f"write docs/runbooks/{uid}.md and set runbook: docs/runbooks/{uid}.md")
    try:
        return parse(Alert, raw, where)
    except SettingsError as err:
        if err.key == f"{where}.runbook" and isinstance(uid, str):
            raise SettingsError(err.key, err.problem, err.fix.replace("<uid>", uid)) from None
        raise


def _inhibitors_of(uid: str, by_uid: dict[str, Alert]) -> set[str]:
    """Every uid that inhibits `uid`, directly or through other inhibitions (uid itself when in a loop)."""
    found: set[str] = set()
    todo = [uid]
    while todo:
        alert = by_uid.get(todo.pop())
        for inhibitor in alert.inhibited_by if alert else ():
            if inhibitor not in found:
                found.add(inhibitor)
                todo.append(inhibitor)
    return found


def parse_catalog(document, source: str = "catalog.yml") -> tuple[Alert, ...]:
    """Check a catalog document (as read from YAML); SettingsError names the alert uid and key."""
    if not isinstance(document, dict) or not isinstance(document.get("alerts"), list) or not document["alerts"]:
        raise SettingsError(f"{source}:alerts", "no list of alerts", "write `alerts:` followed by `- uid: ...` entries")
    unknown = sorted(set(document) - {"alerts"})
    if unknown:
        raise SettingsError(f"{source}:{unknown[0]}", "unknown key", "the catalog has only `alerts:`")
    alerts = [_parse_alert(i, raw, source) for i, raw in enumerate(document["alerts"])]
    by_uid: dict[str, Alert] = {}
    names: dict[str, str] = {}
    for alert in alerts:
        if alert.uid in by_uid:
            raise SettingsError(f"{source}:{alert.uid}.uid", "duplicate uid", "give every alert its own uid; never reuse a retired one")
        if alert.name in names:
            raise SettingsError(f"{source}:{alert.uid}.name", f"{alert.name} is also the name of {names[alert.name]}", "give every alert its own name")
        by_uid[alert.uid] = alert
        names[alert.name] = alert.uid
    for alert in alerts:
        for inhibitor in alert.inhibited_by:
            source_alert = by_uid.get(inhibitor)
            key = f"{source}:{alert.uid}.inhibited_by"
            if source_alert is None:
                raise SettingsError(key, f"no alert has uid {inhibitor!r}", "name the uid of an alert in this catalog")
            if _RANK[source_alert.severity] > _RANK[alert.severity]:
                raise SettingsError(
                    key, f"{inhibitor} ({source_alert.severity}) is less severe than {alert.severity}",
                    "only an alert at least as severe may inhibit another (a cause may silence its symptom)",
                )
            if alert.uid in _inhibitors_of(inhibitor, by_uid):
                # Alertmanager would silence every alert of the loop while they all fire.
                raise SettingsError(key, f"{inhibitor} and {alert.uid} would inhibit each other", "keep one direction: the cause inhibits the symptom")
    return tuple(alerts)


@functools.cache
def load_catalog(path: Path = CATALOG_FILE) -> tuple[Alert, ...]:
    """The checked alerts of the catalog file (read with the duplicate-refusing YAML loader)."""
    return parse_catalog(load_yaml(path), path.name)


def with_for_at_most(alerts: tuple[Alert, ...], ceiling: str | None) -> tuple[Alert, ...]:
    """The alerts with every `for` longer than `ceiling` cut to it (unchanged when `ceiling` is None).

    Only the lab sets a ceiling (`alerting.lab_rule_for_at_most`, refused elsewhere by preflight):
    its drills prove the chain fault -> rule -> Alertmanager -> receiver, while the catalog's
    own `for` is proven by the promtool fixtures and measured by `make bench-alerting`.
    """
    if ceiling is None:
        return alerts
    limit = duration_seconds(ceiling)
    return tuple(a.model_copy(update={"for_": ceiling}) if duration_seconds(a.for_) > limit else a for a in alerts)
