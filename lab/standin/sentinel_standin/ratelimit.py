"""Login brute-force protection: too many failed logins from one client → 429."""

from __future__ import annotations

import math
import threading
import time

from .http_errors import RateLimited

MAX_FAILURES = 5
WINDOW_S = 60.0


class LoginRateLimiter:
    """Counts failed logins per key (client address + email) in a fixed window."""

    def __init__(self, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._lock = threading.Lock()
        self._failures: dict[str, tuple[float, int]] = {}  # key -> (window start, failures)

    def check(self, key: str) -> None:
        """Raise RateLimited if ``key`` has used up its failures in the current window."""
        now = time.monotonic()
        with self._lock:
            started, count = self._failures.get(key, (now, 0))
            if now - started >= self.window_s:
                self._failures.pop(key, None)
                return
            if count >= self.max_failures:
                retry_after = max(1, math.ceil(self.window_s - (now - started)))
                raise RateLimited("too many failed login attempts", retry_after=retry_after)

    def record_failure(self, key: str) -> None:
        """Count one failed login for ``key``."""
        now = time.monotonic()
        with self._lock:
            started, count = self._failures.get(key, (now, 0))
            if now - started >= self.window_s:
                started, count = now, 0
            self._failures[key] = (started, count + 1)
            # Forget stale keys so a scan of many emails cannot grow memory forever.
            if len(self._failures) > 10_000:
                self._failures = {k: v for k, v in self._failures.items() if now - v[0] < self.window_s}

    def reset(self, key: str) -> None:
        """Forget the failures of ``key`` (after a successful login)."""
        with self._lock:
            self._failures.pop(key, None)
