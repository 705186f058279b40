"""A simulated PostgreSQL layer: a bounded connection pool and timed queries.

No database is involved. Each "query" checks a connection out of the pool,
sleeps a few milliseconds, runs a Python callable over the in-memory data set
and reports what a real driver instrumentation would: a CLIENT span, a
db_query_duration_seconds sample and a Sentry breadcrumb.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Callable, TypeVar

from . import error_reporting, metrics, tracing

T = TypeVar("T")

POOL_SIZE = 10
ACQUIRE_TIMEOUT_S = 2.0

# Typical latencies of the real queries, in seconds (min, max).
_QUERY_TIME = {"SELECT": (0.001, 0.012), "INSERT": (0.002, 0.015), "UPDATE": (0.002, 0.015), "DELETE": (0.002, 0.010)}


class PoolExhaustedError(Exception):
    """No pool connection became free in time; the request is answered 503."""


class DatabasePool:
    """Connection pool bookkeeping plus the query wrapper every handler goes through."""

    def __init__(self, pool_exhausted: Callable[[], bool], size: int = POOL_SIZE) -> None:
        self.size = size
        self._pool_exhausted = pool_exhausted
        self._active = 0
        self._free = threading.Condition()
        # Gauges are computed at scrape time so that the db_pool_exhausted
        # fault shows at once, even with no traffic.
        metrics.DB_POOL_CONNECTIONS.labels(state="active").set_function(self.active)
        metrics.DB_POOL_CONNECTIONS.labels(state="idle").set_function(lambda: self.size - self.active())
        metrics.DB_POOL_CONNECTIONS.labels(state="max").set(size)

    def active(self) -> int:
        """Connections checked out now (all of them while the pool-exhausted fault is on)."""
        return self.size if self._pool_exhausted() else self._active

    def query(self, operation: str, table: str, statement: str, run: Callable[[], T]) -> T:
        """Run ``run`` as the SQL ``statement`` would: span, pool checkout, timing, breadcrumb."""
        with tracing.db_span(operation, table, statement):
            error_reporting.add_query_breadcrumb(statement)
            self._acquire()
            try:
                started = time.perf_counter()
                time.sleep(random.uniform(*_QUERY_TIME.get(operation, (0.001, 0.01))))
                result = run()
                metrics.DB_QUERY_DURATION.labels(operation=operation).observe(time.perf_counter() - started)
                return result
            finally:
                self._release()

    def _acquire(self) -> None:
        if self._pool_exhausted():
            raise PoolExhaustedError(f"database pool exhausted: {self.size}/{self.size} connections in use")
        deadline = time.monotonic() + ACQUIRE_TIMEOUT_S
        with self._free:
            while self._active >= self.size:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._free.wait(remaining):
                    raise PoolExhaustedError(
                        f"timed out after {ACQUIRE_TIMEOUT_S}s waiting for a database connection"
                    )
            self._active += 1

    def _release(self) -> None:
        with self._free:
            self._active -= 1
            self._free.notify()
