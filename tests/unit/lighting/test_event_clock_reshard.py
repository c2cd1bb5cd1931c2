"""The event clock through a split and a merge: each child takes its hash range of the parent's
windows, its clock and its sources' lags, and a merge takes both parents'. For any split time
(an hour boundary or not, windows open), a merge 20 minutes later, live or three-hour-old
data, and a device whose clock is fast by what the decoder lets through, the outputs of every
site equal those of a straight run on one shard: nothing lost, nothing counted twice, no
`late` dead letter. The real lighting app, in-process, one engine per shard over one store.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.clock import HOUR_MS, MINUTE_MS, SECOND_MS
from core.records import Record
from lighting.agents import build_app
from lighting.registry import empty_registry
from streams.processor import EngineConfig, Lineage
from streams.testing import AgentTestContext
from tests.unit.lighting.test_event_clock import (
    GRACE_MS,
    HONEST,
    IDLE_MS,
    READINGS,
    STEP_MS,
    T0_MS,
    TICK_MS,
    Device,
    reading,
)

PARENT, LEFT, RIGHT, MERGED = (f"shardId-00000000000{i}" for i in range(4))
SITE_1 = [Device("site-1", asset, 0) for asset in HONEST]
SITE_2 = [Device("site-2", f"m-{asset}", 0) for asset in HONEST]
Sent = list[tuple[int, str, bytes]]


def deliveries(devices: list[Device], lag_ms: int) -> Sent:
    return [
        (T0_MS + minute * STEP_MS + lag_ms + index * 10, device.site, data)
        for minute in range(READINGS)
        for index, device in enumerate(devices)
        for data in [reading(device, T0_MS + minute * STEP_MS, minute)]
    ]


def shard(
    shard_id: str,
    now_ms: int,
    ctx: AgentTestContext | None = None,
    *parents: str,
    keep: Callable[[str], bool] = lambda _pk: True,
) -> AgentTestContext:
    return AgentTestContext(
        build_app(empty_registry(), topic="telemetry", grace_ms=GRACE_MS),
        shard_id=shard_id,
        now_ms=now_ms,
        config=EngineConfig(checkpoint_interval_ms=5 * SECOND_MS, idle_timeout_ms=IDLE_MS),
        store=None if ctx is None else ctx.store,
        lineage=Lineage(parents, keep),
    )


def read(
    shards: list[AgentTestContext], route: Callable[[str], int], sent: Sent, until_ms: int | None
) -> tuple[Sent, int]:
    """Read `sent` (arrival order) as it arrives, each record by the shard `route` names, up
    to `until_ms` of arrival; returns what is left and the processing time reached."""
    now = shards[0].clock.now_ms
    index = 0
    while index < len(sent) and (until_ms is None or sent[index][0] < until_ms):
        if sent[index][0] > now:
            now = min(sent[index][0], now + TICK_MS)
            for ctx in shards:
                ctx.tick(now)
            continue
        batches: dict[int, list[Record]] = {}
        while (
            index < len(sent)
            and sent[index][0] <= now
            and (until_ms is None or sent[index][0] < until_ms)
        ):
            arrival, key, data = sent[index]
            target = shards[route(key)]
            batches.setdefault(route(key), []).append(
                Record(target.shard_id, index + 1, 0, key, data, arrival)
            )
            index += 1
        for number, records in batches.items():
            shards[number].deliver(records)
        now += 200
        for ctx in shards:
            ctx.clock.now_ms = now
    return sent[index:], now


def finish(shards: list[AgentTestContext], now: int) -> None:
    end = now + 2 * HOUR_MS
    while now < end:
        now += 3 * TICK_MS
        for ctx in shards:
            ctx.tick(now)
    for ctx in shards:
        ctx.checkpoint()


def outputs(shards: list[AgentTestContext]) -> set[bytes]:
    return {msgspec.json.encode(o) for ctx in shards for o in ctx.sink.stored.values()}


def late(shards: list[AgentTestContext]) -> int:
    return sum(1 for ctx in shards for d in ctx.dead_letters if d.origin == "late")


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    split_minute=st.integers(5, READINGS - 30),
    lag_ms=st.sampled_from([2 * SECOND_MS, 3 * HOUR_MS]),
    fast_ms=st.integers(0, 2 * MINUTE_MS),
    fast_first=st.booleans(),
)
# Split at an hour boundary during a backfill, the fast device the first the right child
# reads: without the parent's lags it would be the child's only sample, and its clock.
@example(split_minute=60, lag_ms=3 * HOUR_MS, fast_ms=2 * MINUTE_MS, fast_first=True)
def test_a_split_then_a_merge_give_every_site_what_one_shard_gives(
    split_minute: int, lag_ms: int, fast_ms: int, fast_first: bool
) -> None:
    fast = [Device("site-2", "fast", fast_ms + (lag_ms if lag_ms > HOUR_MS else 0))]
    sent = sorted(
        deliveries(SITE_1, lag_ms)
        + deliveries(fast + SITE_2 if fast_first else SITE_2 + fast, lag_ms)
    )
    straight = shard(PARENT, T0_MS)
    rest, now = read([straight], lambda _key: 0, sent, None)
    finish([straight], now)

    parent = shard(PARENT, T0_MS)
    split_ms = T0_MS + lag_ms + split_minute * STEP_MS + 5 * SECOND_MS
    rest, now = read([parent], lambda _key: 0, sent, split_ms)
    parent.engine.shard_ended()
    left = shard(LEFT, now, parent, PARENT, keep=lambda pk: pk == "site-1")
    right = shard(RIGHT, now, parent, PARENT, keep=lambda pk: pk != "site-1")
    children = [left, right]
    rest, now = read(
        children, lambda key: 0 if key == "site-1" else 1, rest, split_ms + 20 * MINUTE_MS
    )
    for child in children:
        child.engine.shard_ended()
    merged = shard(MERGED, now, parent, LEFT, RIGHT)
    rest, now = read([merged], lambda _key: 0, rest, None)
    finish([merged], now)

    resharded = [parent, left, right, merged]
    assert late(resharded) == late([straight]) == 0
    assert outputs(resharded) == outputs([straight])
