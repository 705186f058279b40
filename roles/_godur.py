"""Durations as Go's time.ParseDuration reads them (the collector, Jaeger, Tempo).

Group data writes Prometheus-style durations ("14d", "1h30m"); Go has no "d", "w"
or "y", so every Go config gets the same length in hours, minutes and seconds.
"""

from __future__ import annotations

from roles._model import duration_seconds


def go_duration(value: str) -> str:
    """`value` ("14d", "90s", "200ms") as a Go duration ("336h", "1m30s", "200ms")."""
    millis = round(duration_seconds(value) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    seconds, millis = divmod(millis, 1000)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s"), (millis, "ms")) if n]
    return "".join(parts) or "0s"
