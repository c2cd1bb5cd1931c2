"""`WindowedPartition.add_tumbling` (the inlined path of tumbling additions) against the general
`update`: for any sequence of additions, reads of the index and closes, both partitions hold
the same windows, values, clocks, partition keys and changes, and refuse the same updates."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tables.partition import NO_BOOST, WindowedPartition
from tables.windows import hopping, session, sliding, tumbling, tumbling_size_ms

SIZE_MS = 1_000
# Times and graces near multiples of a quarter window, so that updates land on window bounds
# and exactly on the watermark as well as anywhere.
near_bounds = st.builds(
    lambda quarter, off: quarter * 250 + off,
    st.integers(min_value=-12, max_value=48),
    st.sampled_from([-1, 0, 1]),
)
times = st.one_of(near_bounds, st.integers(min_value=-3_000, max_value=12_000))

# ("add", key, time_ms, amount, pk) | ("index", key) | ("close",) | ("boost", extra, until)
steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.sampled_from(["a", "b", "c"]),
            times,
            st.integers(min_value=-5, max_value=5),
            st.sampled_from(["p1", "p2"]),
        ),
        st.tuples(st.just("index"), st.sampled_from(["a", "b"])),
        st.tuples(st.just("close")),
        st.tuples(
            st.just("boost"),
            st.integers(min_value=0, max_value=2_000),
            times,
        ),
    ),
    max_size=60,
)


def state_of(part: WindowedPartition) -> tuple[Any, ...]:
    return (
        part.open,
        part.closed,
        part.pks,
        part.changed,
        part.max_event_ms,
        part.seen_ms,
        part.clock_changed,
        part._open_of,
    )


@given(
    steps,
    st.one_of(near_bounds.filter(lambda g: g >= 0), st.integers(min_value=0, max_value=3_000)),
    st.integers(min_value=0, max_value=2),
)
# A window ending exactly at the watermark is still open; one before it is closed.
@example([("add", "a", 1_250, 1, "p1"), ("add", "a", 999, 1, "p1")], 251, 0)
@example([("add", "a", 1_250, 1, "p1"), ("add", "a", 999, 1, "p1")], 250, 0)
@settings(max_examples=300, deadline=None)
def test_the_fast_path_is_the_general_update(
    ops: list[tuple[Any, ...]], grace_ms: int, expires_windows: int
) -> None:
    window = tumbling(SIZE_MS, grace_ms=grace_ms, expires_ms=expires_windows * SIZE_MS)
    size_ms = tumbling_size_ms(window)
    assert size_ms == SIZE_MS
    general, fast = WindowedPartition(), WindowedPartition()
    boost = NO_BOOST
    for op in ops:
        if op[0] == "add":
            _, key, time_ms, amount, pk = op
            applied = general.update(
                window, key=key, time_ms=time_ms, pk=pk, default=int, amount=amount, boost=boost
            )
            assert (
                fast.add_tumbling(
                    size_ms,
                    window.grace_ms,
                    key,
                    time_ms,
                    pk=pk,
                    default=int,
                    amount=amount,
                    boost=boost,
                )
                == applied
            )
        elif op[0] == "index":
            # Asking for a key's open windows builds the index both keep up to date after.
            assert general._open_windows(op[1]) == fast._open_windows(op[1])
        elif op[0] == "close":
            assert general.close(window, boost) == fast.close(window, boost)
        else:
            boost = (op[1], op[2])
        assert state_of(general) == state_of(fast)


def test_only_tumbling_windows_take_the_fast_path() -> None:
    assert tumbling_size_ms(tumbling(60_000)) == 60_000
    assert tumbling_size_ms(hopping(60_000, 60_000)) == 60_000
    assert tumbling_size_ms(hopping(60_000, 10_000)) is None
    assert tumbling_size_ms(sliding(10, 10)) is None
    assert tumbling_size_ms(session(10)) is None
