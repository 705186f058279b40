"""Request/response types and the route table matcher.

Route templates use Express syntax (``/api/members/:id``) because that is
what the real Node backend reports as ``http.route`` and as the ``route``
metric label; dashboards must work against both.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs

from .context import RequestContext
from .http_errors import BadRequest, MethodNotAllowed, NotFound

UNMATCHED_ROUTE = "unmatched"  # route label for paths no route matches: keeps the label bounded


@dataclass
class Request:
    """One parsed HTTP request, as handlers see it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    client_address: str
    ctx: RequestContext
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        """The body as a JSON object; BadRequest if it is not one."""
        try:
            doc = json.loads(self.body or b"{}")
        except ValueError:
            raise BadRequest("request body is not valid JSON") from None
        if not isinstance(doc, dict):
            raise BadRequest("request body must be a JSON object")
        return doc

    def query_value(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Response:
    """What a handler answers: status, a JSON-serialisable body, extra headers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    """One endpoint: method + Express-style template → handler."""

    method: str
    template: str
    handler: Handler
    public: bool = False  # True: served without X-User-Id (login, admin)

    @property
    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r":([a-zA-Z]+)", r"(?P<\1>[^/]+)", self.template)
        return re.compile(f"^{regex}/?$")


class Router:
    """Finds the route for a method and path."""

    def __init__(self, routes: list[Route]) -> None:
        self._routes = [(route, route.pattern) for route in routes]

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The matching route and its path parameters; NotFound/MethodNotAllowed otherwise.

        MethodNotAllowed carries ``route`` so the metric still gets the template.
        """
        allowed_template = None
        for route, pattern in self._routes:
            m = pattern.match(path)
            if m is None:
                continue
            if route.method == method:
                return route, m.groupdict()
            allowed_template = route.template
        if allowed_template is not None:
            err = MethodNotAllowed(f"{method} is not allowed on {allowed_template}")
            err.route = allowed_template  # type: ignore[attr-defined]
            raise err
        raise NotFound(f"no route for {method} {path}")


def parse_query(query_string: str) -> dict[str, list[str]]:
    """Parse a query string into name -> values."""
    return parse_qs(query_string, keep_blank_values=True)
