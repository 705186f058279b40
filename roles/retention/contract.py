"""What the log stores' stream labels can be: the backend contract's label fields and their values.

The stream labels are the same in Loki and VictoriaLogs (docs/contract.md section 4,
"Stream labels"): `service`, `env`, `stream`, `level`. A retention rule or an erasure
selector over any other label matches nothing, silently: it is refused instead.
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

from roles._model import SettingsError
from roles.retention.selectors import Selector

CONTRACT = Path(__file__).resolve().parents[2] / "files" / "backend" / "contract.yml"


@functools.cache
def stream_labels() -> dict[str, tuple[str, ...] | None]:
    """Each stream label of the contract with its closed set of values (None: free-form, e.g. service)."""
    logs = yaml.safe_load(CONTRACT.read_text())["logs"]
    values = {f["name"]: tuple(f["values"]) for f in logs["fields"] if "values" in f}
    return {name: values.get(name) for name in logs["loki_label_fields"]}


def streams() -> tuple[str, ...]:
    """The log streams of the contract: app, security, audit."""
    return stream_labels()["stream"] or ()


def unmatchable(selector: Selector) -> str | None:
    """Why no stream of the contract can match `selector`, or None when some may."""
    labels = stream_labels()
    for matcher in selector.matchers:
        if matcher.name not in labels:
            if matcher.matches(""):
                continue  # an absent label reads as "": harmless, e.g. category!="x"
            return f"label {matcher.name!r} is not a stream label of the contract ({', '.join(labels)})"
        allowed = labels[matcher.name]
        if allowed is not None and not any(matcher.matches(v) for v in allowed):
            return f"{matcher} matches none of the contract's {matcher.name} values ({', '.join(allowed)})"
    return None


def check_policy_labels(policy, prefix: str) -> None:
    """Refuse a stream rule of `policy` that no stream of the contract can match."""
    for i, rule in enumerate(policy.streams):
        why = unmatchable(rule.parsed)
        if why:
            raise SettingsError(
                f"{prefix}.streams[{i}].selector",
                f"rule {rule.name!r} ({rule.selector}) can never match a log line: {why}",
                "select on the stream labels service, env, stream, level with values the backend emits "
                '(e.g. {stream="security"}); a new label needs the contract first (docs/contract.md section 4)',
            )
