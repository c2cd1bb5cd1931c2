"""The event clock against everything that should not move it: producer pauses during a
backfill, read outages (an empty read with no MillisBehindLatest, as after an expired
iterator), crashes and restarts, and devices whose clocks are fast or slow by up to an hour.

For any mix of those, the outputs of the devices with correct clocks are exactly those of a
straight run without them: the same faults, states and usage reports, no `late` dead letter.
The real lighting app runs in-process (`AgentTestContext`), records carry their arrival time
as Kinesis gives it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import msgspec
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.clock import HOUR_MS, MINUTE_MS, SECOND_MS
from core.records import Record
from domain.telemetry import DEFAULT_MAX_SKEW_MS, Telemetry, encode_telemetry
from domain.timestamps import format_ts
from lighting.agents import CLOCK_LEAD_MS, build_app
from lighting.registry import empty_registry
from streams.processor import EngineConfig
from streams.testing import AgentTestContext
from tables.lag import HORIZON_MS

T0_MS = 1_800_000_000_000 - 1_800_000_000_000 % HOUR_MS  # an hour boundary
GRACE_MS = 10 * MINUTE_MS
IDLE_MS = 60 * SECOND_MS
STEP_MS = MINUTE_MS  # one reading per device per minute
READINGS = 100  # an hour and 40 minutes: one hourly window closes on readings, one by idling
HONEST = ("lamp-1", "lamp-2", "lamp-3")
SHARD = "shardId-000000000000"
MAX_PAUSE_MS = GRACE_MS - DEFAULT_MAX_SKEW_MS - STEP_MS
"""A quiet spell (a pause plus the reading interval around it) shorter than the grace, less
what a believed device may run ahead, closes no window a later reading still needs: a reading
counts its energy back to the one before it."""


@dataclass(frozen=True)
class Device:
    site: str
    asset: str
    offset_ms: int  # how fast its clock is (negative: slow)


def reading(device: Device, true_ms: int, minute: int) -> bytes:
    fault = "lamp_failure" if device.asset == "lamp-2" and 30 <= minute < 40 else None
    if device.asset not in HONEST:
        power = 55.0
    else:
        power = 0.0 if fault else 40.0 + 5.0 * (minute // 20) + HONEST.index(device.asset) % 2
    return encode_telemetry(
        Telemetry(
            v=1,
            site_id=device.site,
            building_id="b-1",
            room_id="r-1",
            asset_id=device.asset,
            ts=format_ts(true_ms + device.offset_ms),
            power_w=power,
            voltage_v=230.0,
            current_a=power / 230.0,
            lux=300.0,
            on=True,
            dim_level=100,
            fault_code=fault,
        )
    )


def deliveries(
    devices: list[Device], lag_ms: int, upload_speed: int
) -> list[tuple[int, str, bytes]]:
    """(arrival, partition key, data) in arrival order. A reading taken at `true` reaches the
    stream `lag_ms` later; a backfill (`upload_speed` > 1) sends its buffer faster than real
    time, so its lag shrinks as it goes."""
    out = []
    for minute in range(READINGS):
        true_ms = T0_MS + minute * STEP_MS
        # No reading reaches the stream before it was taken (plus the network's 2 s).
        arrival = max(true_ms + 2 * SECOND_MS, T0_MS + lag_ms + minute * STEP_MS // upload_speed)
        for index, device in enumerate(devices):
            out.append((arrival + index, device.site, reading(device, true_ms, minute)))
    return out


Action = tuple[str, int]  # ("pause" | "outage" | "restart" | "crash" | "none", milliseconds)
TICK_MS = 10 * SECOND_MS


def run(
    devices: list[Device],
    lag_ms: int,
    upload_speed: int,
    actions: dict[int, Action],
    worker_ahead_ms: int = 0,
) -> AgentTestContext:
    """A producer and a reader. The producer sends one minute's readings at a time; a "pause"
    after batch `i` delays every later send. The reader reads what has arrived: a batch when
    there is one, else an empty read that reached the tip; during an "outage" after batch `i`
    its reads fail (empty, no MillisBehindLatest). "restart" stops cleanly after batch `i`,
    "crash" loses what was not checkpointed and reads again from the checkpoint. The reader's
    clock is `worker_ahead_ms` ahead of the stream's (arrival times)."""
    app = build_app(empty_registry(), topic="telemetry", grace_ms=GRACE_MS)
    ctx = AgentTestContext(
        app,
        shard_id=SHARD,
        now_ms=T0_MS + worker_ahead_ms,
        config=EngineConfig(checkpoint_interval_ms=5 * SECOND_MS, idle_timeout_ms=IDLE_MS),
    )
    per_batch = len(devices)
    sent = deliveries(devices, lag_ms, upload_speed)
    records: list[Record] = []
    shift_ms = 0
    for batch in range(READINGS):
        for arrival, key, data in sent[batch * per_batch : (batch + 1) * per_batch]:
            records.append(Record(SHARD, len(records) + 1, 0, key, data, arrival + shift_ms))
        kind, ms = actions.get(batch, ("none", 0))
        if kind == "pause":
            shift_ms += ms
    read = 0
    pending = dict(actions)  # each action happens once, even when a crash reads a batch again
    while read < len(records):
        now = ctx.clock.now_ms - worker_ahead_ms  # on the stream's clock
        ready = [r for r in records[read : read + per_batch] if r.arrival_ms <= now]
        if not ready:  # at the tip: an empty read, then the next poll
            nxt = records[read].arrival_ms + worker_ahead_ms
            ctx.tick(min(nxt, ctx.clock.now_ms + TICK_MS))
            continue
        ctx.deliver(ready)
        read += len(ready)
        ctx.clock.now_ms += 200
        if read % per_batch:
            continue
        kind, ms = pending.pop(read // per_batch - 1, ("none", 0))
        if kind == "outage":
            end = ctx.clock.now_ms + ms
            while ctx.clock.now_ms < end:
                ctx.tick(min(end, ctx.clock.now_ms + 3 * TICK_MS), caught_up=False)
        elif kind == "restart":
            ctx.checkpoint()
            ctx.restart()
        elif kind == "crash":
            ctx.restart()
            done = ctx.checkpointer.positions.get(SHARD)
            read = 0 if done is None else int(done.sequence_number)  # type: ignore[union-attr]
    # The stream ends: the shard is quiet until every window has closed.
    end = ctx.clock.now_ms + 2 * HOUR_MS
    while ctx.clock.now_ms < end:
        ctx.tick(ctx.clock.now_ms + 3 * TICK_MS)
    ctx.checkpoint()
    return ctx


def honest_outputs(ctx: AgentTestContext) -> set[bytes]:
    return {
        msgspec.json.encode(o)
        for o in ctx.sink.stored.values()
        if getattr(o, "site_id", "site-1") == "site-1"
    }


def honest_late(ctx: AgentTestContext) -> int:
    return sum(1 for d in ctx.dead_letters if d.origin == "late" and d.partition_key == "site-1")


HONEST_DEVICES = [Device("site-1", asset, 0) for asset in HONEST]

actions = st.dictionaries(
    st.integers(0, READINGS - 1),
    st.one_of(
        st.tuples(st.just("pause"), st.integers(IDLE_MS, MAX_PAUSE_MS)),
        st.tuples(st.just("outage"), st.integers(SECOND_MS, 2 * HOUR_MS)),
        st.tuples(st.sampled_from(["restart", "crash"]), st.just(0)),
    ),
    max_size=4,
)
bad_clocks = st.lists(st.integers(-HOUR_MS, HOUR_MS), max_size=2)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lag_ms=st.sampled_from([2 * SECOND_MS, 3 * HOUR_MS]),
    upload_speed=st.sampled_from([1, 20]),
    actions=actions,
    offsets=bad_clocks,
)
# A restart after the last record: the restored clock has no record of what readings showed,
# and each idle move used to count from the one before it (a week gone in two hours).
@example(lag_ms=2 * SECOND_MS, upload_speed=1, actions={99: ("restart", 0)}, offsets=[])
# A device 4 minutes fast is refused until the producer's pauses put its readings' arrival
# within the skew of their stamps; then its stamps lead the clock by 4 minutes, and the
# idle clock used to keep that lead over a quiet spell: honest readings came in late.
@example(
    lag_ms=2 * SECOND_MS,
    upload_speed=1,
    actions={
        0: ("pause", 177_497),
        1: ("pause", 355_011),
        2: ("pause", 60_000),
        3: ("pause", 60_000),
    },
    offsets=[244_992],
)
# The same with a device 11 minutes fast: once accepted it set the clock itself, 11 minutes
# ahead of the others, past their grace.
@example(
    lag_ms=2 * SECOND_MS,
    upload_speed=1,
    actions={
        0: ("pause", 183_861),
        1: ("pause", 60_000),
        2: ("pause", 60_000),
        20: ("pause", 234_421),
    },
    offsets=[660_000],
)
# Two pauses of 5 minutes and a device 5 minutes fast: after the first pause its lag is what
# the honest devices' was before it, so the median of the last records kept the old lag, and
# the idle clock ran that far ahead of the honest devices over the second pause.
@example(
    lag_ms=2 * SECOND_MS,
    upload_speed=1,
    actions={3: ("pause", 300_002), 7: ("pause", 300_002)},
    offsets=[300_002],
)
# The same with the pauses back to back: in the last records most lags were still the old
# one, which the fast device showed; the others' stamps hold it.
@example(
    lag_ms=2 * SECOND_MS,
    upload_speed=1,
    actions={34: ("pause", 299_998), 35: ("pause", 300_002)},
    offsets=[300_001],
)
# Three-hour-old readings and a device an hour fast: its stamps are still before their
# arrival, so nothing refuses them; what most records show holds the clock.
@example(lag_ms=3 * HOUR_MS, upload_speed=20, actions={}, offsets=[HOUR_MS])
@example(lag_ms=3 * HOUR_MS, upload_speed=1, actions={10: ("crash", 0)}, offsets=[HOUR_MS, 600_000])
def test_no_pause_outage_restart_or_bad_clock_changes_what_the_honest_devices_get(
    lag_ms: int, upload_speed: int, actions: dict[int, Action], offsets: list[int]
) -> None:
    straight = run(HONEST_DEVICES, lag_ms, upload_speed, {})
    bad = [Device("site-x", f"lamp-x{i}", offset) for i, offset in enumerate(offsets)]
    troubled = run(HONEST_DEVICES + bad, lag_ms, upload_speed, actions)
    assert honest_late(troubled) == 0
    assert honest_outputs(troubled) == honest_outputs(straight)


