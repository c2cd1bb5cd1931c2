"""RegistryCache: reloads outside record processing, keeps its copy when a reload fails, caps
unknown assets."""

from __future__ import annotations

import logging
import random
import threading

import msgspec
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from hypothesis import given
from hypothesis import strategies as st

from core.clock import DAY_MS, HOUR_MS, ManualClock
from core.errors import SourceError
from core.records import DeadLetter, Position, Record
from core.retry import Backoff
from domain.registry import Asset, Registry, SiteDefaults
from domain.rules import Limits
from domain.telemetry import Reading, encode_reading
from lighting.admission import AdmissionError
from lighting.agents import build_app
from lighting.registry import RegistryCache
from sinks.memory import InMemorySink
from streams.testing import AgentTestContext

TS_MS = 1_795_870_800_000


def throttled() -> ClientError:
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "Query")


def lamp(asset_id: str, rated_w: float = 100.0) -> Asset:
    return Asset("s1", "b1", "r1", asset_id, "luminaire", rated_w)


class Loader:
    """Returns the registries it is given in turn; an exception in the list is raised."""

    def __init__(self, *results: Registry | BaseException) -> None:
        self.results = list(results)
        self.calls = 0
        self.called = threading.Event()

    def __call__(self) -> Registry:
        self.calls += 1
        result = self.results[min(self.calls - 1, len(self.results) - 1)]
        if self.calls >= 2:
            self.called.set()
        if isinstance(result, BaseException):
            raise result
        return result


def no_sleep() -> Backoff:
    return Backoff(rng=random.Random(0), sleep=lambda _s: None)


def reading(asset_id: str, ts_ms: int = TS_MS) -> Reading:
    return Reading("s1", "b1", "r1", asset_id, ts_ms, 10.0, 230.0, 0.05, 300.0, True, 80)


def test_a_failed_reload_keeps_the_previous_copy_and_is_logged_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(1_000_000)
    loader = Loader(Registry([lamp("a1", 100.0)]), throttled())
    cache = RegistryCache(loader, 30_000, clock)
    caplog.set_level(logging.WARNING, logger="lighting.registry")
    for _ in range(100):
        clock.now_ms += 30_000
        assert cache.refresh_if_due() in (True, False)
        assert cache.limits("a1", "s1").rated_w == 100.0
    assert cache.refresh_failures == 100
    assert cache.age_ms == 100 * 30_000
    # 100 failures over 50 minutes: one warning a minute at most.
    warnings = [r for r in caplog.records if "registry reload failed" in r.message]
    assert len(warnings) == 50


def test_a_successful_reload_replaces_the_copy_and_resets_the_age() -> None:
    clock = ManualClock(1_000_000)
    loader = Loader(Registry([lamp("a1", 100.0)]), throttled(), Registry([lamp("a1", 60.0)]))
    cache = RegistryCache(loader, 30_000, clock)
    clock.now_ms += 30_000
    assert cache.refresh_if_due() is False
    assert cache.limits("a1", "s1").rated_w == 100.0
    clock.now_ms += 1_000  # the retry pause after one failure is 2 s
    assert cache.refresh_if_due() is True and loader.calls == 2
    clock.now_ms += 1_000
    assert cache.refresh_if_due() is True and loader.calls == 3
    assert cache.limits("a1", "s1").rated_w == 60.0
    assert cache.age_ms == 0


def test_a_connection_error_or_any_exception_on_reload_never_escapes() -> None:
    clock = ManualClock(1_000_000)
    errors: list[BaseException] = [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        KeyError("doc"),
        ValueError("bad json"),
    ]
    cache = RegistryCache(Loader(Registry([lamp("a1")]), *errors), 1_000, clock)
    for _ in errors:
        assert cache.refresh() is False
    assert cache.limits("a1", "s1").rated_w == 100.0


def test_the_first_load_is_retried_and_then_a_source_error() -> None:
    loader = Loader(throttled(), throttled(), Registry([lamp("a1")]))
    cache = RegistryCache(loader, 1_000, ManualClock(1_000_000), backoff=no_sleep())
    assert cache.limits("a1", "s1").rated_w == 100.0
    with pytest.raises(SourceError, match="ThrottlingException"):
        RegistryCache(Loader(throttled()), 1_000, ManualClock(1_000_000), backoff=no_sleep())


def test_the_background_thread_reloads_until_closed() -> None:
    loader = Loader(Registry([lamp("a1", 100.0)]), Registry([lamp("a1", 70.0)]))
    clock = ManualClock(1_000_000)
    cache = RegistryCache(loader, 10, clock, background=True)
    try:
        clock.now_ms += 10
        assert loader.called.wait(timeout=30), "the background thread never reloaded"
    finally:
        cache.close()
    assert cache.limits("a1", "s1").rated_w == 70.0


def test_limits_never_load_even_when_a_reload_is_due() -> None:
    clock = ManualClock(1_000_000)
    loader = Loader(Registry([lamp("a1")]), throttled())
    cache = RegistryCache(loader, 1_000, clock)
    clock.now_ms += 10 * HOUR_MS
    cache.limits("a1", "s1")
    cache.limits("unknown", "s1")
    cache.site_limits("s1")
    cache.asset_count("SITE#s1")
    assert loader.calls == 1


