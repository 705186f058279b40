#!/usr/bin/env python3
"""Sentry smoke check: send one test event to a DSN and say exactly what happened.

Runs on the control machine, in the toolkit's virtualenv (the official
sentry-sdk, and the toolkit's own DSN validator). The event goes
through the SDK's own HTTP transport, with a hook that records the HTTP
outcome, so the verdict is what the backend itself would meet:

    ok                  accepted (prints the event id)
    dns_failure         the DSN host does not resolve
    tls_failure         TLS handshake or certificate verification failed
    connection_refused  nothing listens on the DSN host and port
    timeout             no answer in time
    bad_key             HTTP 401/403: wrong public key, or key not for this project
    rate_limited        HTTP 429, with the Retry-After it gave
    http_error          any other HTTP status
    network_error       any other transport failure
    not_sent            the SDK never attempted to send

The DSN comes from --dsn or SENTRY_DSN and is never printed in full: the
public key is masked. Exit codes: 0 ok, 1 failure, 2 bad input.

    SENTRY_DSN=https://<key>@sentry.example.org/42 .venv/bin/python files/backend/sentry_check.py
    .venv/bin/python files/backend/sentry_check.py --dsn http://<key>@127.0.0.1:9000/1 --json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import sys
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Run as a script (python3 files/backend/sentry_check.py), Python puts only this
# file's directory on sys.path; the repo root makes the toolkit's one DSN
# validator importable, so the preflight and this check never disagree.
_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from roles.backend.sentry import mask_dsn, validate_dsn  # noqa: E402

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2

DEFAULT_TIMEOUT_S = 10.0
SMOKE_MESSAGE = "Sentinel Sentry smoke check"


@dataclass
class CheckResult:
    """The verdict of one smoke check."""

    outcome: str
    ok: bool
    message: str
    dsn: str  # masked
    event_id: str | None = None
    status: int | None = None
    retry_after: str | None = None


def _chain(exc: BaseException):
    """``exc`` and every exception it wraps (urllib3 reasons, causes, contexts)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        # `reason` is an exception on urllib3 errors but a string on SSL ones.
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend([getattr(current, "reason", None), current.__cause__, current.__context__])


def classify_error(exc: BaseException) -> tuple[str, str]:
    """(outcome, explanation) for an exception raised while sending."""
    from urllib3 import exceptions as u3

    chain = list(_chain(exc))
    for e in chain:
        if isinstance(e, (u3.NameResolutionError, socket.gaierror)):
            return "dns_failure", f"DNS lookup of the DSN host failed: {e}"
    for e in chain:
        if isinstance(e, (u3.SSLError, ssl.SSLError)):
            return "tls_failure", f"TLS failed: {e}"
    for e in chain:
        if isinstance(e, ConnectionRefusedError):
            return "connection_refused", "connection refused: nothing is listening on the DSN host and port"
    for e in chain:
        # NewConnectionError subclasses ConnectTimeoutError, so refusals were sorted out above.
        if isinstance(e, (u3.ConnectTimeoutError, u3.ReadTimeoutError, socket.timeout, TimeoutError)) and not isinstance(e, u3.NewConnectionError):
            return "timeout", f"timed out: {e}"
    return "network_error", f"{type(exc).__name__}: {exc}"


def _verdict_for_status(status: int, headers: dict[str, str], body: bytes, event_id: str | None, masked: str) -> CheckResult:
    lower = {k.lower(): v for k, v in headers.items()}
    if 200 <= status < 300:
        return CheckResult("ok", True, f"event {event_id} accepted (HTTP {status})", masked, event_id, status)
    if status in (401, 403):
        return CheckResult("bad_key", False, f"HTTP {status}: the DSN's public key was rejected (wrong key, or not a key of this project)", masked, None, status)
    if status == 429:
        retry_after = lower.get("retry-after")
        limits = lower.get("x-sentry-rate-limits")
        detail = f"retry after {retry_after}s" if retry_after else "no Retry-After given"
        if limits:
            detail += f"; X-Sentry-Rate-Limits: {limits}"
        return CheckResult("rate_limited", False, f"HTTP 429: rate limited, {detail}", masked, None, status, retry_after)
    snippet = body[:200].decode("utf-8", "replace").strip()
    return CheckResult("http_error", False, f"HTTP {status}" + (f": {snippet}" if snippet else ""), masked, None, status)