@functools.cache
def live_straight() -> AgentTestContext:
    return run(HONEST_DEVICES, 2 * SECOND_MS, 1, {})


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    worker_ahead_ms=st.integers(-HOUR_MS, HOUR_MS),
    pause=st.tuples(st.integers(0, READINGS - 1), st.integers(IDLE_MS, MAX_PAUSE_MS)),
)
# The worker's clock 9 minutes ahead of the stream's and a 3-minute pause: the idle clock
# counted the quiet time from the last record's arrival on the stream's clock to now on the
# worker's, 12 minutes, and the honest devices' next readings were late.
@example(worker_ahead_ms=9 * MINUTE_MS, pause=(59, 3 * MINUTE_MS))
def test_a_worker_clock_off_from_the_streams_changes_nothing(
    worker_ahead_ms: int, pause: tuple[int, int]
) -> None:
    straight = live_straight()
    batch, pause_ms = pause
    troubled = run(HONEST_DEVICES, 2 * SECOND_MS, 1, {batch: ("pause", pause_ms)}, worker_ahead_ms)
    assert honest_late(troubled) == 0
    assert honest_outputs(troubled) == honest_outputs(straight)


def count(ctx: AgentTestContext, kind: str) -> int:
    return sum(1 for o in ctx.sink.stored.values() if type(o).__name__ == kind)


