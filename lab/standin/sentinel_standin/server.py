"""HTTP server and request lifecycle: routing, faults, telemetry, error handling.

Every instrumented request (everything but /health and /metrics) goes
through ``StandinApp.handle``, which is where the contract is kept:
- a SERVER span, a Sentry scope and a request context wrap the handler;
- faults apply to /api/* only, so ops can always reach /admin, /health and
  /metrics to see and undo them;
- 5xx: an "error" log line (becomes a breadcrumb), then a Sentry event;
  401/403/429: a "security" log line and a failure counter; 4xx never
  reaches Sentry;
- finally http_requests_total, http_request_duration_seconds and one
  "request completed" log line.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client.exposition import choose_encoder

from . import __version__, data, error_reporting, jsonlog, metrics, tracing
from .api import SentinelApi
from .config import ConfigError, Settings, load_settings
from .context import CORRELATION_HEADER, RequestContext, bind_request, correlation_id_from, user_from
from .db import DatabasePool, PoolExhaustedError
from .faults import Faults, FaultSwitches
from .http_errors import ApiError, RateLimited, SimulatedFailure, Unauthenticated
from .routes import UNMATCHED_ROUTE, Request, Response, Route, Router, parse_query

MAX_BODY_BYTES = 1024 * 1024
UNINSTRUMENTED_PATHS = ("/health", "/metrics")

_SECURITY_MESSAGES = {
    "missing_user_context": "authentication failed",
    "invalid_credentials": "authentication failed",
    "forbidden": "access forbidden",
    "rate_limited": "rate limit exceeded",
}


@dataclass
class Outcome:
    """What the handler produced, before telemetry is recorded."""

    response: Response
    error: BaseException | None = None


class StandinApp:
    """Everything a request needs, independent of the HTTP server plumbing."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.faults = FaultSwitches(settings.faults_file)
        self.db = DatabasePool(pool_exhausted=lambda: self.faults.current().db_pool_exhausted)
        self.api = SentinelApi(self.db, self.faults)
        self.router = Router(self.api.routes())

    # -- uninstrumented endpoints -------------------------------------------

    def health(self) -> Response:
        """GET /health: 200 while the process serves; the body says if the database is degraded.

        Always 200 so that a restart with the db_pool_exhausted fault still on
        passes the deploy's readiness check; probes that care read the body.
        """
        exhausted = self.faults.current().db_pool_exhausted
        return Response(200, {
            "status": "degraded" if exhausted else "ok",
            "service": self.settings.service_name,
            "version": self.settings.version,
            "checks": {"database": "pool exhausted" if exhausted else "ok"},
        })

    def metrics(self, accept: str) -> Response:
        """GET /metrics in the format the scraper asked for."""
        encoder, content_type = choose_encoder(accept)
        return Response(200, encoder(metrics.REGISTRY), content_type=content_type)

    # -- instrumented requests ------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes, client_address: str) -> Response:
        """Serve one request end to end and return the response to write."""
        path, _, query_string = target.partition("?")
        faults = self.faults.current()  # re-reads the faults file if it changed
        if path == "/health":
            return self.health()
        if path == "/metrics":
            return self.metrics(headers.get("Accept", ""))

        started = time.perf_counter()
        try:
            route, params = self.router.match(method, path)
            template, routing_error = route.template, None
        except ApiError as exc:
            route, params, routing_error = None, {}, exc
            template = getattr(exc, "route", UNMATCHED_ROUTE)

        ctx = RequestContext(correlation_id=correlation_id_from(headers), method=method, route=template, user=user_from(headers))
        request = Request(method, path, parse_query(query_string), headers, body, client_address, ctx, params)
        span_attributes = {
            "url.scheme": "http",
            "client.address": client_address,
            "user_agent.original": headers.get("User-Agent", ""),
            "sentinel.correlation_id": ctx.correlation_id,
        }
        if ctx.user is not None:
            span_attributes["enduser.id"] = ctx.user.id
            span_attributes["enduser.role"] = ctx.user.role

        with bind_request(ctx), tracing.server_span(
            method, None if template == UNMATCHED_ROUTE else template, path, headers, span_attributes
        ) as span:
            with error_reporting.request_scope(ctx, tracing.current_span_ids()) as sentry_transaction:
                outcome = self._run(request, route, routing_error, faults)
                status = outcome.response.status
                sentry_event_id = self._report(request, outcome)
                if ctx.user is not None:  # a login may have set it
                    span.set_attribute("enduser.id", ctx.user.id)
                tracing.finish_server_span(span, status, outcome.error)
                error_reporting.set_transaction_status(sentry_transaction, status)

            duration = time.perf_counter() - started
            metrics.HTTP_REQUESTS.labels(method=method, route=template, status=str(status)).inc()
            metrics.HTTP_REQUEST_DURATION.labels(method=method, route=template).observe(duration)
            level = logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
            fields = {"status": status, "duration_ms": round(duration * 1000, 3)}
            if sentry_event_id:
                fields["sentryEventId"] = sentry_event_id
            jsonlog.log(level, "request completed", **fields)

        outcome.response.headers[CORRELATION_HEADER] = ctx.correlation_id
        return outcome.response

    def _run(self, request: Request, route: Route | None, routing_error: ApiError | None, faults: Faults) -> Outcome:
        """Apply faults, check the user context, call the handler; turn exceptions into responses."""
        try:
            if routing_error is not None:
                raise routing_error
            if request.path.startswith("/api/"):
                self._apply_faults(faults, request)
            if not route.public and request.ctx.user is None:
                raise Unauthenticated("X-User-Id is missing", reason="missing_user_context")
            return Outcome(route.handler(request))
        except ApiError as exc:
            response = Response(exc.status, {"error": {"code": exc.code, "message": exc.message}})
            if isinstance(exc, RateLimited):
                response.headers["Retry-After"] = str(exc.retry_after)
            return Outcome(response, exc)
        except PoolExhaustedError as exc:
            body = {"error": {"code": "db_pool_exhausted", "message": "database unavailable, try again later"}}
            return Outcome(Response(503, body), exc)
        except Exception as exc:  # an unhandled bug: answer 500 without leaking its message
            return Outcome(Response(500, {"error": {"code": "internal_error", "message": "internal server error"}}), exc)

    def _apply_faults(self, faults: Faults, request: Request) -> None:
        if faults.crash:
            self._crash()
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        if faults.error_rate and random.random() < faults.error_rate:
            raise SimulatedFailure(f"simulated failure in {request.ctx.route} (fault error_rate={faults.error_rate})")

    def _crash(self) -> None:
        persisted = self.faults.consume_crash()
        jsonlog.fatal("simulated crash: exiting (fault crash=true)", crashSwitchCleared=persisted)
        sys.stdout.flush()
        # os._exit, not sys.exit: we are in a request thread, and a crash
        # must not run shutdown hooks (no span or Sentry flush, like a real one).
        os._exit(1)

    def _report(self, request: Request, outcome: Outcome) -> str | None:
        """Security/error log lines, failure counters and the Sentry event for one outcome."""
        status, error = outcome.response.status, outcome.error
        reason = getattr(error, "security_reason", None)
        if reason is not None:
            if reason == "rate_limited":
                metrics.RATE_LIMIT_HITS.labels(route=request.ctx.route).inc()
            else:
                metrics.AUTH_FAILURES.labels(reason=reason).inc()
            jsonlog.warn(_SECURITY_MESSAGES.get(reason, reason), stream="security", reason=reason, clientAddress=request.client_address)
        if status < 500:
            return None
        jsonlog.error(
            "request failed", errorType=type(error).__name__, errorMessage=str(error),
            exc_info=(type(error), error, error.__traceback__) if error is not None else None,
        )
        return error_reporting.capture_server_error(error or RuntimeError(f"HTTP {status}"), status)


