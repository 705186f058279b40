"""Fault switches that make the stand-in misbehave on purpose, for alert drills.

The switches live in a JSON file (SENTINEL_FAULTS_FILE) so that ops can flip
them with an editor and no restart: the file is stat()ed on every request and
re-read when it changed. POST /admin/faults replaces the state and writes the
file, so the file stays the one source of truth and a restart keeps it. If the
file cannot be written the posted state still applies until the file changes.

``crash`` is one-shot: it is cleared (in memory and in the file) just before
the process exits, so that systemd's restart brings back a healthy service.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import asdict, dataclass
from typing import Any


class FaultSpecError(ValueError):
    """A faults document has unknown keys or out-of-range values."""


@dataclass(frozen=True)
class Faults:
    """The state of every switch; the default is a healthy service."""

    error_rate: float = 0.0
    latency_ms: int = 0
    crash: bool = False
    db_pool_exhausted: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape used by the file and by /admin/faults."""
        return asdict(self)


def parse_faults(doc: Any) -> Faults:
    """Validate a faults document; missing keys take their healthy default."""
    if not isinstance(doc, dict):
        raise FaultSpecError("faults must be a JSON object")
    unknown = set(doc) - set(Faults.__dataclass_fields__)
    if unknown:
        raise FaultSpecError(f"unknown fault switches: {', '.join(sorted(unknown))}")

    error_rate = doc.get("error_rate", 0.0)
    if isinstance(error_rate, bool) or not isinstance(error_rate, (int, float)) or not 0 <= error_rate <= 1:
        raise FaultSpecError("error_rate must be a number from 0 to 1")
    latency_ms = doc.get("latency_ms", 0)
    if isinstance(latency_ms, bool) or not isinstance(latency_ms, (int, float)) or not 0 <= latency_ms <= 600_000:
        raise FaultSpecError("latency_ms must be a number of milliseconds from 0 to 600000")
    for flag in ("crash", "db_pool_exhausted"):
        if not isinstance(doc.get(flag, False), bool):
            raise FaultSpecError(f"{flag} must be true or false")

    return Faults(
        error_rate=float(error_rate),
        latency_ms=int(latency_ms),
        crash=doc.get("crash", False),
        db_pool_exhausted=doc.get("db_pool_exhausted", False),
    )


class FaultSwitches:
    """Current fault state, kept in step with the faults file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._state = Faults()
        self._file_signature: tuple[int, int, int] | None = None
        self.last_error: str | None = None  # why the file was last rejected, for GET /admin/faults

    def current(self) -> Faults:
        """The state to apply now, re-reading the file if it changed since last time."""
        with self._lock:
            signature = self._signature()
            if signature != self._file_signature:
                self._file_signature = signature
                self._state = self._read_file() if signature is not None else Faults()
            return self._state

    def replace(self, faults: Faults) -> bool:
        """Make ``faults`` the state and write it to the file; return whether the write worked."""
        with self._lock:
            self._state = faults
            persisted = self._write_file(faults)
            if persisted:
                self._file_signature = self._signature()
            return persisted

    def consume_crash(self) -> bool:
        """Clear the one-shot crash switch; return whether the file could be updated."""
        with self._lock:
            self._state = Faults(**{**self._state.to_dict(), "crash": False})
            persisted = self._write_file(self._state)
            if persisted:
                self._file_signature = self._signature()
            return persisted

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.last_error = f"cannot stat {self.path}: {exc}"
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _read_file(self) -> Faults:
        # A broken file means "no faults", not "keep the old ones": the
        # surprise is then a healthy service, and last_error says why.
        try:
            with open(self.path, encoding="utf-8") as f:
                text = f.read()
            faults = parse_faults(json.loads(text) if text.strip() else {})
        except (OSError, ValueError) as exc:
            self.last_error = f"ignored {self.path}: {exc}"
            return Faults()
        self.last_error = None
        return faults

    def _write_file(self, faults: Faults) -> bool:
        directory = os.path.dirname(self.path) or "."
        try:
            os.makedirs(directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".faults-", dir=directory)
            try:
                os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the switches from ops
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(faults.to_dict(), f, indent=2)
                    f.write("\n")
                os.replace(tmp, self.path)  # atomic: a reader never sees half a file
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            self.last_error = f"cannot write {self.path}: {exc}"
            return False
        self.last_error = None
        return True
