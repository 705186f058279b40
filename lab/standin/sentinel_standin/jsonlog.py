"""JSON log lines on stdout and in a log file, one object per line.

stdout goes to journald; the file (SENTINEL_LOG_FILE, default
/var/log/sentinel/backend.log) is what the collector agent tails and sends to the
log store (Loki in production, VictoriaLogs on the lab). The file rotates by size
inside the process (backend.log.1 .. .5), so it never needs a logrotate job.

Field names follow docs/contract.md. ``stream`` ("app", "security", "audit")
is the one field meant to become a Loki stream label; correlationId, traceId,
userId and the like are high-cardinality and must stay in the line body, to be
filtered with ``| json`` at query time, never promoted to labels.

Log lines go through the stdlib ``logging`` module on purpose: the Sentry SDK's
logging integration then turns each line emitted during a request into a
breadcrumb of that request's error event, with no extra calls.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from datetime import datetime, timezone
from typing import Any

from opentelemetry import trace

from .context import current_request

LOGGER_NAME = "sentinel"
STREAMS = ("app", "security", "audit")

_LEVEL_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "fatal",
}

# Attributes every LogRecord has; anything else on a record came from `extra`.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}

_logger = logging.getLogger(LOGGER_NAME)


class JsonLineFormatter(logging.Formatter):
    """Render a LogRecord as one JSON object carrying the request context."""

    def __init__(self, service: str, environment: str) -> None:
        super().__init__()
        self.service = service
        self.environment = environment

    def format(self, record: logging.LogRecord) -> str:
        extras = {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS and not k.startswith("_")}
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": _LEVEL_NAMES.get(record.levelno, record.levelname.lower()),
            "msg": record.getMessage(),
            "service": self.service,
            "env": self.environment,
            "stream": extras.pop("stream", "app"),
        }
        ctx = current_request()
        if ctx is not None:
            line["correlationId"] = ctx.correlation_id
            line["method"] = ctx.method
            line["route"] = ctx.route
            line["userId"] = ctx.user.id if ctx.user else None
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            line["traceId"] = format(span_context.trace_id, "032x")
            line["spanId"] = format(span_context.span_id, "016x")
        if record.name != LOGGER_NAME:
            line["logger"] = record.name
        line.update(extras)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


# The file rotates at this size, keeping this many old files (backend.log.1 ..): with
# the defaults at most 6 x 50 MB on disk. The collector agent reads backend.log* and
# knows a rotated file by its content fingerprint, so a rename loses no line.
LOG_FILE_MAX_BYTES = 50 * 1024 * 1024
LOG_FILE_BACKUPS = 5


def configure_logging(service: str, environment: str, log_file: str | None = None) -> str | None:
    """Send all log records as JSON lines to stdout and to ``log_file``: ours from INFO, libraries' from WARNING.

    Returns the reason the file could not be opened, or None. A log file that cannot
    be opened does not stop the backend: stdout (journald) still has every line, and
    the caller logs the reason.
    """
    formatter = JsonLineFormatter(service, environment)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    problem = None
    if log_file:
        try:
            handlers.append(
                logging.handlers.RotatingFileHandler(
                    log_file, maxBytes=LOG_FILE_MAX_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
                )
            )
        except OSError as exc:
            problem = f"{log_file}: {exc.strerror or exc}"
    for handler in handlers:
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(logging.WARNING)
    _logger.setLevel(logging.INFO)
    return problem


def log(level: int, msg: str, *, stream: str = "app", exc_info: Any = None, **fields: Any) -> None:
    """Emit one log line on ``stream`` with extra ``fields`` (names must not clash with LogRecord's)."""
    if stream not in STREAMS:
        raise ValueError(f"unknown log stream {stream!r}")
    _logger.log(level, msg, exc_info=exc_info, extra={"stream": stream, **fields})


def info(msg: str, **kwargs: Any) -> None:
    """Log at info level (see ``log``)."""
    log(logging.INFO, msg, **kwargs)


def warn(msg: str, **kwargs: Any) -> None:
    """Log at warn level (see ``log``)."""
    log(logging.WARNING, msg, **kwargs)


def error(msg: str, **kwargs: Any) -> None:
    """Log at error level (see ``log``)."""
    log(logging.ERROR, msg, **kwargs)


def fatal(msg: str, **kwargs: Any) -> None:
    """Log at fatal level (see ``log``)."""
    log(logging.CRITICAL, msg, **kwargs)
