"""OpenTelemetry tracing: one SERVER span per request, CLIENT spans for DB queries.

Everything comes from the standard OTEL_* variables, read by the SDK itself:
OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES for the resource,
OTEL_TRACES_SAMPLER(_ARG) for sampling, OTEL_EXPORTER_OTLP_* for the
exporter. Without an OTLP endpoint nothing is exported, but spans are still
created so that log lines carry trace and span ids.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Mapping

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .config import Settings

TRACER_NAME = "sentinel_standin"

_provider: TracerProvider | None = None


def configure_tracing(settings: Settings) -> TracerProvider:
    """Install the global TracerProvider, exporting over OTLP/HTTP when an endpoint is set."""
    global _provider
    # Values derive from the same env the resource detector reads, so these
    # only fill gaps (e.g. service.version given as SENTRY_RELEASE alone).
    resource = Resource.create(
        {
            "service.name": settings.service_name,
            "service.version": settings.version,
            "deployment.environment": settings.environment,
        }
    )
    provider = TracerProvider(resource=resource)  # sampler from OTEL_TRACES_SAMPLER(_ARG)
    if settings.otlp_endpoint:
        # Imported here so that a host without an endpoint never loads the exporter.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def shutdown_tracing() -> None:
    """Export what is still batched and stop the exporter."""
    if _provider is not None:
        _provider.shutdown()


def tracer() -> trace.Tracer:
    """The stand-in's tracer."""
    return trace.get_tracer(TRACER_NAME)


@contextmanager
def server_span(
    method: str, route: str | None, path: str, headers: Mapping[str, str], attributes: Mapping[str, object]
) -> Iterator[Span]:
    """A SERVER span named ``METHOD route`` (``METHOD`` alone when no route matched).

    Continues any W3C traceparent the caller sent.
    """
    parent = propagate.extract(dict(headers))
    base: dict[str, object] = {"http.request.method": method, "url.path": path}
    if route is not None:
        base["http.route"] = route
    with tracer().start_as_current_span(
        f"{method} {route}" if route is not None else method,
        context=parent,
        kind=SpanKind.SERVER,
        attributes={**base, **attributes},
        # The request lifecycle records and reports errors itself, with the
        # status code it chose; the SDK's own handling would mark 4xx as errors.
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def finish_server_span(span: Span, status: int, error: BaseException | None) -> None:
    """Set the response status; per HTTP semconv only 5xx marks a SERVER span as an error."""
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_attribute("error.type", type(error).__name__ if error else str(status))
        if error is not None:
            span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, str(error) if error else None))


@contextmanager
def db_span(operation: str, table: str, statement: str) -> Iterator[Span]:
    """A CLIENT span for one SQL query, named ``OPERATION table``."""
    with tracer().start_as_current_span(
        f"{operation} {table}",
        kind=SpanKind.CLIENT,
        attributes={
            "db.system": "postgresql",
            "db.name": "sentinel",
            "db.operation": operation,
            "db.sql.table": table,
            "db.statement": statement,
        },
    ) as span:
        yield span


def current_span_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span as hex, or None outside a span."""
    ctx = trace.get_current_span().get_span_context()
    return (format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")) if ctx.is_valid else None
