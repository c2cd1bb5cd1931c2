"""What `luxflow bench --latency` reports per runner: the faults' latency after the warm-up,
the cold start's apart, and where the slowest came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmarks.latency import Measurement, percentile

SLOWEST = 6
"""How many of the slowest faults a result lists."""


@dataclass(frozen=True)
class RunnerLatency:
    runner: str
    faults_sent: int
    faults_seen: int
    p50_s: float | None
    p90_s: float | None
    p99_s: float | None
    max_s: float | None
    background_records: int
    background_records_per_s: float | None
    poll_round_ms: float | None
    warmup_s: float | None
    checkpoint_ms: float | None
    """Mean duration of a checkpoint step (flush, state save, checkpoint) over the shards, from
    the worker's own CheckpointDurationMs metric lines (EMF on its stdout)."""
    error: str | None
    cold: ColdStart | None = None
    all_p99_s: float | None = None
    """p99 of the cold start's faults and the measured ones together."""
    slowest: tuple[tuple[float, float], ...] = ()
    """The slowest faults: (seconds after the first fault was sent, latency s), slowest
    first; where the tail comes from (start-up, one shard's stall, a periodic step)."""

    def as_json(self) -> dict[str, Any]:
        def r(value: float | None, digits: int = 3) -> float | None:
            return None if value is None else round(value, digits)

        return {
            "runner": self.runner,
            "faults_sent": self.faults_sent,
            "faults_seen": self.faults_seen,
            "p50_s": r(self.p50_s),
            "p90_s": r(self.p90_s),
            "p99_s": r(self.p99_s),
            "max_s": r(self.max_s),
            "background_records": self.background_records,
            "background_records_per_s": r(self.background_records_per_s, 1),
            "poll_round_ms": r(self.poll_round_ms, 1),
            "warmup_s": r(self.warmup_s, 1),
            "checkpoint_ms_mean": r(self.checkpoint_ms, 0),
            "error": self.error,
            "cold_start": self.cold.as_json() if self.cold is not None else None,
            "all_p99_s": r(self.all_p99_s),
            "slowest": [[round(at, 1), round(latency, 3)] for at, latency in self.slowest],
        }


@dataclass(frozen=True)
class ColdStart:
    """The faults sent during the fleet's first round of readings (`LatencyPlan.cold_faults`)."""

    faults_sent: int
    faults_seen: int
    p50_s: float | None
    p99_s: float | None
    max_s: float | None
    slowest: tuple[tuple[float, float], ...]
    """(seconds after the fleet's first reading the fault was sent, latency s), slowest first."""

    @classmethod
    def of(cls, m: Measurement, fleet_started_s: float) -> ColdStart:
        values = m.latencies_s
        return cls(
            faults_sent=m.faults_sent,
            faults_seen=len(values),
            p50_s=percentile(values, 0.5),
            p99_s=percentile(values, 0.99),
            max_s=max(values, default=None),
            slowest=slowest(m, fleet_started_s),
        )

    def as_json(self) -> dict[str, Any]:
        def r(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "faults_sent": self.faults_sent,
            "faults_seen": self.faults_seen,
            "p50_s": r(self.p50_s),
            "p99_s": r(self.p99_s),
            "max_s": r(self.max_s),
            "slowest": [[round(at, 1), round(latency, 3)] for at, latency in self.slowest],
        }


def slowest(m: Measurement, since_s: float) -> tuple[tuple[float, float], ...]:
    """The `SLOWEST` slowest faults of `m`: (seconds after `since_s` sent, latency s)."""
    pairs = zip(m.sent_s, m.latencies_s, strict=True)
    ranked = sorted(((sent - since_s, latency) for sent, latency in pairs), key=lambda p: -p[1])
    return tuple(ranked[:SLOWEST])
