"""`alerting.evaluator`: who evaluates the catalog's rules and sends the notifications.

`prometheus` (default): Prometheus evaluates, Alertmanager notifies; Grafana
only shows and silences those alerts through its Alertmanager datasource.
`grafana`: Grafana evaluates the same catalog (roles/grafana/alerting.py) and
notifies through its own contact points and policy. A list naming both is
refused before any host is contacted: every alert would page twice.
"""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from roles._model import Model, parse

Evaluator = Literal["prometheus", "grafana"]
EVALUATORS: tuple[str, ...] = ("prometheus", "grafana")


class EvaluatorChoice(Model):
    evaluator: Evaluator | list[Evaluator] = "prometheus"

    @field_validator("evaluator")
    @classmethod
    def _exactly_one(cls, value):
        if isinstance(value, list):
            if len(set(value)) > 1:
                raise ValueError(
                    "both prometheus and grafana would evaluate the catalog, so every alert would page twice. "
                    'Fix: set alerting.evaluator to "prometheus" (the default: Prometheus evaluates, Alertmanager notifies) '
                    'or "grafana" (Grafana-managed rules and contact points), never both'
                )
            if not value:
                raise ValueError('no evaluator is named. Fix: set alerting.evaluator to "prometheus" or "grafana"')
        return value

    @property
    def chosen(self) -> Evaluator:
        return self.evaluator[0] if isinstance(self.evaluator, list) else self.evaluator


def choose(value, prefix: str) -> Evaluator:
    """The evaluator named by `value` (a name or a list of names); SettingsError keyed `<prefix>.evaluator`."""
    if isinstance(value, tuple):
        value = list(value)
    return parse(EvaluatorChoice, {"evaluator": value}, prefix).chosen
