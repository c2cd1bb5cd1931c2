"""The KCL runner's state saves are fenced by the lease, like the local runner's: a former
owner that stalled mid-checkpoint cannot land its late save over the new owner's state.

Two `DaemonBridge`s (the code each `luxflow kcl-processor` runs) share one real lease table
and one real state store on DynamoDB (moto server); the test plays both daemons, message by
message, and moves the lease between them as a daemon's lease taker would.
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from core.clock import ManualClock
from core.records import TRIM_HORIZON
from core.retry import Backoff
from lighting.aws.credentials import StaticCredentials
from lighting.aws.http import ConnectionPool
from lighting.aws.jsonclient import DYNAMODB, JsonClient
from lighting.aws.sigv4 import Credentials
from sinks.memory import InMemorySink
from streams.app import App
from streams.engine import ShardEngine
from streams.kcl.bridge import DaemonBridge, DaemonChannel, LeaseHolder
from streams.kcl.protocol import Initialize, decode_message
from streams.kinesis.leases import LeaseTable
from streams.processor import Checkpointer, EngineConfig
from streams.stream import Stream
from tables.dynamodb import DynamoDBStateStore, ensure_table

pytestmark = [pytest.mark.integration, pytest.mark.kcl]

SHARD = "shardId-000000000000"
KEY = "site-1"


class DaemonSide:
    """Our stdin (the daemon's messages and answers, queued by the test) and stdout."""

    def __init__(self) -> None:
        self.lines: deque[bytes] = deque()
        self.sent: list[bytes] = []

    def readline(self) -> bytes:
        return self.lines.popleft() if self.lines else b""

    def write(self, line: bytes) -> int:
        self.sent.append(line)
        return len(line)

    def flush(self) -> None:
        pass

    def requests(self) -> list[bytes]:
        return [line for line in self.sent if b'"action":"checkpoint"' in line]


def counting_app() -> App:
    app = App("fence")
    counts = app.Table("counts", default=int, value_type=int)
    topic = app.topic("t", decoder=lambda data, _arrival: data.decode())

    @app.agent(topic)
    async def count(stream: Stream[str]) -> AsyncIterator[tuple[str, int]]:
        async for value in stream:
            counts[value] += 1
            yield (value, counts[value])

    return app


def records(first: int, last: int) -> bytes:
    data = base64.b64encode(KEY.encode()).decode()
    body = ",".join(
        f'{{"data":"{data}","partitionKey":"{KEY}","sequenceNumber":"{n}",'
        '"approximateArrivalTimestamp":1000,"subSequenceNumber":0,"action":"record"}'
        for n in range(first, last + 1)
    )
    return b'{"action":"processRecords","records":[' + body.encode() + b'],"millisBehindLatest":0}'


def answer(seq: int) -> bytes:
    return (
        b'{"action":"checkpoint","sequenceNumber":"%d","subSequenceNumber":0,"error":null}\n' % seq
    )


class Owner:
    """One worker: its daemon side, its clock, the bridge and the engine it builds."""

    def __init__(
        self, name: str, app: App, store: DynamoDBStateStore, holder: LeaseHolder | None
    ) -> None:
        self.daemon = DaemonSide()
        self.clock = ManualClock(0)
        self.sink = InMemorySink()
        self.engine: ShardEngine | None = None

        def factory(shard_id: str, checkpointer: Checkpointer) -> ShardEngine:
            self.engine = ShardEngine(
                app,
                shard_id,
                sinks=[self.sink],
                dead_letter=InMemorySink(),
                state_store=store,
                checkpointer=checkpointer,
                config=EngineConfig(checkpoint_interval_ms=1_000, idle_timeout_ms=10**9),
                now_ms=self.clock,
            )
            return self.engine

        channel = DaemonChannel(self.daemon, self.daemon)  # type: ignore[arg-type]
        self.bridge = DaemonBridge(factory, channel, backoff_none(), holder=holder)
        self.name = name
        self.bridge.handle(Initialize(shard_id=SHARD, sequence_number=TRIM_HORIZON))

    def deliver(self, first: int, last: int, *, at_ms: int) -> None:
        """The daemon hands records `first..last`; a checkpoint (if one is due) is answered."""
        self.clock.now_ms = at_ms
        self.daemon.lines.append(answer(last))
        self.bridge.handle(decode_message(records(first, last)))  # type: ignore[arg-type]
        self.daemon.lines.clear()

    def tick(self, *, at_ms: int, last: int) -> None:
        self.clock.now_ms = at_ms
        self.daemon.lines.append(answer(last))
        empty = b'{"action":"processRecords","records":[],"millisBehindLatest":0}'
        self.bridge.handle(decode_message(empty))  # type: ignore[arg-type]
        self.daemon.lines.clear()


def backoff_none() -> Backoff:
    return Backoff(base_ms=1, cap_ms=1, max_attempts=2)


@pytest.fixture(params=["botocore", "light"])
def state_dynamodb(
    request: pytest.FixtureRequest, aws: Callable[[str], Any], moto_endpoint: str
) -> Any:
    """The state store's client: botocore's, or the light client a `luxflow kcl-processor`
    saves its state with (`lighting.aws`)."""
    if request.param == "botocore":
        return aws("dynamodb")
    return JsonClient(
        DYNAMODB,
        region="us-east-1",
        credentials=StaticCredentials(Credentials("testing", "testing")),
        pool=ConnectionPool(),
        endpoint_url=moto_endpoint,
    )


def handover(
    aws: Callable[[str], Any],
    unique_name: Callable[[str], str],
    state_dynamodb: Any,
    *,
    fenced: bool,
) -> tuple[Owner, Owner, DynamoDBStateStore]:
    """A holds the lease and checkpoints at 10, then handles 11..20 without a checkpoint
    (stalled); the lease moves to B, which resumes at 10 and saves at 15; A's stalled
    checkpoint runs (a save at 20); B goes on: 16..18, then 19..30."""
    dynamodb = aws("dynamodb")
    leases = LeaseTable(dynamodb, unique_name("leases"))
    leases.ensure_table()
    leases.create_if_missing(SHARD, (), (0, 2**128 - 1), TRIM_HORIZON)
    leases.take(leases.list()[SHARD], "worker-a")
    state_table = unique_name("state")
    ensure_table(dynamodb, state_table)
    store = DynamoDBStateStore(state_dynamodb, state_table)
    app = counting_app()

    def holder(owner: str) -> LeaseHolder | None:
        return LeaseHolder(leases.table_name, owner) if fenced else None

    a = Owner("a", app, store, holder("worker-a"))
    a.deliver(1, 10, at_ms=1_000)  # due: checkpoint at 10
    a.deliver(11, 20, at_ms=1_500)  # not due: A stalls before its checkpoint
    leases.take(leases.list()[SHARD], "worker-b")
    b = Owner("b", app, store, holder("worker-b"))
    b.deliver(11, 15, at_ms=1_000)  # B resumed after A's checkpoint at 10; saves at 15
    a.tick(at_ms=3_000, last=20)  # A wakes up: its checkpoint (save at 20) runs now
    b.deliver(16, 18, at_ms=2_000)  # B's next save, at 18
    if b.bridge.processor is not None:
        b.deliver(19, 30, at_ms=3_000)
        b.tick(at_ms=4_000, last=30)
    return a, b, store


def test_a_stalled_former_owner_cannot_save_over_the_new_owner_and_nothing_is_lost(
    aws: Callable[[str], Any], unique_name: Callable[[str], str], state_dynamodb: Any
) -> None:
    a, b, store = handover(aws, unique_name, state_dynamodb, fenced=True)
    # A's late save was refused: A dropped the shard and asked its daemon for nothing more.
    assert a.bridge.processor is None
    assert a.daemon.requests() == [
        b'{"action":"checkpoint","sequenceNumber":"10","subSequenceNumber":0}\n'
    ]
    # B went on: every record counted once, the state saved at 30.
    assert b.bridge.processor is not None
    stored = store.load(SHARD)
    assert stored is not None and stored.position is not None
    assert stored.position.sequence_number == 30
    assert b.engine is not None
    b.engine.state.activate()
    counts = next(t for t in b.engine.app.tables if t.name == "counts")
    assert counts[KEY] == 30
    outputs = set(a.sink.stored.values()) | set(b.sink.stored.values())
    assert outputs == {(KEY, n) for n in range(1, 31)}


def test_without_the_fence_the_late_save_lands_and_stalls_the_new_owner(
    aws: Callable[[str], Any], unique_name: Callable[[str], str], state_dynamodb: Any
) -> None:
    # The negative control: the same interleaving without the lease fence (the bridge before
    # it had one) stores A's save at 20 over B's state, and B's save at 18 is refused.
    _, b, store = handover(aws, unique_name, state_dynamodb, fenced=False)
    stored = store.load(SHARD)
    assert stored is not None and stored.position is not None
    assert stored.position.sequence_number == 20
    assert b.bridge.processor is None
