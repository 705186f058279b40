"""Exceptions that handlers raise to answer with an HTTP error.

The request lifecycle in server.py turns them into JSON error bodies. Those
with a ``security_reason`` also produce a "security" log line and, for auth
problems, an auth_failures_total{reason} increment.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error answered with ``status`` and a JSON body ``{"error": {code, message}}``."""

    status = 500
    code = "internal_error"
    security_reason: str | None = None  # set on errors the security stream must see

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(ApiError):
    """The request body or parameters are invalid."""

    status = 400
    code = "bad_request"


class NotFound(ApiError):
    """No such route or resource."""

    status = 404
    code = "not_found"


class MethodNotAllowed(ApiError):
    """The route exists but not for this method."""

    status = 405
    code = "method_not_allowed"


class Conflict(ApiError):
    """The request clashes with the state of the resource (e.g. an inactive membership)."""

    status = 409
    code = "conflict"


class Unauthenticated(ApiError):
    """No usable user context, or wrong login credentials (reason tells which)."""

    status = 401
    code = "unauthenticated"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.security_reason = reason


class Forbidden(ApiError):
    """The user's role may not do this."""

    status = 403
    code = "forbidden"
    security_reason = "forbidden"


class RateLimited(ApiError):
    """Too many attempts; retry after ``retry_after`` seconds."""

    status = 429
    code = "rate_limited"
    security_reason = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SimulatedFailure(Exception):
    """Raised by the error_rate fault: an unhandled bug, answered 500."""