def _without_release(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """``before_send``: a smoke check event belongs to no release."""
    event.pop("release", None)
    return event


def check_dsn(dsn: str, timeout: float = DEFAULT_TIMEOUT_S, environment: str = "smoke-check") -> CheckResult:
    """Send one test event to ``dsn`` and report what happened. ValueError for an invalid DSN."""
    validate_dsn(dsn)
    masked = mask_dsn(dsn)

    import sentry_sdk
    import urllib3
    from sentry_sdk.transport import HttpTransport

    attempts: list[Any] = []  # one entry per HTTP attempt: an exception or (status, headers, body)

    class RecordingTransport(HttpTransport):
        """The SDK's HTTP transport, recording each request's outcome for the verdict."""

        TIMEOUT = timeout

        def _get_pool_options(self) -> dict[str, Any]:
            options = super()._get_pool_options()
            # One retry, no backoff: a smoke check should answer in about `timeout`.
            options["retries"] = urllib3.Retry(total=1, redirect=0, backoff_factor=0)
            return options

        def _request(self, method, endpoint_type, body, headers):  # type: ignore[no-untyped-def]
            try:
                response = super()._request(method, endpoint_type, body, headers)
            except Exception as exc:
                attempts.append(exc)
                raise
            attempts.append((response.status, dict(response.headers), response.data or b""))
            return response

    client = sentry_sdk.Client(
        dsn=dsn,
        transport=RecordingTransport,
        environment=environment,
        default_integrations=False,
        auto_enabling_integrations=False,
        send_client_reports=False,  # exactly one request: the event
        auto_session_tracking=False,
        # The SDK would guess a release (SENTRY_RELEASE, the git commit of the
        # working directory) and Sentry would list it as a release of the project.
        before_send=_without_release,
    )
    try:
        event_id = client.capture_event(
            {
                "event_id": uuid.uuid4().hex,
                "message": SMOKE_MESSAGE,
                "level": "info",
                "fingerprint": ["sentinel-sentry-smoke-check"],  # repeated runs group into one issue
                "tags": {"check": "sentry_check"},
            }
        )
        client.flush(timeout=timeout * 3)  # worst case: two attempts plus slack
    finally:
        client.close(timeout=1)

    if not attempts:
        return CheckResult("not_sent", False, f"the SDK did not send the event within {timeout * 3:.0f}s", masked, event_id)
    last = attempts[-1]
    if isinstance(last, BaseException):
        outcome, message = classify_error(last)
        return CheckResult(outcome, False, message, masked)
    status, headers, body = last
    return _verdict_for_status(status, headers, body, event_id, masked)


def main(argv: list[str] | None = None) -> int:
    """CLI: check --dsn (or SENTRY_DSN); print the verdict; exit 0 ok, 1 failure, 2 bad input."""
    parser = argparse.ArgumentParser(description="Send one test event to a Sentry DSN and report the outcome.")
    parser.add_argument("--dsn", help="Sentry DSN (default: $SENTRY_DSN)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per HTTP attempt")
    parser.add_argument("--environment", default="smoke-check", help="environment of the test event")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    dsn = args.dsn or os.environ.get("SENTRY_DSN", "")
    if not dsn.strip():
        print("sentry_check: no DSN: pass --dsn or set SENTRY_DSN", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        validate_dsn(dsn)
    except ValueError as exc:
        print(f"sentry_check: invalid DSN {mask_dsn(dsn)}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.timeout <= 0:
        print("sentry_check: --timeout must be positive", file=sys.stderr)
        return EXIT_BAD_INPUT

    result = check_dsn(dsn, timeout=args.timeout, environment=args.environment)
    if args.json:
        print(json.dumps(asdict(result)))
    else:
        print(f"{'OK' if result.ok else 'FAIL'} [{result.outcome}] {result.dsn}: {result.message}")
    return EXIT_OK if result.ok else EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
