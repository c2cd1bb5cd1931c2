"""Tables and ShardState: per-record watermark, lateness, window close exactly once, idle
close on an injected clock (snapshots: test_snapshot.py)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from core.clock import ManualClock
from core.errors import ConfigError
from tables.shard import NoActiveShardError, ShardState
from tables.table import Table
from tables.windows import WindowRange
from tests.support.table_app import (
    GRACE,
    HOUR,
    IDLE,
    KwhReading,
    KwhTables,
    begin,
    feed,
    run,
    state_of,
)

# -- plain tables ------------------------------------------------------------------------


def test_plain_table_mapping() -> None:
    app = KwhTables()
    state = state_of(app, ManualClock())
    state.activate()
    begin(state, "site-1")
    t = app.counts
    assert t["a"] == 0
    assert "a" not in t  # reading the default does not store it
    t["a"] += 2
    t[("b", 1)] = 5
    assert t["a"] == 2
    assert t.get(("b", 1)) == 5
    assert t.get("zz") is None
    assert len(t) == 2
    del t["a"]
    assert "a" not in t
    assert sorted(map(str, t)) == ["('b', 1)"]


def test_table_without_active_shard_raises() -> None:
    app = KwhTables()
    errors: list[BaseException] = []

    def use() -> None:
        try:
            app.counts["x"]
        except NoActiveShardError as exc:
            errors.append(exc)

    thread = threading.Thread(target=use)
    thread.start()
    thread.join()
    assert len(errors) == 1


def test_two_shards_interleaved_in_one_thread_do_not_share() -> None:
    app, clock = KwhTables(), ManualClock()
    a, b = state_of(app, clock, "a"), state_of(app, clock, "b")
    a.activate()
    begin(a, "s")
    app.counts["k"] = 1
    b.activate()
    assert app.counts["k"] == 0
    begin(b, "s")
    app.counts["k"] = 7
    a.activate()
    assert app.counts["k"] == 1


def test_each_thread_has_its_own_active_shard() -> None:
    app, clock = KwhTables(), ManualClock()
    states = [state_of(app, clock, f"s{i}") for i in range(4)]
    barrier = threading.Barrier(4)

    def work(i: int) -> None:
        states[i].activate()
        begin(states[i], "p")
        barrier.wait()
        for _ in range(1000):
            app.counts["k"] += i

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, s in enumerate(states):
        s.activate()
        assert app.counts["k"] == 1000 * i


def test_duplicate_table_names_refused() -> None:
    with pytest.raises(ConfigError):
        ShardState([Table("x", default=int, value_type=int)] * 2, "s", ManualClock(), IDLE)


def test_windowing_a_table_twice_is_refused() -> None:
    t = Table("x", default=int, value_type=int)
    t.tumbling(1000)
    with pytest.raises(ConfigError):
        t.hopping(1000, 500)


# -- windowed values ---------------------------------------------------------------------


def test_windowed_value_reads() -> None:
    app, clock = KwhTables(), ManualClock(now_ms=5 * HOUR + 10)
    state = state_of(app, clock)
    state.activate()
    for ts, kwh in [(HOUR + 5, 1.0), (2 * HOUR + 5, 2.0), (5 * HOUR + 1, 4.0)]:
        feed(state, app, KwhReading("s", "a", ts, kwh), arrival_ms=2 * HOUR + 7)
    wv = app.hourly["a"]
    assert wv.value() == 4.0  # window of the event's ts field (5h)
    assert wv.current() == 2.0  # window of the record's arrival time (2h)
    assert wv.now() == 4.0  # window of the clock (5h)
    assert wv.delta(3 * HOUR) == 2.0
    assert wv.delta(HOUR) == 0.0
    assert app.hourly.at("a", HOUR).value() == 1.0


def test_set_and_subtract_in_the_event_window() -> None:
    app, clock = KwhTables(), ManualClock()
    state = state_of(app, clock)
    state.activate()
    feed(state, app, KwhReading("s", "a", 10, 1.0))
    app.hourly["a"] = 10.0
    app.hourly["a"] -= 3.0
    assert app.hourly["a"].value() == 7.0
    assert app.hourly.windows("a") == [((0, HOUR - 1), 7.0)]


def test_hopping_update_lands_in_every_window() -> None:
    t = Table("h", default=int, value_type=int)
    wt = t.hopping(10, 5).relative_to_stream()
    state = ShardState([t], "s", ManualClock(), IDLE)
    state.activate()
    begin(state, "p", 7)
    wt["k"] += 1
    begin(state, "p", 12)
    wt["k"] += 10
    assert wt.windows("k") == [((0, 9), 1), ((5, 14), 11), ((10, 19), 10)]


def test_relative_to_now_uses_the_clock() -> None:
    t = Table("n", default=int, value_type=int)
    wt = t.tumbling(100).relative_to_now()
    clock = ManualClock(250)
    state = ShardState([t], "s", clock, IDLE)
    state.activate()
    begin(state, "p")
    wt["k"] += 1
    assert wt.windows("k") == [((200, 299), 1)]


def test_relative_to_field_gives_a_new_view_and_leaves_the_first_one_as_it_was() -> None:
    t = Table("v", default=int, value_type=int)
    by_arrival = t.tumbling(100)
    by_field = by_arrival.relative_to_field(lambda value: value)
    by_clock = by_arrival.relative_to_now()
    closed: list[WindowRange] = []

    @by_field.on_window_close
    def close(key: Any, window: WindowRange, value: Any) -> list[object]:
        closed.append(window)
        return []

    state = ShardState([t], "s", ManualClock(550), IDLE)
    state.activate()
    begin(state, "p", 150, 320)  # arrival 150, field 320, clock 550
    by_arrival["k"] += 1
    by_field["k"] += 10
    by_clock["k"] += 100
    assert by_field is not by_arrival
    assert by_arrival.windows("k") == [((100, 199), 1), ((300, 399), 10), ((500, 599), 100)]
    assert (by_arrival["k"].value(), by_field["k"].value(), by_clock["k"].value()) == (1, 10, 100)
    begin(state, "p", 1_000, 1_000)
    by_arrival["k"] += 0
    state.advance()
    # One table: the callback registered through one view closes the windows of all three.
    assert closed == [(100, 199), (300, 399), (500, 599)]


def test_at_splits_energy_across_an_hour_boundary() -> None:
    app, clock = KwhTables(), ManualClock()
    state = state_of(app, clock)
    state.activate()
    begin(state, "s", 0, KwhReading("s", "a", HOUR + 10_000, 0.0))
    assert app.hourly.at("a", HOUR - 20_000).add(2.0)
    assert app.hourly.add("a", 1.0, at_ms=HOUR + 10_000)
    assert app.hourly.windows("a") == [((0, HOUR - 1), 2.0), ((HOUR, 2 * HOUR - 1), 1.0)]


# -- watermark, lateness, closing ---------------------------------------------------------


def readings() -> list[KwhReading]:
    out = []
    for i in range(200):
        ts = i * 60_000 + (i * 7919) % 50_000
        if i % 17 == 0:
            ts -= 10 * 60_000  # out of order, sometimes beyond grace
        out.append(KwhReading(f"site-{i % 3}", f"asset-{i % 5}", ts, float(i % 4)))
    return out


def test_results_do_not_depend_on_batch_boundaries() -> None:
    data = readings()
    reference = run(data, [len(data)])
    assert any(reference[0])  # the data has late records
    assert reference[1]  # and closes windows
    for sizes in ([1] * 200, [7, 1, 50, 3, 100], [13] * 20):
        assert run(data, sizes) == reference


def test_late_update_is_reported_counted_and_not_applied() -> None:
    app, clock = KwhTables(), ManualClock()
    state = state_of(app, clock)
    state.activate()
    assert not feed(state, app, KwhReading("s", "a", HOUR + GRACE, 1.0))
    # Window (0, HOUR-1) closed: the watermark HOUR + GRACE - GRACE = HOUR passed its end.
    assert feed(state, app, KwhReading("s", "a", HOUR - 1, 5.0))
    assert not state.take_late()  # reset once taken
    assert state.counters.late == 1
    assert app.hourly.windows("a") == [((HOUR, 2 * HOUR - 1), 1.0)]
    # The plain table write of the same record was applied: lateness is per windowed update.
    assert app.counts["s"] == 2


def test_within_grace_is_accepted() -> None:
    app, clock = KwhTables(), ManualClock()
    state = state_of(app, clock)
    state.activate()
    feed(state, app, KwhReading("s", "a", HOUR + GRACE - 1, 1.0))
    assert not feed(state, app, KwhReading("s", "a", HOUR - 1, 5.0))
    assert state.advance() == []
    feed(state, app, KwhReading("s", "a", HOUR + GRACE, 1.0))
    assert state.advance() == [("a", (0, HOUR - 1), 5.0)]


def test_window_closes_exactly_once_and_is_forgotten() -> None:
    app, clock = KwhTables(), ManualClock()
    state = state_of(app, clock)
    state.activate()
    feed(state, app, KwhReading("s", "a", 10, 1.0))
    feed(state, app, KwhReading("s", "b", 20, 2.0))
    assert state.advance() == []
    feed(state, app, KwhReading("s", "a", 2 * HOUR, 1.0))
    assert state.advance() == [("a", (0, HOUR - 1), 1.0), ("b", (0, HOUR - 1), 2.0)]
    assert state.advance() == []
    assert state.counters.windows_closed == 2
    assert state.live_windows() == 1
    assert app.hourly.windows("b") == []
    assert list(state.windowed["hourly"].pks) == ["a"]  # b forgotten entirely


def test_expires_ms_keeps_closed_windows_readable_then_forgets_them() -> None:
    app, clock = KwhTables(expires_ms=HOUR), ManualClock()
    state = state_of(app, clock)
    state.activate()
    feed(state, app, KwhReading("s", "a", 10, 1.0))
    feed(state, app, KwhReading("s", "a", HOUR + GRACE, 2.0))
    assert state.advance() == [("a", (0, HOUR - 1), 1.0)]
    assert app.hourly["a"].delta(HOUR) == 1.0
    # Writes to the closed window stay late.
    assert feed(state, app, KwhReading("s", "a", 5, 1.0))
    feed(state, app, KwhReading("s", "a", 2 * HOUR + GRACE, 0.0))
    assert state.advance() == [("a", (HOUR, 2 * HOUR - 1), 2.0)]
    assert state.counters.windows_expired == 1
    assert app.hourly.windows("a") == [
        ((HOUR, 2 * HOUR - 1), 2.0),
        ((2 * HOUR, 3 * HOUR - 1), 0.0),
    ]


def test_callback_sees_the_partition_key_of_the_key() -> None:
    t = Table("w", default=int, value_type=int)
    wt = t.tumbling(100).relative_to_stream()
    seen: list[tuple[str, str]] = []
    state = ShardState([t], "s", ManualClock(), IDLE)

    @wt.on_window_close
    def close(key: Any, window: WindowRange, value: Any) -> list[object]:
        seen.append((key, state.partition_key))
        return []

    state.activate()
    for pk, key, ts in [("p1", "k1", 1), ("p2", "k2", 2), ("p1", "k1", 500)]:
        begin(state, pk, ts)
        wt[key] += 1
    state.advance()
    assert seen == [("k1", "p1"), ("k2", "p2")]


# -- idle close ---------------------------------------------------------------------------


def test_idle_shard_closes_windows_on_processing_time() -> None:
    app, clock = KwhTables(), ManualClock(now_ms=1_000)
    state = state_of(app, clock)
    state.activate()
    feed(state, app, KwhReading("s", "a", HOUR - 400_000, 3.0))
    assert state.advance() == []
    # Quiet, but not for idle_timeout_ms yet: nothing moves.
    clock.now_ms += IDLE - 1
    assert state.advance() == []
    assert state.watermark_ms(app.hourly) == HOUR - 400_000 - GRACE
    # Idle: the event clock jumps by the whole silence, then follows the clock.
    clock.now_ms += 1
    assert state.advance() == []
    assert state.watermark_ms(app.hourly) == HOUR - 400_000 - GRACE + IDLE
    assert state.counters.idle_advances == 1
    clock.now_ms += 400_000 + GRACE - IDLE - 1
    assert state.advance() == []
    clock.now_ms += 1  # event clock now at HOUR + GRACE: the watermark passed the end
    assert state.advance() == [("a", (0, HOUR - 1), 3.0)]
    # A record after the silence that belongs to the closed window is late.
    assert feed(state, app, KwhReading("s", "a", HOUR - 5_000, 1.0))


def test_records_keep_the_shard_from_idling() -> None:
    app, clock = KwhTables(), ManualClock()
    state = state_of(app, clock)
    state.activate()
    for i in range(10):
        clock.now_ms += IDLE  # a slow stream, but a record in every batch
        feed(state, app, KwhReading("s", "a", 10 + i, 1.0))
        assert state.advance() == []
    assert state.counters.idle_advances == 0


def test_bad_idle_timeout_refused() -> None:
    with pytest.raises(ConfigError):
        ShardState([], "s", ManualClock(), 0)


def test_idle_event_clock_moves_at_the_pace_of_processing_time_from_the_last_read() -> None:
    # Old (replayed) data: event times far behind processing time. Once the shard is idle,
    # the event clock moves on from the last reading by the time that passed on this clock
    # since it was read, never straight to processing time, whatever its arrival says.
    app, clock = KwhTables(), ManualClock(now_ms=100 * HOUR)
    state = state_of(app, clock)
    state.activate()
    feed(state, app, KwhReading("s", "a", HOUR + 10, 2.0))
    assert state.advance() == []
    clock.now_ms += IDLE
    assert state.advance() == []
    assert state.watermark_ms(app.hourly) == HOUR + 10 + IDLE - GRACE
    clock.now_ms += HOUR + GRACE
    assert state.advance() == [("a", (HOUR, 2 * HOUR - 1), 2.0)]
