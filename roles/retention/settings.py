"""The retention policy: how long logs and metrics are kept, and the compliance floors.

One structure in group data (`retention` in group_data/all.py), validated before
pyinfra connects. Prometheus applies `prometheus` now (`prometheus_flags()`); a Loki
role will read `default_period` and `streams` (Loki's `retention_period` and
`retention_stream`) once Loki can be deployed. `minimums` are the compliance rules
the rest must never break. Where each number comes from: docs/retention.md.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from roles._model import Duration, Int, Model, Size, SettingsError, Text, duration_seconds
from roles.retention.selectors import Selector, SelectorError, covers, may_overlap, parse_selector

# Loki's compactor refuses a retention_stream period under 24h ("retention period
# must be >= 24h") and documents 24h as the minimum retention period.
LOKI_MIN_PERIOD = "24h"
# Prometheus cuts TSDB blocks of 2h: a shorter retention deletes data still being written.
PROMETHEUS_MIN_TIME = "2h"


def _selector(text: str) -> str:
    try:
        parse_selector(text)
    except SelectorError as err:
        raise ValueError(
            f"{text!r} is not a LogQL stream selector: {err}. Fix: "
            'write it like {stream="security"} or {service="sentinel-backend", stream=~"audit|security"}'
        ) from None
    return text


def _rule_name(name: str) -> str:
    if not name.strip():
        raise ValueError('is empty. Fix: name the rule, e.g. "security" or "PIPEDA security logs"')
    return name


def _log_period(value: str) -> str:
    if duration_seconds(value) < duration_seconds(LOKI_MIN_PERIOD):
        raise ValueError(f"{value} is under {LOKI_MIN_PERIOD}, which Loki's compactor refuses. Fix: use {LOKI_MIN_PERIOD} or more")
    return value


def _prometheus_time(value: str) -> str:
    if duration_seconds(value) < duration_seconds(PROMETHEUS_MIN_TIME):
        raise ValueError(
            f"{value} is under {PROMETHEUS_MIN_TIME}, Prometheus's block length: it would delete data still being written. "
            f"Fix: use {PROMETHEUS_MIN_TIME} or more (the operators' policy is 15d)"
        )
    return value


LogSelector = Annotated[str, AfterValidator(_selector)]
RuleName = Annotated[Text, AfterValidator(_rule_name)]
LogPeriod = Annotated[Duration, AfterValidator(_log_period)]


class StreamRule(Model):
    """Keep the log streams `selector` matches for `period` (a Loki `retention_stream` rule).

    When a stream matches several rules, Loki applies the highest `priority`; between
    equal priorities it keeps the SHORTER period, so overlapping rules of equal
    priority are refused.
    """

    name: RuleName = Field(description="A name for the rule, unique in the policy.")
    selector: LogSelector = Field(description="LogQL stream selector, e.g. {stream=\"security\"}.")
    period: LogPeriod = Field(description="How long matching streams are kept (at least 24h).")
    priority: Annotated[Int, Field(ge=-2_147_483_648, le=2_147_483_647)] = Field(
        1, description="The highest priority wins when rules overlap (a Go int32 in Loki's config)."
    )

    @property
    def parsed(self) -> Selector:
        return parse_selector(self.selector)


class ComplianceMinimum(Model):
    """A legal or contractual floor: the streams `selector` matches are kept `at_least` this long."""

    name: RuleName = Field(description="The rule's name, e.g. \"PIPEDA security logs\".")
    selector: LogSelector = Field(description="The streams the floor applies to.")
    at_least: Duration = Field(description="The shortest allowed retention of those streams.")

    @property
    def parsed(self) -> Selector:
        return parse_selector(self.selector)


class PrometheusRetention(Model):
    """Prometheus's own retention: whichever of `time` and `size` is reached first deletes."""

    time: Annotated[Duration, AfterValidator(_prometheus_time)] = Field("15d", description="How long metrics are kept (operators: 15 days).")
    size: Size = Field("0", description='Size cap of the TSDB, e.g. "50GB" (base 2: 50GiB); "0" = no limit.')


# The compliance floors live in code: group data can add minimums or raise these,
# never lower or delete them (docs/retention.md says where each comes from).
COMPLIANCE_FLOORS = (
    # PIPEDA, per the operators: security logs (auth failures, forbidden, rate limiting) 1 year.
    ComplianceMinimum(name="PIPEDA security logs", selector='{stream="security"}', at_least="365d"),
    # PIPEDA, per the operators: audit logs (who did what) 1 year.
    ComplianceMinimum(name="PIPEDA audit logs", selector='{stream="audit"}', at_least="365d"),
    # PCI-DSS 10.5.1: the last 3 months of audit history immediately available for
    # analysis (the 12 months it also requires are met by the audit rule).
    ComplianceMinimum(name="PCI-DSS payment audit trails", selector='{stream="audit", category="payment"}', at_least="90d"),
)

