"""The per-request context (correlation id, route, user) shared by logs, spans and Sentry.

Kept in a ContextVar so that any code running for a request, however deep,
can tag what it emits without the context being passed around.
"""

from __future__ import annotations

import re
import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator, Mapping

CORRELATION_HEADER = "X-Correlation-ID"
USER_ID_HEADER = "X-User-Id"
USER_EMAIL_HEADER = "X-User-Email"
USER_ROLE_HEADER = "X-User-Role"

# A caller-supplied id is trusted only if it is short and plain: it ends up in
# log lines, response headers and Sentry tags.
_SAFE_CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_SAFE_HEADER_VALUE = re.compile(r"^[\x21-\x7e]{1,256}$")


@dataclass(frozen=True)
class User:
    """Who made the request, as told by the X-User-* headers."""

    id: str
    email: str | None
    role: str


@dataclass
class RequestContext:
    """What every log line, span and Sentry event of one request carries."""

    correlation_id: str
    method: str
    route: str
    user: User | None = None


_current: ContextVar[RequestContext | None] = ContextVar("sentinel_request_context", default=None)


def current_request() -> RequestContext | None:
    """The context of the request being handled, or None outside a request."""
    return _current.get()


@contextmanager
def bind_request(ctx: RequestContext) -> Iterator[RequestContext]:
    """Make ``ctx`` the current request context for the duration of the block."""
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def correlation_id_from(headers: Mapping[str, str]) -> str:
    """The caller's X-Correlation-ID if it is safe to reuse, else a new UUID."""
    supplied = (headers.get(CORRELATION_HEADER) or "").strip()
    if _SAFE_CORRELATION_ID.match(supplied):
        return supplied
    return str(uuid.uuid4())


def user_from(headers: Mapping[str, str]) -> User | None:
    """The user context from X-User-Id/-Email/-Role, or None without a usable X-User-Id."""
    user_id = (headers.get(USER_ID_HEADER) or "").strip()
    if not _SAFE_HEADER_VALUE.match(user_id):
        return None
    email = (headers.get(USER_EMAIL_HEADER) or "").strip()
    role = (headers.get(USER_ROLE_HEADER) or "").strip().lower()
    return User(
        id=user_id,
        email=email if _SAFE_HEADER_VALUE.match(email) else None,
        role=role if _SAFE_HEADER_VALUE.match(role) else "member",
    )
