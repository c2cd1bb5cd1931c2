"""`WindowedPartition.take_before`: a key's open windows ending before a time are taken out
with their values, in order of end, without a close; the other keys and windows stay, a later
update starts such a window again, and it closes as usual."""

from __future__ import annotations

from tables.partition import NO_BOOST, SharedKeys, WindowedPartition
from tables.windows import tumbling

WINDOW = tumbling(1_000, grace_ms=5_000)


def add(part: WindowedPartition, key: str, time_ms: int, amount: float) -> bool:
    return part.update(
        WINDOW, key=key, time_ms=time_ms, pk=key, default=float, amount=amount, boost=NO_BOOST
    )


def test_the_windows_ending_before_the_time_are_taken_in_order_of_end() -> None:
    keys = SharedKeys()
    part = WindowedPartition(keys)
    for time_ms, amount in ((2_500, 1.0), (500, 2.0), (1_500, 3.0), (1_700, 4.0)):
        assert add(part, "s1", time_ms, amount)
    assert add(part, "s2", 500, 10.0)
    part._open_windows("s1")  # the index of open windows is kept up to date too
    part._changes.forget(part.bit)  # as a snapshot that took the changes
    assert part.take_before("s1", 2_000) == [((0, 999), 2.0), ((1_000, 1_999), 7.0)]
    assert part.open == {(0, 999): {"s2": 10.0}, (2_000, 2_999): {"s1": 1.0}}
    assert part.closed == {}
    assert part.changed == {"s1"}
    assert part._open_of == {"s1": [(2_000, 2_999)], "s2": [(0, 999)]}
    assert part.take_before("s1", 2_000) == []  # nothing left before it
    assert part.take_before("s3", 9_000) == []
    assert part.take_before("s1", 9_000) == [((2_000, 2_999), 1.0)]
    assert "s1" not in keys.pks  # in no window any more: its partition key goes
    # A later update of a taken window starts it again, and it closes as usual.
    assert add(part, "s1", 600, 0.5)
    assert add(part, "s2", 6_001, 0.0)  # the watermark passes 999
    closing, _ = part.close(WINDOW)
    assert closing == [((0, 999), {"s2": 10.0, "s1": 0.5})]
