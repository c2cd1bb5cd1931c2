"""Log lines operators can search: text or JSON, repeated errors rate-limited, no payloads.

- `JsonFormatter`: one JSON object per line with time, level, logger, message and, where
  known, shard, sequence_number and reason (pass them as `extra=`; the shard also comes from
  the local runner's thread name `shard-<id>` or the process-wide `set_shard`).
- `RepeatFilter`: a warning or error with the same logger and message template is let through
  once per window; the first one after the window says how many were suppressed.
- `PayloadFilter`: a record's `payload` extra (record bytes) is dropped unless payload logging
  is on (a debug setting, never in production).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

import orjson

FIELDS: Final = ("shard", "sequence_number", "reason", "suppressed", "payload")
_process_shard: str | None = None


def set_shard(shard_id: str | None) -> None:
    """The shard of this whole process (a KCL shard processor), for every log line."""
    global _process_shard
    _process_shard = shard_id


def shard_of(record: logging.LogRecord) -> str | None:
    shard = getattr(record, "shard", None)
    if shard is not None:
        return str(shard)
    if record.threadName and record.threadName.startswith("shard-"):
        return record.threadName.removeprefix("shard-")
    return _process_shard


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        shard = shard_of(record)
        if shard is not None:
            document["shard"] = shard
        for name in FIELDS[1:]:
            value = getattr(record, name, None)
            if value is not None:
                document[name] = value if not isinstance(value, bytes) else repr(value)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(document, default=str).decode()


JsonFormatter.converter = time.gmtime


class TextFormatter(logging.Formatter):
    """The classic line, with the known fields appended as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [
            f"{name}={getattr(record, name)!s}"
            for name in FIELDS[1:]
            if getattr(record, name, None) is not None
        ]
        return f"{line} [{' '.join(extras)}]" if extras else line


class RepeatFilter(logging.Filter):
    """Lets a WARNING-or-worse (logger, message template) through once per `window_ms`."""

    def __init__(self, window_ms: int, monotonic_ms: Callable[[], int] | None = None) -> None:
        super().__init__()
        self._window_ms = window_ms
        self._now_ms = monotonic_ms or (lambda: time.monotonic_ns() // 1_000_000)
        self._seen: dict[tuple[str, object], tuple[int, int]] = {}  # -> (window start, hidden)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.msg)
        now_ms = self._now_ms()
        seen = self._seen.get(key)
        if seen is not None and now_ms - seen[0] < self._window_ms:
            self._seen[key] = (seen[0], seen[1] + 1)
            return False
        if len(self._seen) > 10_000:
            self._seen.clear()
        self._seen[key] = (now_ms, 0)
        if seen is not None and seen[1]:
            record.suppressed = seen[1]
            record.msg = f"{record.msg} ({seen[1]} similar suppressed)"
        return True


class PayloadFilter(logging.Filter):
    """Removes the `payload` extra unless `allow` (the debug setting log_payloads)."""

    def __init__(self, allow: bool) -> None:
        super().__init__()
        self._allow = allow

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._allow and getattr(record, "payload", None) is not None:
            record.payload = None
        return True


def handler(
    stream: Any, *, fmt: str, payloads: bool, repeat_window_ms: int
) -> logging.StreamHandler[Any]:
    """A stream handler with the formatter of `fmt` ("text" or "json") and both filters."""
    out: logging.StreamHandler[Any] = logging.StreamHandler(stream)
    if fmt == "json":
        out.setFormatter(JsonFormatter())
    else:
        out.setFormatter(
            TextFormatter("%(asctime)s %(levelname)s %(name)s %(threadName)s: %(message)s")
        )
    out.addFilter(PayloadFilter(payloads))
    out.addFilter(RepeatFilter(repeat_window_ms))
    return out
