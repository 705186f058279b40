"""`alerting.evaluator`: who evaluates the catalog's rules and sends the notifications.

`prometheus` (default): Prometheus evaluates, Alertmanager notifies; Grafana
only shows and silences those alerts through its Alertmanager datasource.
`grafana`: Grafana evaluates the same catalog (roles/grafana/alerting.py) and
notifies through its own contact points and policy; Prometheus then gets an
empty rule file (roles/prometheus). A list naming both is refused when the
settings are validated, before any host is contacted: every alert would page twice.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator

EVALUATORS: tuple[str, ...] = ("prometheus", "grafana")


def _prometheus_or_grafana(value):
    """A list is accepted only when it names one evaluator; it becomes that name."""
    if isinstance(value, (list, tuple)):
        if len(set(value)) > 1:
            raise ValueError(
                "both prometheus and grafana would evaluate the catalog, so every alert would page twice. "
                'Fix: set alerting.evaluator to "prometheus" (the default: Prometheus evaluates, Alertmanager notifies) '
                'or "grafana" (Grafana-managed rules and contact points), never both'
            )
        if not value:
            raise ValueError('no evaluator is named. Fix: set alerting.evaluator to "prometheus" or "grafana"')
        return value[0]
    return value


Evaluator = Annotated[Literal["prometheus", "grafana"], BeforeValidator(_prometheus_or_grafana)]
