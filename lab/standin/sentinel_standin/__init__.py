"""Stand-in for the Sentinel backend, for the observability lab.

The real Sentinel backend is a Node/TypeScript service that lives elsewhere.
This package emits the same telemetry it does (Prometheus metrics, JSON log
lines, OpenTelemetry traces, Sentry errors) so that dashboards, alerts and
retention rules can be built and tested against it. docs/contract.md is the
contract both must honour.

Run it with ``python -m sentinel_standin``; configuration comes only from
environment variables (see ``config.py``).
"""

__version__ = "0.1.0"
