"""The retention policy: how long logs and metrics are kept, and the compliance floors.

One structure in group data (`retention` in group_data/all.py), validated before
pyinfra connects. Prometheus applies `prometheus` now (`prometheus_flags()`); a Loki
role will read `default_period` and `streams` (Loki's `retention_period` and
`retention_stream`) once Loki can be deployed. `minimums` are the compliance rules
the rest must never break. Where each number comes from: docs/retention.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from roles._schema import SettingsError, check_duration, check_size, duration_seconds
from roles.retention.selectors import Selector, SelectorError, covers, may_overlap, parse_selector

# Loki's compactor refuses a retention_stream period under 24h ("retention period
# must be >= 24h") and documents 24h as the minimum retention period.
LOKI_MIN_PERIOD = "24h"
# Prometheus cuts TSDB blocks of 2h: a shorter retention deletes data still being written.
PROMETHEUS_MIN_TIME = "2h"


def _selector(key: str, text: str) -> Selector:
    try:
        return parse_selector(text)
    except SelectorError as err:
        raise SettingsError(
            key,
            f"{text!r} is not a LogQL stream selector: {err}",
            'write it like {stream="security"} or {service="sentinel-backend", stream=~"audit|security"}',
        ) from None


def _check_name(key: str, name: str) -> None:
    if not name.strip():
        raise SettingsError(key, "is empty", "name the rule, e.g. \"security\" or \"PIPEDA security logs\"")


def _check_log_period(key: str, value: str) -> None:
    check_duration(key, value)
    if duration_seconds(value) < duration_seconds(LOKI_MIN_PERIOD):
        raise SettingsError(
            key, f"{value} is under {LOKI_MIN_PERIOD}, which Loki's compactor refuses", f"use {LOKI_MIN_PERIOD} or more"
        )


@dataclass(frozen=True)
class StreamRule:
    """Keep the log streams `selector` matches for `period` (a Loki `retention_stream` rule).

    When a stream matches several rules, Loki applies the highest `priority`; between
    equal priorities it keeps the SHORTER period, so overlapping rules of equal
    priority are refused.
    """

    name: str
    selector: str
    period: str
    priority: int = 1

    def validate(self, prefix: str) -> None:
        _check_name(f"{prefix}.name", self.name)
        _selector(f"{prefix}.selector", self.selector)
        _check_log_period(f"{prefix}.period", self.period)

    @property
    def parsed(self) -> Selector:
        return parse_selector(self.selector)


@dataclass(frozen=True)
class ComplianceMinimum:
    """A legal or contractual floor: the streams `selector` matches are kept `at_least` this long."""

    name: str
    selector: str
    at_least: str

    def validate(self, prefix: str) -> None:
        _check_name(f"{prefix}.name", self.name)
        _selector(f"{prefix}.selector", self.selector)
        check_duration(f"{prefix}.at_least", self.at_least, minimum="1s")

    @property
    def parsed(self) -> Selector:
        return parse_selector(self.selector)


@dataclass(frozen=True)
class PrometheusRetention:
    """Prometheus's own retention: whichever of `time` and `size` is reached first deletes."""

    time: str = "15d"  # operators: metrics are kept 15 days
    size: str = "0"  # "0" = no size limit; else e.g. "50GB" (base 2: 50GiB)

    def validate(self, prefix: str) -> None:
        check_duration(f"{prefix}.time", self.time)
        if duration_seconds(self.time) < duration_seconds(PROMETHEUS_MIN_TIME):
            raise SettingsError(
                f"{prefix}.time",
                f"{self.time} is under {PROMETHEUS_MIN_TIME}, Prometheus's block length: it would delete data still being written",
                f"use {PROMETHEUS_MIN_TIME} or more (the operators' policy is 15d)",
            )
        check_size(f"{prefix}.size", self.size)