def test_a_backfill_that_pauses_longer_than_the_idle_timeout_changes_nothing() -> None:
    # Three-hour-old readings uploaded at 20x, with a 75 s pause (idle timeout 60 s).
    straight = run(HONEST_DEVICES, 3 * HOUR_MS, 20, {})
    paused = run(HONEST_DEVICES, 3 * HOUR_MS, 20, {50: ("pause", 75 * SECOND_MS)})
    assert honest_outputs(paused) == honest_outputs(straight)
    assert honest_late(paused) == 0
    # Offline faults only once the stream has ended (the quiet tail), none during the pause.
    last_ms = T0_MS + (READINGS - 1) * STEP_MS
    offline = [o for o in paused.sink.stored.values() if getattr(o, "code", "") == "offline"]
    assert offline and all(getattr(o, "opened_at_ms", 0) > last_ms for o in offline)


def test_an_outage_ending_in_an_empty_read_without_lag_is_not_idleness() -> None:
    straight = run(HONEST_DEVICES, 2 * SECOND_MS, 1, {})
    outage = run(HONEST_DEVICES, 2 * SECOND_MS, 1, {40: ("outage", 10 * MINUTE_MS)})
    assert honest_outputs(outage) == honest_outputs(straight)
    assert honest_late(outage) == 0


