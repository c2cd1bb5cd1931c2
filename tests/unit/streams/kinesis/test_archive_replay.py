"""The archive replay's driver with recording processors: each shard's records in order to its
own processor, bad lines and out-of-order records to the dead-letter sink, then the idle close
(empty reads at the tip) until quiet and settled, then a shutdown."""

from __future__ import annotations

import gzip
from collections.abc import Sequence

from core.records import DeadLetter, Position, Record
from streams.kinesis.archive import encode_line
from streams.kinesis.archive_reader import ArchiveObject, ShardOrder
from streams.kinesis.archive_replay import ArchiveReplay
from streams.processor import Checkpointer, Lineage, ShardHealth


class Recording:
    """A ShardProcessor that records what the driver calls."""

    def __init__(self, shard_id: str, calls: list[tuple[str, object]]) -> None:
        self.shard_id = shard_id
        self.health = ShardHealth(shard_id)
        self.calls = calls

    def initialize(self, start: Position | str, lineage: Lineage | None = None) -> None:
        self.calls.append((f"{self.shard_id} initialize", start))

    def process_records(
        self, records: Sequence[Record], millis_behind_latest: int | None = None
    ) -> None:
        what = [r.sequence_number for r in records] if records else millis_behind_latest
        self.calls.append((f"{self.shard_id} process", what))

    def lease_lost(self) -> None:
        raise AssertionError("not in a replay")

    def shard_ended(self) -> None:
        raise AssertionError("not in a replay")

    def shutdown_requested(self) -> None:
        self.calls.append((f"{self.shard_id} shutdown", None))


class Letters:
    def __init__(self) -> None:
        self.written: list[object] = []
        self.flushes = 0

    def write(self, item: object) -> None:
        self.written.append(item)

    def flush(self) -> None:
        self.flushes += 1

    def discard(self) -> None:
        self.written.clear()


def rec(shard: str, seq: int) -> Record:
    return Record(shard, seq, 0, "site-1", b"r%d" % seq, 1_000 + seq)


def test_records_reach_their_shard_in_order_and_windows_close_before_shutdown() -> None:
    objects = {
        "a": gzip.compress(
            encode_line(rec("s1", 2))
            + b"junk\n"
            + encode_line(rec("s0", 1))
            + encode_line(rec("s1", 1))
        ),
        "b": encode_line(rec("s1", 3)) + encode_line(rec("s1", 1)) + encode_line(rec("s0", 0)),
    }  # fmt: skip
    calls: list[tuple[str, object]] = []
    letters = Letters()
    clock = [0.0]

    def factory(shard_id: str, _checkpointer: Checkpointer) -> Recording:
        return Recording(shard_id, calls)

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    replay = ArchiveReplay(
        [ArchiveObject("a", 100, None), ArchiveObject("b", 300, None)],
        objects.__getitem__,
        factory,
        letters,
        order=ShardOrder(),
        quiet_ms=500,
        poll_s=0.2,
        clock_ms=lambda: 7,
        monotonic=lambda: clock[0],
        sleep=sleep,
    )
    progress = replay.run()

    assert calls[:5] == [
        ("s0 initialize", "TRIM_HORIZON"),
        ("s0 process", [1]),
        ("s1 initialize", "TRIM_HORIZON"),
        ("s1 process", [1, 2]),
        ("s1 process", [3]),
    ]
    # Empty reads at the tip at 0, 0.2, 0.4 and 0.6 s: quiet for 0.5 s and settled after it.
    assert calls[5:-2] == [("s0 process", 0), ("s1 process", 0)] * 4
    assert calls[-2:] == [("s0 shutdown", None), ("s1 shutdown", None)]
    assert (progress.records, progress.objects, progress.bytes_read) == (4, 2, 400)
    assert (progress.bad_lines, progress.out_of_order, replay.repeated) == (1, 1, 1)
    bad, late = letters.written
    assert bad == DeadLetter("archive", 2, 0, "", "archive", "archive line: not JSON", b"junk", 7,
                             detail_key="a")  # fmt: skip
    assert isinstance(late, DeadLetter) and (late.shard_id, late.sequence_number) == ("s0", 0)
    assert late.reason == "archive record out of its shard's order"