class StandinRequestHandler(BaseHTTPRequestHandler):
    """Adapts http.server to StandinApp; no logging of its own (the app logs JSON)."""

    protocol_version = "HTTP/1.1"
    server_version = f"sentinel-standin/{__version__}"
    server: "StandinHTTPServer"

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def _dispatch(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self._write(Response(413 if length > 0 else 400, {"error": {"code": "bad_body", "message": "bad or too large Content-Length"}}))
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items()}
        response = self.server.app.handle(self.command, self.path, headers, body, self.client_address[0])
        self._write(response)

    def _write(self, response: Response) -> None:
        if isinstance(response.body, (bytes, bytearray)):
            payload = bytes(response.body)
        else:
            payload = json.dumps(response.body, separators=(",", ":")).encode() + b"\n"
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        # http.server's own lines would be plain text on stderr; the app logs JSON instead.
        pass

    def log_error(self, format: str, *args: object) -> None:  # noqa: A002
        jsonlog.warn("http protocol error", detail=format % args)


class StandinHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the app; request threads do not block shutdown."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: StandinApp) -> None:
        self.app = app
        super().__init__(address, StandinRequestHandler)


def main() -> int:
    """Run the stand-in until SIGTERM/SIGINT; 0 on clean shutdown, 2 on bad configuration."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        jsonlog.configure_logging("sentinel-backend", "unknown")
        jsonlog.fatal("invalid configuration", detail=str(exc))
        return 2

    log_file_problem = jsonlog.configure_logging(settings.service_name, settings.environment, settings.log_file)
    if log_file_problem:
        jsonlog.error("log file unavailable", detail=log_file_problem)
    tracing.configure_tracing(settings)
    sentry_on = error_reporting.configure_sentry(settings)
    metrics.set_build_info(settings.version, settings.environment)
    metrics.ACTIVE_MEMBERS.set(data.active_member_count())
    metrics.init_label_values(sites=data.SITES, events=tuple(data.EVENTS))

    app = StandinApp(settings)
    server = StandinHTTPServer((settings.host, settings.port), app)

    def stop(signum: int, _frame: object) -> None:
        jsonlog.info("shutting down", signal=signal.Signals(signum).name)
        # shutdown() waits for serve_forever to return, so not from this thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    host, port = server.server_address[:2]
    jsonlog.info(
        "listening", host=host, port=port, pid=os.getpid(), version=settings.version,
        sentry=sentry_on, otlpExport=bool(settings.otlp_endpoint), faultsFile=settings.faults_file,
        logFile=settings.log_file if not log_file_problem else None,
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        tracing.shutdown_tracing()
        error_reporting.flush_sentry()
        jsonlog.info("stopped")
    return 0