def test_one_device_fourteen_minutes_fast_is_refused_and_costs_the_others_nothing() -> None:
    straight = run(HONEST_DEVICES, 2 * SECOND_MS, 1, {})
    fast = Device("site-x", "lamp-fast", 14 * MINUTE_MS)
    troubled = run([*HONEST_DEVICES, fast], 2 * SECOND_MS, 1, {})
    assert honest_outputs(troubled) == honest_outputs(straight)
    assert honest_late(troubled) == 0
    skewed = [d for d in troubled.dead_letters if d.reason.startswith("clock_skew")]
    assert len(skewed) == READINGS
    assert count(straight, "UsageReport") > 0


def live_run(extra: list[tuple[int, str, bytes]]) -> dict[bytes, int]:
    """The honest devices live (2 s from stamp to stream) with `extra` (arrival, partition
    key, data) records among them, read as they arrive; each honest output, with the number
    of honest readings read when it was written."""
    app = build_app(empty_registry(), topic="telemetry", grace_ms=GRACE_MS)
    ctx = AgentTestContext(
        app,
        shard_id=SHARD,
        now_ms=T0_MS,
        config=EngineConfig(checkpoint_interval_ms=5 * SECOND_MS, idle_timeout_ms=IDLE_MS),
    )
    sent = sorted(deliveries(HONEST_DEVICES, 2 * SECOND_MS, 1) + extra)
    records = [Record(SHARD, i + 1, 0, key, data, at) for i, (at, key, data) in enumerate(sent)]
    written: dict[bytes, int] = {}
    honest_read = read = 0
    while read < len(records):
        ready = [r for r in records[read : read + 50] if r.arrival_ms <= ctx.clock.now_ms]
        if not ready:
            ctx.tick(min(records[read].arrival_ms, ctx.clock.now_ms + TICK_MS))
            continue
        ctx.deliver(ready)
        read += len(ready)
        honest_read += sum(1 for r in ready if r.partition_key == "site-1")
        ctx.clock.now_ms += 200
        for output in ctx.sink.written:
            if getattr(output, "site_id", "site-1") == "site-1":
                written.setdefault(msgspec.json.encode(output), honest_read)
    return written


def test_sources_that_went_quiet_stop_holding_the_clock_back() -> None:
    # A gateway of 40 lamps uploads what it buffered half an hour ago (late: dead-lettered)
    # and goes quiet. Their lags were those of the most recently seen sources for as long as
    # no other new source came, and most of them: the shard's clock stayed 20 minutes behind
    # the honest devices for good, and every report and alarm came that much later.
    upload_ms = T0_MS + 20 * MINUTE_MS + 5 * SECOND_MS
    gateway = [
        (
            upload_ms + lamp * 10 + minute,
            "site-y",
            reading(Device("site-y", f"gw-{lamp}", 0), T0_MS + minute * STEP_MS, minute),
        )
        for lamp in range(40)
        for minute in range(10)
    ]
    straight = live_run([])
    troubled = live_run(gateway)
    assert set(troubled) == set(straight)
    # Once their votes have aged out (`tables.lag.HORIZON_MS` after the upload), every honest
    # output is written with the same honest reading as in the straight run.
    settled = (20 * MINUTE_MS + HORIZON_MS) // STEP_MS * len(HONEST) + len(HONEST)
    later = {output: n for output, n in straight.items() if n > settled}
    assert len(later) > 100
    assert {output: troubled[output] for output in later} == later


