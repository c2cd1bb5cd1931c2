"""The per-record work of luxflow's pipeline, for another framework to carry records to.

`benchmarks.faust_bench` and `benchmarks.quix_bench` run the lighting app inside faust and
Quix Streams; this module is what they call, so that only the framework differs. It is the
work of `ShardEngine.process_records`, written against the engine's public parts (its shard
state, its checkpoint step, the app's callbacks), with the framework doing the record loop:

- per record (`begin`, then the agent, then `done`): the record's event starts the shard
  state's record (partition key, event clock), the decoded value goes to the real lighting
  agent (`detect`, carried by the framework) and then to the app's other agents (the
  telemetry series, resumed here as the engine resumes it), a record the tables found late
  is dead-lettered, and the agents' outputs go to the production sinks
  (`lighting.wiring.shard_sinks` over the benchmark's null clients);
- at the end of a batch (`batch` records, cut as `benchmarks.harness.plan` cuts them): the
  position is noted, the windows the event clock passed close and the app's advance
  callbacks run, then the checkpoint step runs when it is due (a window closed, or the bound
  is passed) or else the alarms are flushed;
- at the end of a checkpoint interval (`checkpoint_every` records) and of the input: flush,
  snapshot, commit.

`benchmarks.harness.run_pipeline` cuts the same input the same way, so the three runs send
the same requests (the unit tests compare their contents).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.harness import RequestCounters, build_engine
from core.clock import ManualClock
from core.event import Event
from core.records import TRIM_HORIZON, DeadLetter, Record
from streams.agent import AgentFun
from streams.app import App


@dataclass(frozen=True)
class RunResult:
    """One run of another framework's bench: what it processed and in how much CPU."""

    events: int
    cpu_s: float
    version: str | None
    error: str | None  # why there is no figure

    @property
    def events_per_cpu_s(self) -> float | None:
        if self.error is not None or self.cpu_s <= 0:
            return None
        return self.events / self.cpu_s

    @property
    def us_per_event(self) -> float | None:
        if self.error is not None or self.events <= 0:
            return None
        return self.cpu_s / self.events * 1e6


class SameWork:
    """One shard of the lighting app with its tables and production sinks, fed from outside.

    Contract: for each record i, in order, call `begin(i)`, give the agent the value it
    returns (with `event` as its stream's current event), then `done(i, outputs)` with what
    the agent yielded. `done` of the last record ends the run (the final checkpoint)."""

    def __init__(
        self,
        build_app: Callable[[], App],
        records: Sequence[Record],
        counters: RequestCounters | None = None,
        *,
        batch: int = 500,
        checkpoint_every: int = 5_000,
    ) -> None:
        if batch < 1 or checkpoint_every < 1:
            raise ValueError("batch and checkpoint_every must be at least 1")
        app = build_app()
        self.app = app
        self.records = records
        self.detect: AgentFun[Any] = app.agents[0].fun
        self.decode = app.decoder
        self.counters = counters if counters is not None else RequestCounters()
        # Processing time stands still, as in `harness.run_pipeline`: windows close by event
        # time only, so every framework's run of the same input does the same work.
        clock = ManualClock(records[0].arrival_ms if records else 0)
        shard_id = records[0].shard_id if records else "shardId-000000000000"
        self.engine = build_engine(app, shard_id, self.counters, clock)
        self.engine.initialize(TRIM_HORIZON)
        self.state = self.engine.state
        self.state.activate()
        self._checkpoint = self.engine.checkpoint
        self._batch = batch
        self._checkpoint_every = checkpoint_every
        # The app's other agents (the telemetry series) are resumed here, as the engine
        # resumes every agent: the framework under test carries the records to `detect`.
        self._others = [agent.instance() for agent in app.agents[1:]]
        primed: list[object] = []
        for agent in self._others:
            # Started here, outside any event loop, up to where it waits for its first value:
            # an event loop run later (faust's) then does not adopt the agent's generator and
            # try to close it, still waiting, when the loop ends.
            agent.tick(clock(), primed)
        self._value: object = None
        self.event: Event[Any] | None = None
        """The current record's event (what the agent's `stream.current_event` must be)."""

    def begin(self, index: int) -> object:
        """Decode record `index` and start it in the shard state; its decoded value."""
        record = self.records[index]
        value = self.decode(record.data, record.arrival_ms)
        event = self.event = Event.of(record, value)
        self.state.begin(event)
        self._value = value
        return value

    def done(self, index: int, outputs: list[object]) -> None:
        """The agent is done with record `index`: `outputs` (then cleared) to the sinks, and
        the batch's and the interval's ends when `index` is their last record."""
        for agent in self._others:
            agent.feed(self._value, outputs, self.event)
        if self.state.take_late():
            self._checkpoint.dead_letter(DeadLetter.of(self.records[index], "late", "late"))
        self._checkpoint.write(outputs)
        count = index + 1
        last = count == len(self.records)
        in_interval = count % self._checkpoint_every
        if last or in_interval % self._batch == 0:  # 0 also ends the interval
            self._end_batch(index)
        if last or in_interval == 0:
            self._checkpoint.commit()  # flush the sinks, snapshot the state, commit

    def _end_batch(self, index: int) -> None:
        """Record `index` ended a batch: close windows, run callbacks, checkpoint if due."""
        checkpoint = self._checkpoint
        checkpoint.processed(self.records[index].position)
        state = self.state
        closed = state.advance()
        if closed:
            prompt = self.app.prompt_types
            if not prompt or not all(isinstance(output, prompt) for output in closed):
                checkpoint.window_closed()
            checkpoint.write(closed)
        clock_ms = state.event_clock_ms()
        if clock_ms is not None and self.app.advance_callbacks:
            outputs: list[object] = []
            with state.outside_records():
                for callback in self.app.advance_callbacks:
                    outputs.extend(callback(clock_ms))
            checkpoint.write(outputs)
        if checkpoint.due() or checkpoint.over_bound():
            checkpoint.try_commit()
        else:
            checkpoint.flush_prompt()
        checkpoint.collect()
