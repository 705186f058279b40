"""The alert catalog (files/alerting/catalog.yml): loaded once, checked before any host is contacted.

Each alert is checked on its own (keys, severity, duration, runbook, a cheap
structural look at the PromQL and the templates) and against the others
(duplicate uid or name, inhibitions). `promtool check rules` on the rendered file
is the real parser; preflight runs it when a promtool is at hand, and the
Prometheus host always runs it before the file replaces the live one.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from roles._schema import SettingsError, check_duration

REPO = Path(__file__).resolve().parents[2]
CATALOG_FILE = REPO / "files" / "alerting" / "catalog.yml"
SEVERITIES = ("critical", "warning", "info")
_RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}  # 0 is the most severe
_REQUIRED = ("uid", "name", "group", "severity", "expr", "for", "summary", "description", "runbook")
_OPTIONAL = ("dashboard", "inhibited_by")
_UID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_GROUP = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_URL = re.compile(r"^https?://\S+$")
_DASHBOARD = re.compile(r"^/\S+$")
_PAIRS = {")": "(", "]": "[", "}": "{"}


@dataclass(frozen=True)
class Alert:
    uid: str
    name: str
    group: str
    severity: str
    expr: str
    for_: str
    summary: str
    description: str
    runbook: str  # a repository path (docs/runbooks/<uid>.md) or a URL
    dashboard: str | None = None  # a Grafana path, e.g. /d/sentinel-backend
    inhibited_by: str | None = None  # uid of the more severe alert that makes this one redundant


def expr_problem(expr: str) -> str | None:
    """A cheap structural check of a PromQL expression; None when nothing is obviously wrong.

    Finds unbalanced brackets, unterminated strings and dangling operators. It is
    no parser: promtool is, and it runs on the rendered rule file.
    """
    stack: list[str] = []
    quote = None
    escaped = False
    for char in expr:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
            continue
        if char in "\"'`":
            quote = char
        elif char in "([{":
            stack.append(char)
        elif char in ")]}":
            if not stack or stack.pop() != _PAIRS[char]:
                return f"unbalanced {char!r}"
    if quote:
        return f"unterminated string (missing {quote})"
    if stack:
        return f"unclosed {stack[-1]!r}"
    text = expr.strip()
    if not text:
        return "empty expression"
    if re.search(r"(?:[-+*/%^<>=!,]|\b(?:and|or|unless))\s*$", text):
        return "ends with an operator"
    if re.match(r"^(?:[*/%^<>=!,]|(?:and|or|unless)\b)", text):
        return "starts with an operator"
    return None


def template_problem(text: str) -> str | None:
    """Unbalanced Go template delimiters, the usual slip in annotations."""
    if text.count("{{") != text.count("}}"):
        return "unbalanced {{ }} template delimiters"
    return None


def _parse_alert(index: int, raw, source: str) -> Alert:
    where = f"{source}:alerts[{index}]"
    if not isinstance(raw, dict):
        raise SettingsError(where, "is not a mapping", "write each alert as `- uid: ...` with its keys")
    uid = raw.get("uid")
    if not isinstance(uid, str) or not _UID.match(uid):
        raise SettingsError(f"{where}.uid", f"{uid!r} is not a valid uid", "use 2-63 lowercase letters, digits and dashes")
    where = f"{source}:{uid}"
    unknown = sorted(set(raw) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise SettingsError(f"{where}.{unknown[0]}", "unknown key", f"use only {', '.join(_REQUIRED + _OPTIONAL)}")
    for key in _REQUIRED:
        if key not in raw or raw[key] in (None, ""):
            fix = f"write docs/runbooks/{uid}.md and set runbook: docs/runbooks/{uid}.md" if key == "runbook" else f"set {key}"
            raise SettingsError(f"{where}.{key}", "required key is missing", fix)
        if not isinstance(raw[key], str):
            raise SettingsError(f"{where}.{key}", f"expected a string, got {raw[key]!r}", f"quote the value of {key}")
    if not _NAME.match(raw["name"]):
        raise SettingsError(f"{where}.name", f"{raw['name']!r} is not a valid alert name", "use CamelCase letters and digits, e.g. BackendDown")
    if not _GROUP.match(raw["group"]):
        raise SettingsError(f"{where}.group", f"{raw['group']!r} is not a valid group", "use lowercase letters, digits and dashes")
    if raw["severity"] not in SEVERITIES:
        raise SettingsError(f"{where}.severity", f"unknown severity {raw['severity']!r}", f"use one of: {', '.join(SEVERITIES)}")
    check_duration(f"{where}.for", raw["for"])
    problem = expr_problem(raw["expr"])
    if problem:
        raise SettingsError(f"{where}.expr", f"the query does not parse: {problem}", "fix the PromQL; `promtool check rules` shows the position")
    for key in ("summary", "description"):
        problem = template_problem(raw[key])
        if problem:
            raise SettingsError(f"{where}.{key}", problem, "close every {{ with }}")
    if "$value" not in raw["summary"]:
        raise SettingsError(f"{where}.summary", "does not show the current value", "put {{ $value }} (or {{ $value | humanize }}) in the summary")
    runbook = raw["runbook"]
    if not _URL.match(runbook) and not (REPO / runbook).is_file():
        raise SettingsError(f"{where}.runbook", f"{runbook} does not exist", f"write docs/runbooks/{uid}.md (what it means, first checks, how to resolve)")
    dashboard = raw.get("dashboard")
    if dashboard is not None and not (isinstance(dashboard, str) and (_DASHBOARD.match(dashboard) or _URL.match(dashboard))):
        raise SettingsError(f"{where}.dashboard", f"{dashboard!r} is not a dashboard link", "write a Grafana path such as /d/<dashboard-uid> or a full URL")
    return Alert(
        uid=uid,
        name=raw["name"],
        group=raw["group"],
        severity=raw["severity"],
        expr=raw["expr"].strip(),
        for_=raw["for"],
        summary=raw["summary"].strip(),
        description=raw["description"].strip(),
        runbook=runbook,
        dashboard=dashboard,
        inhibited_by=raw.get("inhibited_by"),
    )


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
        if alert.inhibited_by is None:
            continue
        source_alert = by_uid.get(alert.inhibited_by)
        if source_alert is None:
            raise SettingsError(f"{source}:{alert.uid}.inhibited_by", f"no alert has uid {alert.inhibited_by!r}", "name the uid of an alert in this catalog")
        if _RANK[source_alert.severity] >= _RANK[alert.severity]:
            raise SettingsError(
                f"{source}:{alert.uid}.inhibited_by",
                f"{alert.inhibited_by} ({source_alert.severity}) is not more severe than {alert.severity}",
                "only a more severe alert may inhibit another",
            )
    return tuple(alerts)


@functools.cache
def load_catalog(path: Path = CATALOG_FILE) -> tuple[Alert, ...]:
    """The checked alerts of the catalog file."""
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SettingsError(path.name, f"is not valid YAML: {err}", "fix the YAML syntax") from None
    return parse_catalog(document, path.name)
