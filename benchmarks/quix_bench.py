"""Quix Streams beside luxflow, on the same work, fed without Kafka.

The pipeline is built by `quixstreams.Application` (`app.dataframe(topic)`, its steps, then
`compose()`, as `Application.run()` does), with the topic built directly: `app.topic()` asks
the broker for the topic's metadata, whereas `Application`, `app.dataframe()` and the
checkpoint's offset store create no Kafka client until a consumer, producer or admin call is
made, and none is. Each record goes through what `Application` does per message once its
consumer has polled it (`_process_message`): a `MessageContext`, a copied context with it
set, the composed pipeline run in that context, the offset stored in the checkpoint. What
a broker would add (poll, deserialisation, producer callbacks, the offset commit) is out of
both sides, as Kinesis' reads are out of luxflow's figure.

Two figures:

- same work (`run_same_work`): a step decodes the record and starts it in the shard state,
  a second step (`expand=True`) gives the value to the real lighting agent (the `detect`
  agent's function, resumed by `streams.agent.AgentInstance`: Quix steps are plain
  functions, and an async agent needs a driver) and emits its outputs one by one, and the
  pipeline's sink collects them; once the record is through, `benchmarks.same_work` hands
  them to the production sinks, closes windows every `batch` records and checkpoints every
  `checkpoint_every`, as luxflow's own pipeline does. So only the framework differs.
- framework overhead (`noop_us_per_event`): a pipeline of one no-op step; CPU per event is
  Quix's own per-message cost.

quixstreams is only in the `bench` extra (it pins pydantic below the version the app's API
runs on): when it is missing or fails, the result says why instead of raising.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from benchmarks.harness import RequestCounters
from benchmarks.same_work import RunResult, SameWork
from core.records import Record
from streams.app import App

TOPIC = "telemetry"


QuixResult = RunResult


Build = Callable[[Any, Any], Callable[[], tuple[int, float]]]
"""Given the quixstreams module and an Application-built dataframe, a run returning (events
seen, CPU seconds)."""


@contextlib.contextmanager
def _application(quix: Any) -> Iterator[tuple[Any, Any]]:
    """An `Application` whose Kafka clients are never created, and a dataframe on its topic."""
    from quixstreams.models import Topic

    with tempfile.TemporaryDirectory(prefix="luxflow-quix-") as state_dir:
        app = quix.Application(
            broker_address="127.0.0.1:9",  # never contacted: no client is created
            consumer_group="luxflow-bench",
            auto_create_topics=False,
            use_changelog_topics=False,
            state_dir=state_dir,
        )
        topic = Topic(TOPIC, value_deserializer="bytes", key_deserializer="str")
        yield app, app.dataframe(topic)


def _run_messages(app: Any, composed: Any, records: Sequence[Record]) -> Iterator[int]:
    """`Application._process_message` after the poll, for each record: yields its offset
    once the pipeline has run on it and the offset is stored."""
    from contextvars import copy_context

    from quixstreams.context import set_message_context
    from quixstreams.models import MessageContext

    processing = app._processing_context
    processing.init_checkpoint()
    run = composed[TOPIC]
    store_offset = processing.store_offset
    for offset, record in enumerate(records):
        data = record.data
        context = copy_context()
        context.run(set_message_context, MessageContext(TOPIC, 0, offset, len(data)))
        context.run(run, data, record.partition_key, record.arrival_ms, None)
        store_offset(TOPIC, 0, offset)
        yield offset


def _run(expected: int, drive: Callable[[Any], tuple[int, float]]) -> QuixResult:
    # Recorded, not printed: quixstreams' dependencies warn about their own dependencies
    # on import (authlib turns its deprecation warnings to "always", past any filter).
    with warnings.catch_warnings(record=True):
        return _run_quietly(expected, drive)


def _run_quietly(expected: int, drive: Callable[[Any], tuple[int, float]]) -> QuixResult:
    try:
        import quixstreams
    except Exception as exc:  # ImportError, or a quixstreams that does not import here
        return QuixResult(0, 0.0, None, f"quixstreams not importable: {exc!r}")
    version = str(getattr(quixstreams, "__version__", "?"))
    try:
        logging.getLogger("quixstreams").setLevel(logging.WARNING)
        with contextlib.redirect_stdout(io.StringIO()):
            events, cpu_s = drive(quixstreams)
    except Exception as exc:
        return QuixResult(0, 0.0, version, f"quixstreams failed: {exc!r}")
    if events != expected:
        return QuixResult(events, cpu_s, version, f"quix pipeline saw {events} of {expected}")
    return QuixResult(events, cpu_s, version, None)


def noop_us_per_event(records: Sequence[Record]) -> QuixResult:
    """A Quix pipeline of one step that does nothing with its values."""

    def drive(quix: Any) -> tuple[int, float]:
        seen = [0]

        def noop(_data: bytes) -> None:
            seen[0] += 1

        with _application(quix) as (app, sdf):
            composed = sdf.update(noop).compose()
            cpu0 = time.process_time()
            for _offset in _run_messages(app, composed, records):
                pass
            return seen[0], time.process_time() - cpu0

    return _run(len(records), drive)


def run_same_work(
    build_app: Callable[[], App],
    records: Sequence[Record],
    *,
    batch: int = 500,
    checkpoint_every: int = 5_000,
    counters: RequestCounters | None = None,
) -> QuixResult:
    """The real lighting agent inside a Quix pipeline, with luxflow's tables and sinks.
    `counters` receives every request the sinks send."""
    work = SameWork(build_app, records, counters, batch=batch, checkpoint_every=checkpoint_every)
    agent = work.app.agents[0].instance()
    outputs: list[object] = []

    def drive(quix: Any) -> tuple[int, float]:
        from quixstreams import message_context

        def begin(_data: bytes) -> object:
            return work.begin(message_context().offset)

        def detect(value: object) -> list[object]:
            found: list[object] = []
            agent.feed(value, found, work.event)
            return found

        def write(value: object, _key: object, _timestamp: int, _headers: object) -> None:
            outputs.append(value)

        with _application(quix) as (app, sdf):
            composed = sdf.apply(begin).apply(detect, expand=True).compose(sink=write)
            seen = 0
            cpu0 = time.process_time()
            for offset in _run_messages(app, composed, records):
                work.done(offset, outputs)
                seen += 1
            return seen, time.process_time() - cpu0

    return _run(len(records), drive)
