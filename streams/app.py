"""`App`: the topology of a luxflow application, declared the way Faust users expect.

    app = App("lighting")
    telemetry = app.topic("telemetry", decoder=decode_reading)
    usage = app.Table("usage", default=float, value_type=float)

    @app.agent(telemetry)
    async def detect(stream):
        async for reading in stream:
            yield from_reading(reading)

The App holds no connections and no sinks: a runner builds one `ShardEngine` per shard from
it, with the sinks, state store and checkpointer of that deployment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from core.errors import ConfigError
from streams.agent import Agent, AgentFun
from tables.partition import GraceBoost
from tables.table import Table

T = TypeVar("T")
V = TypeVar("V")

AdvanceCallback = Callable[[int], Iterable[object]]
"""Called with the shard's event clock (ms) after each batch and tick; returns outputs."""

Decoder = Callable[[bytes, int], T]
"""Turns a record's bytes (and its arrival time in ms) into a value, or raises ValueError
with a short reason; the engine then sends the record to the dead-letter output."""


class Topic(Generic[T]):
    """The input stream of the app, with the decoder for its records."""

    def __init__(
        self,
        name: str,
        decoder: Decoder[T],
        event_time: Callable[[T], int] | None = None,
        max_lead_ms: int = 0,
        source: Callable[[T], str] | None = None,
    ) -> None:
        self.name = name
        self.decoder = decoder
        self.event_time = event_time
        self.max_lead_ms = max_lead_ms
        self.source = source


class App:
    """Agents and tables of one application. Build it once; run it with a runner."""

    def __init__(self, name: str) -> None:
        if not name:
            raise ConfigError("an App needs a name")
        self.name = name
        self.topic_: Topic[Any] | None = None
        self.agents: list[Agent[Any]] = []
        self.tables: list[Table[Any]] = []
        self.advance_callbacks: list[AdvanceCallback] = []
        self.prompt_types: tuple[type, ...] = ()
        self.grace_boost: Callable[[], GraceBoost] | None = None

    def topic(
        self,
        name: str,
        *,
        decoder: Decoder[T],
        event_time: Callable[[T], int] | None = None,
        max_lead_ms: int = 0,
        source: Callable[[T], str] | None = None,
    ) -> Topic[T]:
        """The app's input stream. `event_time` gives a decoded value's event time (a
        device's timestamp): the event clock then follows what most sources show, not the
        one stamped furthest ahead. A record moves it at most `max_lead_ms` past its arrival
        less the lag most of the shard's sources show now (e.g. the clock skew the decoder
        allows a device), and a quiet shard's idle clock keeps that lag. `source` gives a
        decoded value's source (its device; None: the record's partition key): each source
        has one vote, however many records it sends."""
        if self.topic_ is not None:
            raise ConfigError(f"app {self.name!r} already reads topic {self.topic_.name!r}")
        if max_lead_ms < 0:
            raise ConfigError(f"max_lead_ms must be >= 0, got {max_lead_ms}")
        topic = Topic(name, decoder, event_time, max_lead_ms, source)
        self.topic_ = topic
        return topic

    def agent(
        self, topic: Topic[T], *, name: str | None = None
    ) -> Callable[[AgentFun[T]], Agent[T]]:
        if topic is not self.topic_:
            raise ConfigError("an agent must read this app's topic")

        def register(fun: AgentFun[T]) -> Agent[T]:
            agent = Agent(name or fun.__name__, fun)
            if any(a.name == agent.name for a in self.agents):
                raise ConfigError(f"two agents are named {agent.name!r}")
            self.agents.append(agent)
            return agent

        return register

    def Table(  # noqa: N802  (Faust's spelling)
        self, name: str, *, default: Callable[[], V], value_type: type[V]
    ) -> Table[V]:
        if any(t.name == name for t in self.tables):
            raise ConfigError(f"two tables are named {name!r}")
        table = Table(name, default=default, value_type=value_type)
        self.tables.append(table)
        return table

    def prompt(self, *output_types: type) -> None:
        """Outputs of these types (alarms) reach the stores as soon as the batch that made
        them is processed, whatever the checkpoint cadence: the sinks are flushed then (no
        state save, no checkpoint). Their writes must be idempotent, as every output's is: a
        batch processed again after a crash writes them again, unchanged."""
        self.prompt_types = (*self.prompt_types, *output_types)

    def boost_grace(self, source: Callable[[], GraceBoost]) -> None:
        """Let every windowed table of every shard accept updates later than its grace while
        `source()` says so: `(extra_ms, until_ms)`, extra grace while the shard's event clock
        is before `until_ms` (`tables.partition.GraceBoost`). Read once per batch and shard,
        so it must be cheap; its windows close that much later while it lasts."""
        self.grace_boost = source

    def on_advance(self, callback: AdvanceCallback) -> AdvanceCallback:
        """Register `callback(event_clock_ms)`, run per shard after each batch and tick with that
        shard's tables active: for work driven by event time rather than by one record (e.g.
        "no telemetry for 15 minutes"). What it returns goes to the sinks."""
        self.advance_callbacks.append(callback)
        return callback

    @property
    def decoder(self) -> Decoder[Any]:
        if self.topic_ is None:
            raise ConfigError(f"app {self.name!r} has no topic")
        return self.topic_.decoder