def drive(sent: list[tuple[int, str, bytes]]) -> AgentTestContext:
    """(arrival, partition key, data) records read as they arrive, then a quiet tail."""
    app = build_app(empty_registry(), topic="telemetry", grace_ms=GRACE_MS)
    ctx = AgentTestContext(
        app,
        shard_id=SHARD,
        now_ms=T0_MS,
        config=EngineConfig(checkpoint_interval_ms=5 * SECOND_MS, idle_timeout_ms=IDLE_MS),
    )
    ordered = sorted(sent)
    records = [Record(SHARD, i + 1, 0, key, data, at) for i, (at, key, data) in enumerate(ordered)]
    read = 0
    while read < len(records):
        ready = [r for r in records[read : read + 50] if r.arrival_ms <= ctx.clock.now_ms]
        if not ready:
            ctx.tick(min(records[read].arrival_ms, ctx.clock.now_ms + TICK_MS))
            continue
        ctx.deliver(ready)
        read += len(ready)
        ctx.clock.now_ms += 200
    end = ctx.clock.now_ms + 2 * HOUR_MS
    while ctx.clock.now_ms < end:
        ctx.tick(ctx.clock.now_ms + 3 * TICK_MS)
    ctx.checkpoint()
    return ctx


OFFLINE_AFTER_MS = 15 * MINUTE_MS  # the registry's default


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fast_ms=st.integers(0, DEFAULT_MAX_SKEW_MS),
    # Silences ending within the lead of the offline time may be judged either way: the
    # lead is the honest delivery spread, what the clock may run ahead of most devices.
    gap_ms=st.one_of(
        st.integers(
            OFFLINE_AFTER_MS - 3 * MINUTE_MS, OFFLINE_AFTER_MS - CLOCK_LEAD_MS - 2 * SECOND_MS
        ),
        st.integers(OFFLINE_AFTER_MS, OFFLINE_AFTER_MS + MINUTE_MS),
    ),
)
# A lamp silent for 14.5 minutes (offline after 15) and a device 118 s fast: the clock ran
# that far ahead of the honest lamps, the sweep found the lamp offline 30 s before its next
# reading, and stored a fault cleared (at that reading) before it opened.
@example(fast_ms=118 * SECOND_MS, gap_ms=14 * MINUTE_MS + 30 * SECOND_MS)
def test_a_device_fast_within_the_allowance_makes_no_other_device_offline(
    fast_ms: int, gap_ms: int
) -> None:
    lamp = HONEST_DEVICES[0]
    sent = [
        (true_ms + 2 * SECOND_MS + index, device.site, data)
        for minute in range(READINGS)
        for index, device in enumerate(HONEST_DEVICES)
        if not (device is lamp and 20 <= minute <= 20 + gap_ms // STEP_MS)
        for true_ms in [T0_MS + minute * STEP_MS]
        for data in [reading(device, true_ms, minute)]
    ]
    back_ms = T0_MS + 19 * STEP_MS + gap_ms  # the lamp's first reading after its silence
    sent.append((back_ms + 2 * SECOND_MS, lamp.site, reading(lamp, back_ms, 20)))
    fast = Device("site-x", "lamp-fast", fast_ms)
    sent_fast = [
        (T0_MS + minute * STEP_MS + 2 * SECOND_MS + 9, fast.site, data)
        for minute in range(READINGS)
        for data in [reading(fast, T0_MS + minute * STEP_MS, minute)]
    ]
    straight = drive(sent)
    troubled = drive(sent + sent_fast)
    assert honest_outputs(troubled) == honest_outputs(straight)