# The defaults are the operators' policy (issue 4); group_data/all.py spells them out.
_DEFAULT_STREAMS = (
    StreamRule(name="security", selector='{stream="security"}', period="365d"),
    # This also keeps payment-adjacent audit trails 1 year, which PCI-DSS 10.5.1 asks for in total.
    StreamRule(name="audit", selector='{stream="audit"}', period="365d"),
)


class RetentionPolicy(Model):
    """How long each log stream and the metrics are kept; see docs/retention.md."""

    default_period: LogPeriod = Field("30d", description="Logs no stream rule matches (today the app stream). Operators: 30 days.")
    streams: tuple[StreamRule, ...] = Field(_DEFAULT_STREAMS, description="Loki retention_stream rules.")
    prometheus: PrometheusRetention = Field(PrometheusRetention(), description="Prometheus's TSDB retention.")
    minimums: tuple[ComplianceMinimum, ...] = Field(
        COMPLIANCE_FLOORS,
        description="Compliance floors; the ones in code (PIPEDA 365d, PCI 90d) always apply and can only be raised here.",
    )

    @property
    def effective_minimums(self) -> tuple[ComplianceMinimum, ...]:
        """The code's floors plus those of group data (a same-named entry there may only raise a floor)."""
        given = {m.name for m in self.minimums}
        return tuple(f for f in COMPLIANCE_FLOORS if f.name not in given) + self.minimums

    @model_validator(mode="after")
    def _check(self):
        _check_unique("streams", [r.name for r in self.streams])
        _check_unique("minimums", [m.name for m in self.minimums])
        self._check_floors()
        self._check_overlaps()
        self._check_minimums()
        return self

    def _check_floors(self) -> None:
        floors = {f.name: f for f in COMPLIANCE_FLOORS}
        for i, minimum in enumerate(self.minimums):
            floor = floors.get(minimum.name)
            if floor and (duration_seconds(minimum.at_least) < duration_seconds(floor.at_least) or minimum.selector != floor.selector):
                raise SettingsError(
                    f"minimums[{i}]",
                    f"lowers the compliance floor {floor.name!r} ({floor.selector} at least {floor.at_least}, set in code)",
                    f"keep at_least {floor.at_least} or more and selector {floor.selector}, or drop the entry (the floor applies anyway)",
                )

    def _check_overlaps(self) -> None:
        rules = [(i, r, r.parsed) for i, r in enumerate(self.streams)]
        for i, first, a in rules:
            for j, second, b in rules[i + 1 :]:
                if first.priority == second.priority and may_overlap(a, b):
                    raise SettingsError(
                        f"streams[{j}].priority",
                        f"streams[{j}] ({second.name}, {second.selector}) and streams[{i}] ({first.name}, {first.selector}) "
                        f"may match the same streams at the same priority {first.priority}, and Loki then keeps the shorter period",
                        "give the rule that must win a higher priority (the highest applies), or make the selectors exclusive "
                        'with different values of one label (stream="audit" / stream="security")',
                    )

    def _check_minimums(self) -> None:
        rules = [(i, r, r.parsed) for i, r in enumerate(self.streams)]
        for minimum in self.effective_minimums:
            scope, floor = minimum.parsed, duration_seconds(minimum.at_least)
            for i, rule, selector in rules:
                if duration_seconds(rule.period) < floor and may_overlap(selector, scope):
                    raise SettingsError(
                        f"streams[{i}].period",
                        f"{rule.period} is below the {minimum.name} minimum of {minimum.at_least} "
                        f"(rule {rule.name!r}, {rule.selector}, may match {minimum.selector})",
                        f"keep rule {rule.name!r} at {minimum.at_least} or more, or narrow its selector so it cannot match "
                        f'{minimum.selector} (e.g. stream="app")',
                    )
            covered = any(covers(selector, scope) for _, _, selector in rules)
            if not covered and duration_seconds(self.default_period) < floor:
                raise SettingsError(
                    "default_period",
                    f"{self.default_period} is below the {minimum.name} minimum of {minimum.at_least}, "
                    f"and no stream rule covers {minimum.selector}",
                    f"add a stream rule for {minimum.selector} with a period of {minimum.at_least} or more, "
                    f"or raise default_period to {minimum.at_least}",
                )


def _check_unique(list_key: str, names: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise SettingsError(
                f"{list_key}[{i}].name", f"{name!r} is also the name of {list_key}[{seen[name]}]", "give each rule its own name"
            )
        seen[name] = i
