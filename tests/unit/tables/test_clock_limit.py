"""One record cannot move a shard's event clock past what most sources show: a record moves it
at most to its arrival less the lag most of the shard's sources show now plus the topic's
lead, its own update still lands in the window of its own stamp, and a shard restored from its
snapshot limits its clock as the uninterrupted run did (the lags are part of the state).
Sources here are partition keys, one per device."""

from __future__ import annotations

import msgspec

from core.clock import MINUTE_MS, ManualClock
from tables.lag import source_id
from tables.shard import ShardState
from tables.snapshot import compress, decompress
from tables.table import Table, WindowedTable
from tests.support.table_app import IDLE, begin

LEAD_MS = 2 * MINUTE_MS
LAG_MS = 11 * MINUTE_MS  # a backfill: every honest reading arrives 11 minutes after its stamp
GRACE_MS = 10 * MINUTE_MS
T0_MS = 1_800_000_000_000


def windowed() -> tuple[Table[int], WindowedTable[int]]:
    table = Table("t", default=int, value_type=int)
    return table, table.tumbling(MINUTE_MS, grace_ms=GRACE_MS).relative_to_field(lambda ts: ts)


def shard() -> tuple[ShardState, WindowedTable[int]]:
    table, view = windowed()
    state = ShardState(
        [table], "s", ManualClock(T0_MS), IDLE, event_time=lambda ts: ts, max_lead_ms=LEAD_MS
    )
    return state, view


def add(
    state: ShardState, table: WindowedTable[int], key: str, arrival_ms: int, ts_ms: int
) -> bool:
    """One record stamped `ts_ms` arriving at `arrival_ms`: True if it was late."""
    state.activate()
    begin(state, key, arrival_ms, ts_ms)
    table[key] += 1
    return state.take_late()


def honest(
    state: ShardState,
    table: WindowedTable[int],
    count: int,
    start: int = 0,
    lag_ms: int = LAG_MS,
    devices: tuple[str, ...] = ("honest", "honest-2", "honest-3"),
) -> int:
    """`count` minutes of readings from three honest devices from minute `start`, arriving
    `lag_ms` after their stamps; returns the last arrival."""
    arrival = T0_MS
    for minute in range(start, start + count):
        arrival = T0_MS + lag_ms + minute * MINUTE_MS
        for device in devices:
            assert not add(state, table, device, arrival, arrival - lag_ms)
    return arrival


def test_a_record_stamped_at_its_arrival_moves_the_clock_only_to_what_most_sources_show() -> None:
    state, table = shard()
    arrival = honest(state, table, 20)
    # A device 11 minutes fast: its stamps are its arrival, which the decoder's skew accepts.
    assert not add(state, table, "fast", arrival + 1, arrival + 1)
    assert state.event_clock_ms() == arrival + 1 - LAG_MS + LEAD_MS
    # Its reading is in the window of its own stamp.
    start = arrival + 1 - (arrival + 1) % MINUTE_MS
    assert table.windows("fast") == [((start, start + MINUTE_MS - 1), 1)]
    # The honest devices' next readings are not late (they were, by a minute, before).
    honest(state, table, 5, start=20)


def test_a_device_as_fast_as_a_producer_pause_is_held_to_the_lag_the_others_show_now() -> None:
    state, table = shard()
    honest(state, table, 20, lag_ms=2_000)
    # The producer pauses 5 minutes: every honest reading now arrives 302 s after its stamp,
    # and a device 5 minutes fast arrives 2 s after its own: most of the last records
    # still show that lag, most sources no longer do.
    pause_ms = 5 * MINUTE_MS
    arrival = honest(state, table, 1, start=20, lag_ms=2_000 + pause_ms)
    assert not add(state, table, "fast", arrival, arrival - 2_000)
    stamp = arrival - 2_000 - pause_ms  # the honest devices' newest
    assert state.event_clock_ms() == stamp + LEAD_MS


