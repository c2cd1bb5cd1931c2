"""The command sink's conditional puts, several in flight at once, against a moto server over
HTTP, with throttling, 5xx answers, dropped connections and lost answers injected by
tests.support.faulty: each put retried only once it failed, the stored items exact, alarms
stored before the current states of their flush."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from core.errors import SinkError
from core.retry import Backoff
from domain import views
from domain.events import AssetState, Fault
from sinks.dynamodb import DynamoDBSink
from sinks.provision import ensure_command_table
from tests.integration.test_sinks_dynamodb import scan
from tests.support.faulty import FaultyClient

pytestmark = pytest.mark.integration

Key = tuple[str, str]


class Attempts:
    """Forwards to `client`, noting how every PutItem ended, in the order they ended:
    (key, "ok" | "stale" | the error's code or type)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.log: list[tuple[Key, str]] = []

    def put_item(self, **kwargs: Any) -> Any:
        key = (kwargs["Item"]["pk"]["S"], kwargs["Item"]["sk"]["S"])
        try:
            answer = self._client.put_item(**kwargs)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            self._note(key, "stale" if code == "ConditionalCheckFailedException" else code)
            raise
        except Exception as exc:
            self._note(key, type(exc).__name__)
            raise
        self._note(key, "ok")
        return answer

    def _note(self, key: Key, outcome: str) -> None:
        with self._lock:
            self.log.append((key, outcome))

    def by_key(self) -> dict[Key, list[str]]:
        outcomes: dict[Key, list[str]] = defaultdict(list)
        for key, outcome in self.log:
            outcomes[key].append(outcome)
        return outcomes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def no_sleep(attempts: int = 10) -> Backoff:
    return Backoff(max_attempts=attempts, rng=random.Random(0), sleep=lambda _s: None)


def asset_state(asset: str, ts_ms: int, power_w: float) -> AssetState:
    return AssetState("s1", "b1", "r1", asset, ts_ms, power_w, True, 60)


def sink(client: Any, table: str, backoff: Backoff, concurrency: int) -> DynamoDBSink:
    return DynamoDBSink(
        client,
        table,
        views.command_writes,
        backoff,
        coalesce=views.current_state_key,
        put_concurrency=concurrency,
    )


def fleet(assets: int, faults: int) -> list[object]:
    """Two states of every asset (the newer wins), a few older ones, and `faults` faults in
    the middle, as a cold start's first batches make them."""
    rng = random.Random(7)
    outputs: list[object] = []
    for n in range(assets):
        outputs.append(asset_state(f"a{n:03d}", 1_000 + n, rng.random() * 60))
        outputs.append(asset_state(f"a{n:03d}", 2_000 + n, rng.random() * 60))
    outputs += [asset_state(f"a{n:03d}", 500, 1.0) for n in range(0, assets, 9)]
    outputs[assets:assets] = [
        Fault("s1", "b1", "r1", f"a{n:03d}", "E42", 1_500 + n) for n in range(faults)
    ]
    return outputs


def reference(ddb: Any, table: str, outputs: list[object]) -> dict[Key, dict[str, object]]:
    """What one put after another, without faults, stores."""
    ensure_command_table(ddb, table)
    plain = sink(ddb, table, no_sleep(), concurrency=1)
    for output in outputs:
        plain.write(output)
    plain.flush()
    return scan(ddb, table)


def test_concurrent_puts_under_injected_faults_store_exactly_and_retry_only_what_failed(
    aws: Callable[[str], Any], unique_name: Callable[[str], str]
) -> None:
    ddb = aws("dynamodb")
    outputs = fleet(assets=120, faults=6)
    expected = reference(ddb, unique_name("ref"), outputs)
    table = unique_name("cmd")
    ensure_command_table(ddb, table)
    faulty = (
        FaultyClient(ddb)
        .burst("throttle", every=7, length=2, operations=["put_item"])
        .burst("timeout", every=5, length=1, operations=["put_item"])
        .burst("reset", every=11, length=1, operations=["put_item"])
        .burst("5xx", every=13, length=1, operations=["put_item"])
    )
    attempts = Attempts(faulty)
    concurrent = sink(attempts, table, no_sleep(), concurrency=8)
    for output in outputs:
        concurrent.write(output)
    concurrent.flush()

    assert scan(ddb, table) == expected
    assert concurrent.buffered == 0
    outcomes = attempts.by_key()
    assert set(outcomes) == set(expected)
    failed_calls = 0
    for key, ended in outcomes.items():
        # Sent again only after a failure, and never after it was stored.
        assert ended[-1] in ("ok", "stale"), (key, ended)
        assert all(outcome not in ("ok", "stale") for outcome in ended[:-1]), (key, ended)
        # Stale only where an earlier answer was lost after the put took effect.
        if ended[-1] == "stale":
            assert "ReadTimeoutError" in ended[:-1], (key, ended)
        failed_calls += len(ended) - 1
    # Every fault injected failed a call, but a lost answer of a put already applied ends as
    # "stale" (the stored item is the same), so it may end the put.
    assert 0 < failed_calls <= faulty.faulted["put_item"]
    assert len(faulty.faulted_threads["put_item"]) > 1  # the faults met several puts in flight
    counters = concurrent.counters
    assert counters.items_written + counters.stale_skipped == len(expected)
    assert counters.retries == failed_calls and counters.calls == len(attempts.log)
    # Alarms first: every fault's put ended before any current state's was sent.
    kinds = [key[1].startswith("FAULT#") for key, _ in attempts.log]
    assert kinds == sorted(kinds, reverse=True)


def test_a_partly_failed_flush_keeps_only_the_failed_puts_and_resends_only_those(
    aws: Callable[[str], Any], unique_name: Callable[[str], str]
) -> None:
    ddb = aws("dynamodb")
    outputs = fleet(assets=40, faults=0)
    expected = reference(ddb, unique_name("ref"), outputs)
    table = unique_name("cmd")
    ensure_command_table(ddb, table)
    failing = {f"ASSET#a{n:03d}" for n in (3, 17, 18, 31)}
    now = [0.0]
    faulty = FaultyClient(ddb).outage(
        "put_item",
        "5xx",
        60.0,
        monotonic=lambda: now[0],
        when=lambda request: request["Item"]["pk"]["S"] in failing,
    )
    attempts = Attempts(faulty)
    concurrent = sink(attempts, table, no_sleep(attempts=3), concurrency=8)
    for output in outputs:
        concurrent.write(output)

    with pytest.raises(SinkError, match="ServiceUnavailable"):
        concurrent.flush()
    assert concurrent.buffered == len(failing)
    stored = scan(ddb, table)
    assert stored == {key: item for key, item in expected.items() if key[0] not in failing}
    first = attempts.by_key()
    assert all(first[key] == ["ServiceUnavailable"] * 3 for key in expected if key[0] in failing)
    assert all(first[key] == ["ok"] for key in expected if key[0] not in failing)

    now[0] = 61.0  # the store recovered
    attempts.log.clear()
    concurrent.flush()
    assert attempts.by_key() == {key: ["ok"] for key in expected if key[0] in failing}
    assert scan(ddb, table) == expected
    assert concurrent.buffered == 0


def test_a_crash_after_a_partly_failed_flush_then_the_replay_stores_exactly_the_straight_run(
    aws: Callable[[str], Any], unique_name: Callable[[str], str]
) -> None:
    ddb = aws("dynamodb")
    outputs = fleet(assets=40, faults=4)
    expected = reference(ddb, unique_name("ref"), outputs)
    table = unique_name("cmd")
    ensure_command_table(ddb, table)
    failing = {f"ASSET#a{n:03d}" for n in (5, 6, 29)}
    faulty = FaultyClient(ddb).outage(
        "put_item", "reset", 60.0, when=lambda request: request["Item"]["pk"]["S"] in failing
    )
    crashed = sink(faulty, table, no_sleep(attempts=2), concurrency=8)
    for output in outputs:
        crashed.write(output)
    with pytest.raises(SinkError):
        crashed.flush()
    crashed.discard()  # the worker died: its buffers are gone, its checkpoint not written

    # The new owner replays the same records from the last checkpoint, on a healthy store.
    replay = sink(ddb, table, no_sleep(), concurrency=8)
    for output in outputs:
        replay.write(output)
    replay.flush()
    assert scan(ddb, table) == expected
    assert replay.counters.items_written == len(failing)  # the rest was stored: stale now
    assert replay.counters.stale_skipped == len(expected) - len(failing)
