"""What a savepoint records per shard, and the consent a replay asks for: no network."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli.replay import confirm
from core.errors import ReplayRefusedError
from core.records import AT_TIMESTAMP, SHARD_END, TRIM_HORIZON, Position
from streams.kinesis.leases import Lease
from streams.kinesis.savepoint import shard_record
from tables.savepoints import Savepoint, ShardSavepoint
from tables.store import StoredState

SEQUENCES = st.integers(min_value=0, max_value=10**128 - 1)
HASH_KEYS = st.integers(min_value=0, max_value=2**128 - 1)


def lease(checkpoint: Position | str, **kwargs: object) -> Lease:
    return Lease("shardId-000000000001", checkpoint, None, 3, **kwargs)  # type: ignore[arg-type]


def stored(position: Position | None, *, final: bool = False) -> StoredState:
    return StoredState("shardId-000000000001", position, 1_000, b"base", (b"d1", b"d2"), final)


def test_a_shard_is_recorded_at_the_position_its_state_includes_not_its_checkpoint() -> None:
    # Saved at 200, crashed before the commit: the checkpoint still says 100.
    record = shard_record(lease(Position(100)), stored(Position(200, 4)))
    assert record.start == Position(200, 4)
    assert (record.blobs, record.size, len(record.sha256)) == (3, 8, 3)


def test_a_shard_without_state_is_recorded_at_its_checkpoint() -> None:
    assert shard_record(lease(Position(7, 1)), None).start == Position(7, 1)
    assert shard_record(lease(TRIM_HORIZON), None).start == TRIM_HORIZON
    record = shard_record(lease(AT_TIMESTAMP, at_timestamp_ms=5_000), None)
    assert (record.start, record.at_timestamp_ms, record.blobs) == (AT_TIMESTAMP, 5_000, 0)


def test_an_ended_shard_keeps_shard_end_and_its_final_state() -> None:
    record = shard_record(lease(SHARD_END, parent_ids=("p",)), stored(Position(9), final=True))
    assert (record.start, record.final, record.blobs, record.parent_ids) == (
        SHARD_END,
        True,
        3,
        ("p",),
    )


@given(SEQUENCES, st.integers(min_value=0, max_value=2**31), HASH_KEYS, HASH_KEYS)
def test_a_savepoint_round_trips_kinesis_sized_numbers(
    sequence: int, sub: int, low: int, high: int
) -> None:
    record = shard_record(
        lease(Position(1), hash_range=(low, high)), stored(Position(sequence, sub))
    )
    savepoint = Savepoint("sp-1-abcdef01", 1, 2, (record,))
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(savepoint), type=Savepoint)
    assert decoded.shards[0].start == Position(sequence, sub)
    assert decoded.shards[0].hash_range == (low, high)


@given(st.sampled_from([TRIM_HORIZON, AT_TIMESTAMP, SHARD_END, "LATEST"]))
def test_sentinels_are_kept_as_sentinels(sentinel: str) -> None:
    checkpoint, sub = ShardSavepoint.checkpoint_fields(sentinel)
    assert ShardSavepoint("s", checkpoint, 0, sub).start == sentinel


def test_a_replay_goes_on_with_yes_without_asking() -> None:
    confirm("rewrites", yes=True, interactive=False, ask=lambda _q: pytest.fail("asked"))


def test_a_replay_without_yes_and_without_a_terminal_is_refused_in_one_line() -> None:
    with pytest.raises(ReplayRefusedError, match=r"not a terminal: run again with --yes$"):
        confirm("this rewrites", yes=False, interactive=False)


@pytest.mark.parametrize("answer", ["y", "yes", " Y "])
def test_a_replay_at_a_terminal_goes_on_when_the_user_agrees(answer: str) -> None:
    questions: list[str] = []
    confirm(
        "this rewrites", yes=False, interactive=True, ask=lambda q: questions.append(q) or answer
    )
    assert questions == ["this rewrites. Go on? [y/N] "]


@pytest.mark.parametrize("answer", ["", "n", "no", "whatever"])
def test_a_replay_at_a_terminal_changes_nothing_unless_the_user_agrees(answer: str) -> None:
    with pytest.raises(ReplayRefusedError, match="nothing was changed"):
        confirm("this rewrites", yes=False, interactive=True, ask=lambda _q: answer)