def test_without_an_event_time_the_clock_follows_the_newest_stamp() -> None:
    table, view = windowed()
    state = ShardState([table], "s", ManualClock(T0_MS), IDLE)
    arrival = honest(state, view, 20)
    add(state, view, "fast", arrival + 1, arrival + 1)
    assert state.event_clock_ms() == arrival + 1


def saved_chain(
    state: ShardState,
    table: WindowedTable[int],
    minutes: int,
    devices: tuple[str, ...] = ("honest",),
) -> list[bytes]:
    """The stored chain after a snapshot each minute (a base starts a new chain)."""
    chain: list[bytes] = []
    for minute in range(minutes):
        honest(state, table, 1, start=minute, devices=devices)
        if minute == 0:  # a base worth its deltas
            for key in range(100):
                table[f"k{key}"] += 1
        pending = state.snapshot()
        assert pending is not None
        state.saved(pending)
        chain = [*chain, pending.data] if pending.delta else [pending.data]
    return chain


def test_a_restored_shard_limits_the_clock_as_the_uninterrupted_one_does() -> None:
    straight, straight_table = shard()
    chain = saved_chain(straight, straight_table, 2)
    assert len(chain) > 1  # the lags are the last delta's
    restored, restored_table = shard()
    restored.restore([chain], lambda _pk: True)
    # The first record after the restore is the fast device's: with no lags kept it would
    # have been the only sample, and the clock its own stamp.
    arrival = T0_MS + LAG_MS + 2 * MINUTE_MS
    clocks = []
    for state, table in ((straight, straight_table), (restored, restored_table)):
        add(state, table, "fast", arrival, arrival)
        clocks.append(state.event_clock_ms() or 0)
    assert clocks[0] == clocks[1] <= arrival - LAG_MS + LEAD_MS


def test_a_snapshot_written_before_lags_were_kept_restores_with_none() -> None:
    state, table = shard()
    chain = saved_chain(state, table, 3)
    # The blob as it was stored before: its last fields, the lags and their arrivals, absent.
    fields = msgspec.msgpack.decode(decompress("s", chain[0]))
    old = compress(msgspec.msgpack.encode(fields[:-2]))
    restored, restored_table = shard()
    restored.restore([[old]], lambda _pk: True)
    restored.activate()
    assert restored_table.windows("honest")
    # None kept: the first record's own lag is the typical one: not limited.
    arrival = T0_MS + LAG_MS + 3 * MINUTE_MS
    add(restored, restored_table, "fast", arrival, arrival)
    assert restored.event_clock_ms() == arrival


def test_the_children_of_a_merge_hold_both_parents_lags() -> None:
    one, one_table = shard()
    two, two_table = shard()
    merged, _ = shard()
    chains = [saved_chain(one, one_table, 40, ("a",)), saved_chain(two, two_table, 40, ("b",))]
    merged.restore(chains, lambda _pk: True)
    assert merged.snapshot() is not None  # a base: it carries the lags it holds
    last = T0_MS + LAG_MS + 39 * MINUTE_MS  # each parent's last arrival
    assert merged._lag.samples() == [(source_id(d), LAG_MS // 1_000, last) for d in ("a", "b")]


def test_a_snapshot_that_kept_lags_but_not_their_arrivals_limits_as_before() -> None:
    straight, straight_table = shard()
    chain = saved_chain(straight, straight_table, 3)
    # The blob as it was stored before arrivals were kept: its last field absent.
    fields = msgspec.msgpack.decode(decompress("s", chain[0]))
    old = compress(msgspec.msgpack.encode(fields[:-1]))
    restored, restored_table = shard()
    restored.restore([[old]], lambda _pk: True)
    arrival = T0_MS + LAG_MS + 3 * MINUTE_MS
    clocks = []
    for state, table in ((straight, straight_table), (restored, restored_table)):
        add(state, table, "fast", arrival, arrival)
        clocks.append(state.event_clock_ms() or 0)
    assert clocks[0] == clocks[1] == arrival - LAG_MS + LEAD_MS
