"""Log filters: repeated errors rate-limited with a count, JSON lines without payloads."""

from __future__ import annotations

import json
import logging

from core.clock import ManualClock
from core.logs import JsonFormatter, PayloadFilter, RepeatFilter

SHARD = "shardId-000000000001"


def log_record(msg: str, level: int = logging.ERROR, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("luxflow.x", level, __file__, 1, msg, ("a",), None)
    record.threadName = f"shard-{SHARD}"
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_repeated_errors_are_rate_limited_with_a_count() -> None:
    now = ManualClock()
    repeat = RepeatFilter(60_000, now)
    passed = [repeat.filter(log_record("sink failed: %s")) for _ in range(5)]
    assert passed == [True, False, False, False, False]
    assert repeat.filter(log_record("other: %s"))
    assert repeat.filter(log_record("sink failed: %s", logging.INFO))  # info is not limited
    now.now_ms = 60_000
    record = log_record("sink failed: %s")
    assert repeat.filter(record)
    assert record.getMessage() == "sink failed: a (4 similar suppressed)"
    assert record.suppressed == 4  # type: ignore[attr-defined]


def test_json_lines_carry_shard_sequence_and_reason_but_no_payload_by_default() -> None:
    record = log_record("bad record %s", sequence_number=42, reason="decode", payload=b"secret")
    assert PayloadFilter(allow=False).filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "ERROR"
    assert line["logger"] == "luxflow.x"
    assert line["message"] == "bad record a"
    assert (line["shard"], line["sequence_number"], line["reason"]) == (SHARD, 42, "decode")
    assert "payload" not in line
    assert line["time"].endswith("Z")
    allowed = log_record("bad record %s", payload=b"secret")
    PayloadFilter(allow=True).filter(allowed)
    assert "secret" in json.loads(JsonFormatter().format(allowed))["payload"]
