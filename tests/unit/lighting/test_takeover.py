"""The takeover rebase with no AWS call on the record path (lighting.episodes,
lighting.takeover): stored episodes are looked up in the background, outputs that wait for
theirs are held (never dropped, never written un-rebased), then written rebased, or
dead-lettered with a reason after the hold bound."""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Any

import msgspec
import pytest
from botocore.exceptions import ClientError

from core.clock import MINUTE_MS, ManualClock
from core.errors import SinkError
from core.records import TRIM_HORIZON, Position, Record
from domain import views
from domain.events import EnergySpike, Fault
from domain.telemetry import Reading, encode_reading
from lighting.agents import build_app
from lighting.episodes import EpisodeQuery, StoredEpisodes
from lighting.regions import HomeGate, SiteHome
from lighting.registry import empty_registry
from lighting.takeover import TAKEOVER_LOOKUP_UNAVAILABLE, HeldOutputs, Takeover
from sinks.memory import InMemorySink
from streams.engine import ShardEngine
from streams.processor import EngineConfig
from streams.testing import RecordingCheckpointer
from tables.store import InMemoryStateStore

TS_MS = 1_795_870_800_000
HOLD_MS = 10 * MINUTE_MS
TAKEN = "s-taken"  # taken over from a lost region: epoch 2
HERE = "s-here"  # always homed here


def throttled() -> ClientError:
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "Query")


class Store:
    """The command table as the fake query sees it: items by partition; `fail` makes the
    next queries raise; `calls` counts them, `threads` names their callers."""

    def __init__(self, items: dict[str, list[dict[str, object]]] | None = None) -> None:
        self.items = items or {}
        self.fail = 0
        self.calls = 0
        self.threads: set[str] = set()

    def __call__(self, query: EpisodeQuery) -> list[dict[str, object]]:
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        if self.fail:
            self.fail -= 1
            raise throttled()
        return [
            item
            for item in self.items.get(query.pk, [])
            if query.low <= str(item["sk"]) <= query.high
        ]


# -- StoredEpisodes ----------------------------------------------------------------------------

QUERY = EpisodeQuery("BLDG#s#b", "FAULT#0", "FAULT#9")


def test_a_lookup_is_answered_from_memory_once_the_background_ran_it() -> None:
    store = Store({"BLDG#s#b": [{"sk": "FAULT#1", "code": "E1"}]})
    episodes = StoredEpisodes(store, ManualClock(0), refresh_ms=60_000)
    assert episodes.get(QUERY) is None  # not answered: queued, no call made
    assert episodes.get(QUERY) is None
    assert (store.calls, episodes.queued) == (0, 1)
    assert episodes.answer_pending() is True
    assert [episodes.get(QUERY) for _ in range(100)] == [[{"sk": "FAULT#1", "code": "E1"}]] * 100
    assert store.calls == 1


def test_a_failed_lookup_stays_queued_and_is_counted() -> None:
    store = Store()
    store.fail = 2
    episodes = StoredEpisodes(store, ManualClock(0), refresh_ms=60_000)
    episodes.get(QUERY)
    assert episodes.answer_pending() is False
    assert episodes.answer_pending() is False
    assert (episodes.failures, episodes.queued, episodes.get(QUERY)) == (2, 1, None)
    assert episodes.answer_pending() is True
    assert episodes.get(QUERY) == []


def test_an_old_answer_is_served_and_refreshed_in_the_background() -> None:
    store = Store({"BLDG#s#b": []})
    clock = ManualClock(0)
    episodes = StoredEpisodes(store, clock, refresh_ms=1_000)
    episodes.get(QUERY)
    episodes.answer_pending()
    store.items["BLDG#s#b"] = [{"sk": "FAULT#2"}]  # replicated late
    clock.now_ms = 1_000
    assert episodes.get(QUERY) == []  # served as held, and queued again
    assert episodes.queued == 1
    episodes.answer_pending()
    assert episodes.get(QUERY) == [{"sk": "FAULT#2"}]


def test_at_most_max_answers_are_kept() -> None:
    store = Store()
    episodes = StoredEpisodes(store, ManualClock(0), refresh_ms=60_000, max_answers=2)
    queries = [EpisodeQuery(f"p{n}", "a", "z") for n in range(3)]
    for query in queries:
        episodes.get(query)
    episodes.answer_pending()
    assert episodes.get(queries[0]) is None  # the least recently used went first
    assert episodes.get(queries[2]) == []


def test_the_background_thread_answers_on_its_own_thread() -> None:
    store = Store()
    episodes = StoredEpisodes(store, ManualClock(0), refresh_ms=60_000, background=True)
    try:
        episodes.get(QUERY)
        answered = threading.Event()
        for _ in range(600):  # a safety stop, not a timing assertion
            if episodes.get(QUERY) is not None:
                answered.set()
                break
            threading.Event().wait(0.05)
        assert answered.is_set()
        assert store.threads == {"lookup stored episodes"}
    finally:
        episodes.close()