# The defaults are the operators' policy (issue 4); group_data/all.py spells them out.
_DEFAULT_STREAMS = (
    # PIPEDA, per the operators: security logs (auth failures, forbidden, rate limiting) 1 year.
    StreamRule("security", '{stream="security"}', "365d"),
    # PIPEDA, per the operators: audit logs (who did what) 1 year. This also keeps
    # payment-adjacent audit trails 1 year, which PCI-DSS 10.5.1 asks for in total.
    StreamRule("audit", '{stream="audit"}', "365d"),
)
_DEFAULT_MINIMUMS = (
    ComplianceMinimum("PIPEDA security logs", '{stream="security"}', "365d"),
    ComplianceMinimum("PIPEDA audit logs", '{stream="audit"}', "365d"),
    # PCI-DSS 10.5.1: the last 3 months of audit history immediately available for
    # analysis (the 12 months it also requires are met by the audit rule above).
    ComplianceMinimum("PCI-DSS payment audit trails", '{stream="audit", category="payment"}', "90d"),
)


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each log stream and the metrics are kept; see docs/retention.md."""

    # Logs no stream rule matches: today the `app` stream (operations). Operators: 30 days.
    default_period: str = "30d"
    streams: tuple[StreamRule, ...] = _DEFAULT_STREAMS
    prometheus: PrometheusRetention = field(default_factory=PrometheusRetention)
    minimums: tuple[ComplianceMinimum, ...] = _DEFAULT_MINIMUMS

    def validate(self, prefix: str) -> None:
        # Each part again: defaults never pass through parse(), and tests build policies directly.
        _check_log_period(f"{prefix}.default_period", self.default_period)
        for i, rule in enumerate(self.streams):
            rule.validate(f"{prefix}.streams[{i}]")
        for i, minimum in enumerate(self.minimums):
            minimum.validate(f"{prefix}.minimums[{i}]")
        self.prometheus.validate(f"{prefix}.prometheus")
        _check_unique(prefix, "streams", [r.name for r in self.streams])
        _check_unique(prefix, "minimums", [m.name for m in self.minimums])
        self._check_overlaps(prefix)
        self._check_minimums(prefix)

    def _check_overlaps(self, prefix: str) -> None:
        rules = [(i, r, r.parsed) for i, r in enumerate(self.streams)]
        for i, first, a in rules:
            for j, second, b in rules[i + 1 :]:
                if first.priority == second.priority and may_overlap(a, b):
                    raise SettingsError(
                        f"{prefix}.streams[{j}].priority",
                        f"streams[{j}] ({second.name}, {second.selector}) and streams[{i}] ({first.name}, {first.selector}) "
                        f"may match the same streams at the same priority {first.priority}, and Loki then keeps the shorter period",
                        "give the rule that must win a higher priority (the highest applies), or make the selectors exclusive "
                        'with different values of one label (stream="audit" / stream="security")',
                    )

    def _check_minimums(self, prefix: str) -> None:
        rules = [(i, r, r.parsed) for i, r in enumerate(self.streams)]
        for minimum in self.minimums:
            scope, floor = minimum.parsed, duration_seconds(minimum.at_least)
            for i, rule, selector in rules:
                if duration_seconds(rule.period) < floor and may_overlap(selector, scope):
                    raise SettingsError(
                        f"{prefix}.streams[{i}].period",
                        f"{rule.period} is below the {minimum.name} minimum of {minimum.at_least} "
                        f"(rule {rule.name!r}, {rule.selector}, may match {minimum.selector})",
                        f"keep rule {rule.name!r} at {minimum.at_least} or more, or narrow its selector so it cannot match "
                        f'{minimum.selector} (e.g. stream="app")',
                    )
            covered = any(covers(selector, scope) for _, _, selector in rules)
            if not covered and duration_seconds(self.default_period) < floor:
                raise SettingsError(
                    f"{prefix}.default_period",
                    f"{self.default_period} is below the {minimum.name} minimum of {minimum.at_least}, "
                    f"and no stream rule covers {minimum.selector}",
                    f"add a stream rule for {minimum.selector} with a period of {minimum.at_least} or more, "
                    f"or raise default_period to {minimum.at_least}",
                )


def _check_unique(prefix: str, list_key: str, names: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise SettingsError(
                f"{prefix}.{list_key}[{i}].name", f"{name!r} is also the name of {list_key}[{seen[name]}]", "give each rule its own name"
            )
        seen[name] = i
