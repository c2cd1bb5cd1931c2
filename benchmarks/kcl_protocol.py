"""processRecords messages per second: luxflow's bridge vs amazon-kclpy's processor loop.

    python -m benchmarks.kcl_protocol [--messages 2000] [--records 100] [--size 300] [--repeat 5]

Both loops get the same daemon input (an initialize line, then `--messages` processRecords
lines of `--records` records with `--size`-byte payloads, from in-memory files) and do the
same work per message: read the line, decode it, turn every record into its bytes, integer
sequence number, sub-sequence number, partition key and arrival time, and write the status
line. The best of `--repeat` runs is reported. Needs `pip install amazon-kclpy` (3.1.3 installs
here; 3.2.0's setup fetches KCL 3.5.3 jars that Maven Central mirrors may not have).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from core.records import Position, Record
from streams.kcl.bridge import run_processor
from streams.processor import Checkpointer, Lineage, ShardHealth

FIRST_SEQ = 49590338271490256608559692538361571095921575989136588898


def daemon_input(messages: int, records: int, size: int) -> bytes:
    """The lines a daemon would write for one shard: initialize, then processRecords."""
    payload = os.urandom(size)
    lines = [
        json.dumps(
            {
                "action": "initialize",
                "shardId": "shardId-000000000000",
                "sequenceNumber": "TRIM_HORIZON",
                "subSequenceNumber": 0,
            }
        )
    ]
    seq = FIRST_SEQ
    for _ in range(messages):
        batch = []
        for i in range(records):
            batch.append(
                {
                    "data": base64.b64encode(payload).decode(),
                    "partitionKey": f"site-{i % 97}",
                    "sequenceNumber": str(seq),
                    "approximateArrivalTimestamp": 1_795_825_455_376,
                    "subSequenceNumber": 0,
                    "action": "record",
                }
            )
            seq += 1
        lines.append(
            json.dumps({"action": "processRecords", "records": batch, "millisBehindLatest": 0})
        )
    return ("\n".join(lines) + "\n").encode()


class _CountingEngine:
    def __init__(self) -> None:
        self.records = 0
        self.shard_id = ""
        self.health = ShardHealth("")

    def initialize(self, start: Position | str, lineage: Lineage | None = None) -> None:
        pass

    def process_records(
        self, records: Sequence[Record], millis_behind_latest: int | None = None
    ) -> None:
        self.records += len(records)

    def shard_ended(self) -> None:
        pass

    def lease_lost(self) -> None:
        pass

    def shutdown_requested(self) -> None:
        pass


def run_luxflow(data: bytes) -> int:
    engine = _CountingEngine()

    def factory(_shard_id: str, _checkpointer: Checkpointer) -> _CountingEngine:
        return engine

    run_processor(factory, io.BytesIO(data), io.BytesIO())
    return engine.records


def run_kclpy(data: bytes) -> int:
    from amazon_kclpy import kcl
    from amazon_kclpy.v3 import processor

    class Processor(processor.RecordProcessorBase):  # type: ignore[misc]
        def __init__(self) -> None:
            self.records = 0
            self.shard_id = ""

        def initialize(self, initialize_input: Any) -> None:
            self.shard_id = initialize_input.shard_id

        def process_records(self, process_records_input: Any) -> None:
            out = [
                Record(
                    self.shard_id,
                    int(r.sequence_number),
                    r.sub_sequence_number or 0,
                    r.partition_key,
                    r.binary_data,
                    r.approximate_arrival_timestamp or 0,
                )
                for r in process_records_input.records
            ]
            self.records += len(out)

        def lease_lost(self, lease_lost_input: Any) -> None:
            pass

        def shard_ended(self, shard_ended_input: Any) -> None:
            pass

        def shutdown_requested(self, shutdown_requested_input: Any) -> None:
            pass

    proc = Processor()
    kcl.KCLProcess(proc, io.StringIO(data.decode()), io.StringIO(), io.StringIO()).run()
    return proc.records


def best_seconds(fn: Callable[[bytes], int], data: bytes, expected: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        count = fn(data)
        best = min(best, time.perf_counter() - started)
        if count != expected:
            raise AssertionError(f"{fn.__name__} saw {count} records, expected {expected}")
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--records", type=int, default=100)
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    data = daemon_input(args.messages, args.records, args.size)
    expected = args.messages * args.records
    rows = [("luxflow bridge (msgspec)", best_seconds(run_luxflow, data, expected, args.repeat))]
    try:
        rows.append(
            ("amazon-kclpy KCLProcess", best_seconds(run_kclpy, data, expected, args.repeat))
        )
    except ImportError as exc:
        print(f"amazon-kclpy not installed ({exc}); only luxflow measured")
    mb = len(data) / 1e6
    print(
        f"{args.messages} processRecords x {args.records} records x {args.size} B "
        f"({mb:.0f} MB of daemon JSON), best of {args.repeat}"
    )
    print(f"{'loop':<28}{'messages/s':>12}{'records/s':>14}{'MB/s':>8}")
    for name, seconds in rows:
        print(
            f"{name:<28}{args.messages / seconds:>12,.0f}{expected / seconds:>14,.0f}"
            f"{mb / seconds:>8.0f}"
        )
    if len(rows) == 2:
        print(f"ratio luxflow / kclpy: {rows[1][1] / rows[0][1]:.1f}x")


if __name__ == "__main__":
    main()