# -- the rebase and the hold --------------------------------------------------------------------


def fault(opened_ms: int, cleared_ms: int | None = None, site: str = TAKEN) -> Fault:
    return Fault(
        site,
        "b1",
        "r1",
        "lamp-1",
        "E42",
        opened_ms,
        "cleared" if cleared_ms is not None else "open",
        cleared_ms,
    )


def spike(started_ms: int, site: str = TAKEN) -> EnergySpike:
    return EnergySpike(
        site, "b1", "r1", "lamp-1", started_ms, started_ms + 5 * MINUTE_MS, 90.0, 75.0, 1.0,
        "power_above_threshold",
    )  # fmt: skip


def stored_fault(opened_ms: int) -> dict[str, object]:
    """An open fault item as the lost region stored it."""
    item = views.command_writes(fault(opened_ms))[0].item
    return dict(item)


def gate(episodes: StoredEpisodes) -> HomeGate:
    homes = {
        TAKEN: SiteHome(TAKEN, "here", 2, "lost", TS_MS),
        HERE: SiteHome(HERE, "here"),
    }
    return HomeGate(lambda: homes, "here", 60_000, lambda: 0, episodes=episodes)


class Shard:
    """The stores and hold of one shard, as `lighting.wiring.shard_sinks` wires them, over
    in-memory stores and a fake command table."""

    def __init__(self, store: Store) -> None:
        self.clock = ManualClock(TS_MS)
        self.episodes = StoredEpisodes(store, self.clock, refresh_ms=60_000)
        self.letters: list[tuple[str, Any, str]] = []
        self.hold = HeldOutputs(
            Takeover(gate(self.episodes), self.episodes),
            hold_ms=HOLD_MS,
            now_ms=self.clock,
            dead_letter=lambda store, output, reason: self.letters.append((store, output, reason)),
        )
        key = _item_key
        self.command = InMemorySink(self.hold.select("dynamodb", views.command_writes), key)
        self.query = InMemorySink(self.hold.select("timestream", views.time_points), repr)
        self.hold.attach("dynamodb", self.command)
        self.hold.attach("timestream", self.query)
        self.sinks = [self.command, self.query, self.hold]

    def write(self, *outputs: object) -> None:
        for sink in self.sinks:
            for output in outputs:
                sink.write(output)

    def flush(self) -> None:
        for sink in self.sinks:
            sink.flush()

    def faults(self) -> dict[Hashable, Any]:
        return {k: v for k, v in self.command.stored.items() if "FAULT" in str(k)}


def _item_key(write: object) -> Hashable:
    item = write.item  # type: ignore[attr-defined]
    return (item["pk"], item["sk"])


def test_a_fault_waits_for_its_lookup_then_keeps_the_stored_episodes_identity() -> None:
    old_ms = TS_MS - 30 * MINUTE_MS
    store = Store({f"BLDG#{TAKEN}#b1": [stored_fault(old_ms)]})
    shard = Shard(store)
    redetected = fault(TS_MS)
    elsewhere = fault(TS_MS, site=HERE)
    shard.write(redetected, elsewhere)
    with pytest.raises(SinkError, match="wait for their stored episodes"):
        shard.flush()
    # The other site's fault is written all the same; the held one nowhere, in no store.
    assert [v.item["site_id"] for v in shard.faults().values()] == [HERE]
    assert shard.hold.held == 2  # one per store
    assert store.calls == 0  # nothing on the record path asked DynamoDB

    shard.episodes.answer_pending()  # the background thread's turn
    shard.flush()
    stored = {v.item["site_id"]: v.item["opened_at_ms"] for v in shard.faults().values()}
    assert stored == {HERE: TS_MS, TAKEN: old_ms}
    points = sorted(p.measures["opened_at_ms"] for p in shard.query.values())  # type: ignore[attr-defined]
    assert points == [old_ms, TS_MS]
    assert shard.letters == []


def test_a_sites_faults_reach_the_stores_in_their_order() -> None:
    first = fault(TS_MS)
    second = msgspec.structs.replace(fault(TS_MS + MINUTE_MS), building_id="b2", asset_id="lamp-2")
    shard = Shard(Store())
    # The second fault's lookup is answered before the first one's is even asked...
    shard.hold.select("dynamodb", views.command_writes)(second)
    shard.hold.discard()
    shard.episodes.answer_pending()
    shard.write(first, second)
    with pytest.raises(SinkError):
        shard.flush()
    # ...yet it waits behind the first: a site's episodes are stored in the order they came.
    assert shard.faults() == {} and shard.hold.held == 4
    shard.episodes.answer_pending()
    shard.flush()
    assert [v.item["asset_id"] for v in shard.faults().values()] == ["lamp-1", "lamp-2"]
    assert shard.hold.held == 0


