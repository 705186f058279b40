"""A JSON-lines file that receivers append records to and tests read back."""

from __future__ import annotations

import json
import os
import threading
from typing import Any, Callable


class JsonLinesStore:
    """Append-only JSON lines file, safe to share between request threads of one process."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)

    def append(self, record: dict[str, Any]) -> None:
        """Add one record as a line."""
        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line)

    def read_all(self, keep: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
        """Every record, oldest first, optionally only those ``keep`` accepts."""
        with self._lock:
            try:
                with open(self.path, encoding="utf-8") as f:
                    lines = f.readlines()
            except FileNotFoundError:
                return []
        records = [json.loads(line) for line in lines if line.strip()]
        return [r for r in records if keep is None or keep(r)]

    def clear(self) -> int:
        """Drop every record; return how many there were."""
        with self._lock:
            try:
                with open(self.path, encoding="utf-8") as f:
                    count = sum(1 for line in f if line.strip())
            except FileNotFoundError:
                return 0
            with open(self.path, "w", encoding="utf-8"):
                pass
            return count