def test_twenty_thousand_one_off_ids_leave_the_unknown_set_at_the_cap() -> None:
    cache = RegistryCache(
        Loader(Registry([lamp("known")])), 1_000, ManualClock(1_000_000), unknown_asset_cap=10
    )
    admitted = rejected = 0
    for n in range(20_000):
        try:
            cache.admit(reading(f"one-off-{n}"))
            admitted += 1
        except AdmissionError as exc:
            assert str(exc) == "unknown_asset"
            rejected += 1
    assert (admitted, rejected) == (10, 19_990)
    assert cache.unknown_asset_count == 10 and cache.refused == {"unknown_asset": 19_990}
    # Known and already tracked assets are always admitted.
    assert cache.admit(reading("known")).asset_id == "known"
    assert cache.admit(reading("one-off-3")).asset_id == "one-off-3"
    for n in range(20_000):
        cache.limits(f"one-off-{n}", "s1")
    assert len(cache._loaded.limits) <= 11


def test_an_unknown_asset_quiet_for_a_day_gives_up_its_place() -> None:
    cache = RegistryCache(Loader(Registry([])), 1_000, ManualClock(1_000_000), unknown_asset_cap=2)
    cache.admit(reading("a", TS_MS))
    cache.admit(reading("b", TS_MS))
    with pytest.raises(AdmissionError):
        cache.admit(reading("c", TS_MS + DAY_MS - 1))
    cache.admit(reading("b", TS_MS + HOUR_MS))  # b is seen again: a is the oldest
    assert cache.admit(reading("c", TS_MS + DAY_MS)).asset_id == "c"
    with pytest.raises(AdmissionError):
        cache.admit(reading("a", TS_MS + DAY_MS))


def test_the_decoder_dead_letters_unknown_assets_beyond_the_cap() -> None:
    cache = RegistryCache(Loader(Registry([])), 1_000, ManualClock(1_000_000), unknown_asset_cap=1)
    decode = build_app(cache, topic="t", grace_ms=60_000).decoder
    assert decode(encode_reading(reading("a")), TS_MS).asset_id == "a"
    with pytest.raises(ValueError, match=r"^unknown_asset$"):
        decode(encode_reading(reading("b")), TS_MS)


def test_a_quiet_shard_ticks_and_processes_while_every_reload_fails() -> None:
    clock = ManualClock(1_000_000)
    clock.now_ms = TS_MS
    loader = Loader(Registry([lamp("a1")], [SiteDefaults("s1", demand_threshold_w=1.0)]))
    cache = RegistryCache(loader, 1_000, clock, unknown_asset_cap=1)
    loader.results.append(throttled())
    app = build_app(cache, topic="t", grace_ms=60_000)
    dead = InMemorySink(key=lambda letter: letter.sequence_number)  # type: ignore[attr-defined]
    ctx = AgentTestContext(app, shard_id="shard-0", clock=clock, dead_letter=dead)
    engine, checkpoints = ctx.engine, ctx.checkpointer
    records = [
        # Readings two hours apart, as the clock moves: none is late for its windows.
        Record(
            "shard-0",
            n,
            0,
            "s1",
            encode_reading(reading(asset, TS_MS + n * 2 * HOUR_MS)),
            TS_MS + n * 2 * HOUR_MS,
        )
        for n, asset in enumerate(["a1", "u1", "u2", "a1"], start=1)
    ]
    for record in records:
        clock.now_ms += 2 * HOUR_MS
        cache.refresh_if_due()
        engine.process_records([record])
        engine.process_records([], millis_behind_latest=0)
    engine.checkpoint.commit()
    assert cache.refresh_failures >= 3
    letters = [letter for letter in dead.values() if isinstance(letter, DeadLetter)]
    assert [(letter.sequence_number, letter.reason) for letter in letters] == [(3, "unknown_asset")]
    assert checkpoints.positions["shard-0"] == Position(4)


@given(
    st.lists(
        st.tuples(st.sampled_from(["a1", "a2", "a3", "u1", "u2"]), st.sampled_from(["s1", "s2"])),
        min_size=1,
        max_size=30,
    )
)
def test_limits_are_those_of_the_registry_and_one_object_per_distinct_value(
    asks: list[tuple[str, str]],
) -> None:
    registry = Registry(
        [lamp("a1", 100.0), lamp("a2", 100.0), lamp("a3", -0.0)],
        [SiteDefaults("s1"), SiteDefaults("s2", default_rated_w=0.0)],
    )
    cache = RegistryCache(lambda: registry, 2**62, lambda: 0, unknown_asset_cap=None)
    by_value: dict[bytes, Limits] = {}
    first_site: dict[str, str] = {}
    for asset_id, site_id in asks:
        got = cache.limits(asset_id, site_id)
        # Cached per asset: an unknown asset keeps the limits of the site it was first seen in.
        expected = registry.limits(asset_id, first_site.setdefault(asset_id, site_id))
        assert msgspec.msgpack.encode(got) == msgspec.msgpack.encode(expected)
        # Equal limits are one object; limits that differ only in a zero's sign are not merged.
        assert by_value.setdefault(msgspec.msgpack.encode(got), got) is got