def test_a_partial_redetection_of_a_stored_spike_is_dropped_once_answered() -> None:
    stored = dict(views.command_writes(spike(TS_MS - 3 * MINUTE_MS))[0].item)
    shard = Shard(Store({f"SPIKE#{TAKEN}": [stored]}))
    shard.write(spike(TS_MS))
    shard.episodes.answer_pending()
    shard.flush()
    assert (shard.command.stored, shard.query.stored, shard.letters) == ({}, {}, [])


def test_a_spike_the_lost_region_left_open_is_closed_by_the_redetection() -> None:
    left_open = msgspec.structs.replace(
        spike(TS_MS - 3 * MINUTE_MS), status="open", ended_at_ms=None
    )
    stored = dict(views.command_writes(left_open)[0].item)
    shard = Shard(Store({f"SPIKE#{TAKEN}": [stored]}))
    shard.write(spike(TS_MS))
    shard.episodes.answer_pending()
    shard.flush()
    (write,) = shard.command.stored.values()
    item = write.item  # type: ignore[attr-defined]
    assert (item["event_id"], item["status"]) == (left_open.event_id, "closed")
    assert item["started_at_ms"] == TS_MS - 3 * MINUTE_MS


def test_an_output_waiting_past_the_hold_bound_is_dead_lettered_per_store() -> None:
    store = Store()
    store.fail = 1_000  # DynamoDB reads keep failing
    shard = Shard(store)
    shard.write(fault(TS_MS))
    for _ in range(3):
        shard.episodes.answer_pending()
        with pytest.raises(SinkError):
            shard.flush()
    shard.clock.now_ms += HOLD_MS
    shard.flush()  # no longer held: the checkpoint may pass it
    assert [(s, o, r) for s, o, r in shard.letters] == [
        ("dynamodb", fault(TS_MS), TAKEOVER_LOOKUP_UNAVAILABLE),
        ("timestream", fault(TS_MS), TAKEOVER_LOOKUP_UNAVAILABLE),
    ]
    assert shard.faults() == {} and shard.hold.held == 0


def test_a_lost_lease_discards_what_is_held() -> None:
    shard = Shard(Store())
    shard.write(fault(TS_MS))
    for sink in shard.sinks:
        sink.discard()
    shard.flush()
    assert shard.faults() == {} and shard.letters == []


# -- in the engine: the shard goes on reading, the checkpoint waits ------------------------------


def reading(ts_ms: int, fault_code: str | None) -> Reading:
    return Reading(
        TAKEN, "b1", "r1", "lamp-1", ts_ms, 40.0, 230.0, 0.17, 300.0, True, 80, fault_code
    )


def test_the_engine_processes_while_a_lookup_waits_and_checkpoints_once_it_is_answered() -> None:
    store = Store()
    shard = Shard(store)
    checkpoints = RecordingCheckpointer()
    engine = ShardEngine(
        build_app(empty_registry(), topic="t", grace_ms=10 * MINUTE_MS),
        "shard-0",
        sinks=shard.sinks,
        dead_letter=InMemorySink(key=repr),
        state_store=InMemoryStateStore(),
        checkpointer=checkpoints,
        config=EngineConfig(checkpoint_interval_ms=1_000, retry_base_ms=1, retry_cap_ms=1),
        now_ms=shard.clock,
    )
    engine.initialize(TRIM_HORIZON)
    codes = [None, "E42", "E42", None, None]
    records = [
        Record(
            "shard-0",
            n,
            0,
            TAKEN,
            encode_reading(reading(TS_MS + n * MINUTE_MS, code)),
            TS_MS + n * MINUTE_MS,  # arrival: the device's clock is right
        )
        for n, code in enumerate(codes, start=1)
    ]
    engine.process_records(records[:3])
    assert engine.checkpoint.try_commit() is False  # the fault waits for its lookup
    engine.process_records(records[3:])  # the shard goes on meanwhile
    assert engine.counters.records == 5
    shard.clock.now_ms += 2
    assert engine.checkpoint.try_commit() is False
    assert store.calls == 0 and "shard-0" not in checkpoints.positions

    shard.episodes.answer_pending()
    shard.clock.now_ms += 2
    assert engine.checkpoint.try_commit() is True
    assert checkpoints.positions["shard-0"] == Position(5)
    (item,) = (v.item for v in shard.faults().values())
    assert (item["code"], item["opened_at_ms"], item["status"]) == (
        "E42",
        TS_MS + 2 * MINUTE_MS,
        "cleared",
    )
