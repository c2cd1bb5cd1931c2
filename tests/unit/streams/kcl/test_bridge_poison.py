"""Poison records in the KCL runner: the daemon's protocol on one side, the real lighting app
in a real `ShardEngine` (in-memory sinks and state) on the other. A poison record between
valid ones is dead-lettered with its reason, the valid ones are stored, and the checkpoint the
processor asks the daemon for passes all of them."""

from __future__ import annotations

import base64
import io
import json

import pytest

from core.clock import MINUTE_MS
from core.records import DeadLetter
from core.retry import Backoff
from domain.telemetry import Reading, encode_reading
from lighting.agents import build_app
from lighting.registry import empty_registry
from sinks.memory import InMemorySink
from streams.engine import ShardEngine
from streams.kcl.bridge import run_processor
from streams.processor import Checkpointer, EngineConfig
from tables.store import InMemoryStateStore

SHARD = "shardId-000000000007"
TS_MS = 1_800_000_000_000

POISON = {
    "too_deep": b"[" * 5_000 + b"]" * 5_000,
    "bad_id": encode_reading(
        Reading("s1", "b1", "r1", "x" * 3_000, TS_MS, 5.0, 230.0, 0.02, 1.0, True, 50)
    ),
    "not_json": b"\x00\x01 not json",
}


def valid(n: int) -> bytes:
    ts = TS_MS + n * MINUTE_MS
    return encode_reading(
        Reading("s1", "b1", "r1", f"lamp-{n}", ts, 5.0, 230.0, 0.02, 1.0, True, 50)
    )


def message(records: list[tuple[int, bytes]]) -> bytes:
    body = [
        {
            "action": "record",
            "data": base64.b64encode(data).decode(),
            "partitionKey": "s1",
            "sequenceNumber": str(seq),
            "subSequenceNumber": 0,
            "approximateArrivalTimestamp": TS_MS + 10 * MINUTE_MS,
        }
        for seq, data in records
    ]
    return json.dumps({"action": "processRecords", "records": body, "millisBehindLatest": 0})


@pytest.mark.parametrize("name", sorted(POISON))
def test_a_poison_record_is_dead_lettered_and_the_checkpoint_passes_it(name: str) -> None:
    stored = InMemorySink(key=repr)
    dead = InMemorySink(key=lambda letter: letter.sequence_number)  # type: ignore[attr-defined]
    app = build_app(empty_registry(), topic="telemetry", grace_ms=600_000)

    def factory(shard_id: str, checkpointer: Checkpointer) -> ShardEngine:
        return ShardEngine(
            app,
            shard_id,
            sinks=[stored],
            dead_letter=dead,
            state_store=InMemoryStateStore(),
            checkpointer=checkpointer,
            config=EngineConfig(checkpoint_interval_ms=10**9),
        )

    stdin = (
        "\n".join(
            [
                json.dumps(
                    {
                        "action": "initialize",
                        "shardId": SHARD,
                        "sequenceNumber": "TRIM_HORIZON",
                        "subSequenceNumber": 0,
                    }
                ),
                message([(1, valid(1)), (2, valid(2)), (3, POISON[name]), (4, valid(4))]),
                json.dumps({"action": "shutdownRequested"}),
                # The daemon's answer to the checkpoint the processor asks for at shutdown.
                json.dumps(
                    {
                        "action": "checkpoint",
                        "sequenceNumber": "4",
                        "subSequenceNumber": 0,
                        "error": None,
                    }
                ),
            ]
        ).encode()
        + b"\n"
    )
    out = io.BytesIO()
    backoff = Backoff(base_ms=1, cap_ms=1, max_attempts=3, sleep=lambda _s: None)
    assert run_processor(factory, io.BytesIO(stdin), out, backoff=backoff) == 0

    sent = [json.loads(line) for line in out.getvalue().splitlines()]
    checkpoints = [m for m in sent if m["action"] == "checkpoint"]
    assert checkpoints == [{"action": "checkpoint", "sequenceNumber": "4", "subSequenceNumber": 0}]
    letters = [v for v in dead.stored.values() if isinstance(v, DeadLetter)]
    assert [(letter.sequence_number, letter.reason.split(":")[0]) for letter in letters] == [
        (3, name)
    ]
    assert letters[0].data == POISON[name]
    assets = {getattr(item, "asset_id", None) for item in stored.stored.values()}
    assert {"lamp-1", "lamp-2", "lamp-4"} <= assets
