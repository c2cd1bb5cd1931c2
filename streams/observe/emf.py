"""Writing `WorkerStatus` snapshots as CloudWatch Embedded Metric Format, and the timer that
samples and writes them.

EMF is written by a small writer of our own (`emf_line`), not the aws-embedded-metrics
library: we need one JSON object per dimension combination per flush, with our own
aggregation (pull model, `streams.observe.metrics`) and an injectable output; the library
brings an asyncio-flavoured logger, environment detection (agent sockets, Lambda) and its own
per-call metric context, none of which a long-running worker with pre-aggregated values uses.
The format is small and documented: one JSON line with `_aws.Timestamp` and
`_aws.CloudWatchMetrics[{Namespace, Dimensions, Metrics}]`, the values and dimensions as
top-level members.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import BinaryIO

import orjson

from core.clock import Clock, wall_clock_ms
from streams.observe.metrics import (
    NAMESPACE,
    REASON,
    SHARD,
    SINK,
    SPECS,
    FlushLine,
    Metrics,
    WorkerStatus,
)

log = logging.getLogger(__name__)

# -- Embedded Metric Format -----------------------------------------------------------------


def dimension_sets(scope: str) -> list[list[str]]:
    """The dimension sets a line of `scope` publishes to. Shard series are also published to
    [App] (the alarms' set; CloudWatch sums or maxes the shards there); sink series to
    [App, Sink] and [App] (the dashboard's set: all sinks together); dead letters by reason
    to [App, Reason] only (the shard line carries the total, so [App] is not counted
    twice)."""
    if scope == SHARD:
        return [["App", "Shard"], ["App"]]
    if scope == SINK:
        return [["App", "Shard", "Sink"], ["App", "Sink"], ["App"]]
    if scope == REASON:
        return [["App", "Reason"]]
    return [["App"]]


def emf_line(app_name: str, worker: str, line: FlushLine, timestamp_ms: int) -> bytes:
    """One EMF JSON object (without the newline)."""
    document: dict[str, object] = {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": dimension_sets(line.scope),
                    "Metrics": [
                        {"Name": name, "Unit": SPECS[name].unit} for name in sorted(line.values)
                    ],
                }
            ],
        },
        "App": app_name,
        "Worker": worker,
    }
    for key, value in line.dims:
        document[key] = value
    for name, number in line.values.items():
        document[name] = int(number) if float(number).is_integer() else number
    return orjson.dumps(document)


def emf_lines(
    app_name: str, worker: str, lines: Iterable[FlushLine], timestamp_ms: int
) -> list[bytes]:
    return [emf_line(app_name, worker, line, timestamp_ms) for line in lines]


class EmfWriter:
    """Writes EMF lines to a binary stream, each line with one `write` call on the file
    descriptor, so lines of other writers of that stream (the KCL daemon's log) never cut
    through them."""

    def __init__(self, app_name: str, worker: str, stream: BinaryIO) -> None:
        self._app = app_name
        self._worker = worker
        self._stream = stream

    def write(self, lines: Iterable[FlushLine], timestamp_ms: int) -> int:
        count = 0
        for data in emf_lines(self._app, self._worker, lines, timestamp_ms):
            self._stream.flush()
            os.write(self._stream.fileno(), data + b"\n")
            count += 1
        return count


# -- the timer --------------------------------------------------------------------------------


class MetricsLoop:
    """A daemon thread: reads the worker's status every `sample_interval_ms` (so checkpoint
    ages are current for /readyz) and writes EMF every `flush_interval_ms`; `stop()` reads
    and writes a last time, so a stopping worker reports its final counts."""

    def __init__(
        self,
        read_status: Callable[[], WorkerStatus],
        metrics: Metrics,
        writer: EmfWriter | None,
        *,
        flush_interval_ms: int,
        sample_interval_ms: int = 1_000,
        now_ms: Clock = wall_clock_ms,
    ) -> None:
        self._read = read_status
        self.metrics = metrics
        self._writer = writer
        self._flush_ms = flush_interval_ms
        self._sample_ms = min(sample_interval_ms, flush_interval_ms)
        self._now_ms = now_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics", daemon=True)

    def sample(self) -> None:
        try:
            self.metrics.update(self._read())
        except Exception:  # a metrics bug must never stop the worker
            log.exception("reading the worker's status failed")

    def flush(self) -> None:
        lines = self.metrics.take_flush()
        if self._writer is not None:
            try:
                self._writer.write(lines, self._now_ms())
            except OSError as exc:
                log.warning("cannot write metrics: %s", exc)

    def start(self) -> MetricsLoop:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.sample()
        self.flush()

    def _run(self) -> None:
        next_flush_ms = self._now_ms() + self._flush_ms
        while not self._stop.wait(self._sample_ms / 1000):
            self.sample()
            if self._now_ms() >= next_flush_ms:
                self.flush()
                next_flush_ms += self._flush_ms
