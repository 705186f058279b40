"""Sentry error reporting, set up the way the real backend should be.

Policy (docs/contract.md section 6; docs/howto-sentry-node.md for the Node side):
- only server errors become Sentry events: a 5xx response (tagged with its
  status) or a crash (an exception nothing handled); 4xx are the caller's
  fault and are never captured, and ``before_send`` drops an event tagged
  below 500 and an untagged one that is not a crash, so that no other code
  path can leak one;
- each event carries the user (id and role from the X-User-* headers; the
  email for staff and admin only, a member's is personal data),
  the correlation id as tag ``correlation_id``, the OpenTelemetry trace id as
  tag ``trace_id`` (and as the event's trace context), release and
  environment from the environment;
- breadcrumbs are the request's own log lines (via the SDK's logging
  integration) and its DB queries, cleared at the start of each request.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator

import sentry_sdk
import sentry_sdk.utils
from sentry_sdk.integrations.logging import LoggingIntegration

from . import jsonlog
from .config import Settings
from .context import RequestContext

SENTRY_FLUSH_TIMEOUT_S = 5.0
STATUS_TAG = "http.status_code"
# Roles whose email (a work address) goes with an event; a member's is personal data.
EMAIL_ROLES = ("staff", "admin")

_enabled = False


def only_server_errors(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    """``before_send``: keep an event captured for a 5xx response, or a crash; drop the rest."""
    tags = event.get("tags") or {}
    if STATUS_TAG in tags:
        try:
            return event if int(tags[STATUS_TAG]) >= 500 else None
        except (TypeError, ValueError):
            return None
    return event if is_crash(event) else None


def is_crash(event: dict[str, Any]) -> bool:
    """An exception nothing handled (the SDKs' uncaught-exception hooks mark it ``handled: false``)."""
    values = (event.get("exception") or {}).get("values") or []
    return any((value.get("mechanism") or {}).get("handled") is False for value in values)


def configure_sentry(settings: Settings) -> bool:
    """Initialise the Sentry SDK from Settings; return False (and do nothing) without a DSN."""
    global _enabled
    if not settings.sentry_dsn:
        return False
    try:
        sentry_sdk.utils.Dsn(settings.sentry_dsn)
    except sentry_sdk.utils.BadDsn as exc:
        # As in the Node SDK, a bad DSN turns Sentry off rather than taking
        # the service down; here it is also logged. Never the DSN itself.
        jsonlog.error("Sentry disabled: SENTRY_DSN is not a valid DSN", detail=str(exc))
        return False
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.sentry_environment,
        release=settings.sentry_release,
        traces_sample_rate=settings.sentry_traces_sample_rate,
        profiles_sample_rate=settings.sentry_profiles_sample_rate,
        before_send=only_server_errors,
        # Log lines become breadcrumbs, never events: events come only from
        # the 5xx path.
        integrations=[LoggingIntegration(level=logging.INFO, event_level=None, sentry_logs_level=None)],
        send_default_pii=False,  # user context is set explicitly; no IPs, cookies or bodies
        # Frame locals would carry request headers (tokens) into Sentry.
        include_local_variables=False,
        max_breadcrumbs=50,
    )
    _enabled = True
    return True


def flush_sentry() -> None:
    """Send queued events before the process exits."""
    if _enabled:
        sentry_sdk.flush(timeout=SENTRY_FLUSH_TIMEOUT_S)


@contextmanager
def request_scope(ctx: RequestContext, span_ids: tuple[str, str] | None) -> Iterator[Any]:
    """Isolate Sentry state to one request, tagged with its user, correlation id and trace.

    ``span_ids`` are the (trace id, span id) of the request's OpenTelemetry
    SERVER span: the Sentry trace continues it, so an error in Sentry and the
    trace in Tempo share one trace id. Yields the Sentry transaction (sampled
    by SENTRY_TRACES_SAMPLE_RATE), or None when Sentry is off.
    """
    if not _enabled:
        yield None
        return
    with sentry_sdk.isolation_scope() as scope:
        # The scope is forked from the thread's parent: drop what it inherited.
        scope.clear_breadcrumbs()
        scope.set_tag("correlation_id", ctx.correlation_id)
        if ctx.user is not None:
            user = {"id": ctx.user.id, "role": ctx.user.role}
            if ctx.user.email and ctx.user.role in EMAIL_ROLES:
                user["email"] = ctx.user.email
            scope.set_user(user)
        # No sampled flag: Sentry samples its transaction on its own rate.
        incoming = {}
        if span_ids is not None:
            scope.set_tag("trace_id", span_ids[0])
            incoming["sentry-trace"] = f"{span_ids[0]}-{span_ids[1]}"
        transaction = scope.continue_trace(incoming, op="http.server", name=f"{ctx.method} {ctx.route}", source="route")
        with sentry_sdk.start_transaction(transaction):
            yield transaction


def capture_server_error(error: BaseException, status: int) -> str | None:
    """Report ``error`` for a 5xx response; return the Sentry event id (None if not sent)."""
    if not _enabled or status < 500:
        return None
    sentry_sdk.set_tag(STATUS_TAG, str(status))
    return sentry_sdk.capture_exception(error)


def set_transaction_status(transaction: Any, status: int) -> None:
    """Record the response status on the request's Sentry transaction."""
    if transaction is not None:
        transaction.set_http_status(status)


def add_query_breadcrumb(statement: str) -> None:
    """Add a DB query breadcrumb, as the Node SDK's Postgres instrumentation does."""
    if _enabled:
        sentry_sdk.add_breadcrumb(type="query", category="query", message=statement)
