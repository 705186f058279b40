"""The retention policy in VictoriaLogs' LogsQL, and the deletes that enforce it there.

VictoriaLogs keeps every log for one `-retentionPeriod` per instance; it has no
per-stream retention. The toolkit therefore runs it with the policy's LONGEST period
and deletes, once a day, what a shorter class must no longer keep
(`/delete/run_task?filter=<LogsQL>`, docs/retention.md "VictoriaLogs").

A class is what Loki would apply to a stream:

- a stream rule matches the streams its selector matches, minus those a rule of
  higher priority matches (Loki applies the highest priority; equal priorities
  never overlap, preflight refuses that);
- the default class is every stream no rule matches.

The LogQL stream selector of a rule is also a valid LogsQL stream filter (both take
Prometheus label matchers over the same label names: service, env, stream, level),
so the translation is the canonical selector text, combined with `NOT`.
"""

from __future__ import annotations

from dataclasses import dataclass

from roles._model import duration_seconds
from roles.retention.selectors import Selector, parse_selector

DAY = 86400


@dataclass(frozen=True)
class RetentionClass:
    """The streams kept for `period` (`name` is the rule's name, or "default")."""

    name: str
    period: str
    # LogsQL filter selecting this class's streams (no time filter).
    streams: str

    def expired(self) -> str:
        """LogsQL for this class's lines older than its period: what the daily job deletes."""
        return f"{self.streams} _time:>{logsql_duration(self.period)}"


def stream_filter(selector: Selector | str) -> str:
    """A LogQL stream selector as a LogsQL stream filter (same matcher syntax)."""
    parsed = parse_selector(selector) if isinstance(selector, str) else selector
    return str(parsed)


def logsql_duration(period: str) -> str:
    """A policy duration in a unit LogsQL and `-retentionPeriod` read the same way.

    Whole days become `<n>d`, anything else whole hours `<n>h` (log periods are at
    least 24h); `m` would mean months to `-retentionPeriod`, so it is never written.
    """
    seconds = int(duration_seconds(period))
    if seconds % DAY == 0:
        return f"{seconds // DAY}d"
    return f"{-(-seconds // 3600)}h"


def classes(policy) -> list[RetentionClass]:
    """Every retention class of `policy` (a RetentionPolicy), stream rules first, then the default."""
    rules = list(policy.streams)
    result = []
    for rule in rules:
        higher = [other for other in rules if other.priority > rule.priority]
        parts = [stream_filter(rule.selector)] + [f"NOT {stream_filter(o.selector)}" for o in higher]
        result.append(RetentionClass(rule.name, rule.period, " ".join(parts)))
    if rules:
        default = " ".join(f"NOT {stream_filter(rule.selector)}" for rule in rules)
    else:
        default = "*"
    result.append(RetentionClass("default", policy.default_period, default))
    return result


def longest_period(policy) -> str:
    """The instance-wide `-retentionPeriod`: the longest period of any class."""
    return logsql_duration(max((c.period for c in classes(policy)), key=duration_seconds))


def enforcement_deletes(policy) -> list[RetentionClass]:
    """The classes kept shorter than the instance's retention: each needs a daily delete."""
    longest = duration_seconds(longest_period(policy))
    return [c for c in classes(policy) if duration_seconds(c.period) < longest]
