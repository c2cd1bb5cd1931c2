"""How well what was detected matches what was injected: the demo's and `evaluate`'s verdict.

Pure: takes the simulator's ground truth and the domain events read back from the command
model, returns counts per event kind. "Exactly once" is checked by identity: a detected event
that matches no injected one, or a second event for the same injected one, counts against.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from collections.abc import Set as AbstractSet

import msgspec

from domain.events import EnergySpike, Fault, UsageReport
from domain.simulator import GroundTruth

USAGE_TOLERANCE = 0.005  # 0.5 %


class KindScore(msgspec.Struct, frozen=True):
    kind: str
    expected: int
    detected: int
    matched: int

    @property
    def missed(self) -> int:
        return self.expected - self.matched

    @property
    def unexpected(self) -> int:
        return self.detected - self.matched

    @property
    def precision(self) -> float:
        return self.matched / self.detected if self.detected else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.expected if self.expected else 1.0

    @property
    def exact(self) -> bool:
        return self.expected == self.detected == self.matched


class Evaluation(msgspec.Struct, frozen=True):
    scores: list[KindScore]
    usage_max_error: float
    """Largest relative error of an hourly report against the ground truth."""

    @property
    def passed(self) -> bool:
        return all(s.exact for s in self.scores)


def _count_matches(expected: AbstractSet[Hashable], detected: Iterable[Hashable]) -> int:
    seen: set[Hashable] = set()
    for key in detected:
        if key in expected and key not in seen:
            seen.add(key)
    return len(seen)


def evaluate(
    truth: GroundTruth,
    faults: Iterable[Fault],
    spikes: Iterable[EnergySpike],
    usage: Iterable[UsageReport],
    tolerance: float = USAGE_TOLERANCE,
) -> Evaluation:
    """Faults match on (asset, code, opened, cleared); spikes on (asset, start, end); an hourly
    report matches when its kWh is within `tolerance` of the ground truth's."""
    fault_keys = [(f.asset_id, f.code, f.opened_at_ms, f.cleared_at_ms) for f in faults]
    expected_faults = {(f.asset_id, f.code, f.start_ms, f.end_ms) for f in truth.faults}
    spike_keys = [(s.asset_id, s.started_at_ms, s.ended_at_ms) for s in spikes]
    expected_spikes = {(s.asset_id, s.start_ms, s.end_ms) for s in truth.spikes}

    truth_kwh = {(u.asset_id, u.window_start_ms): u.wh / 1000.0 for u in truth.usage}
    reports = list(usage)
    matched_usage = 0
    max_error = 0.0
    seen: set[tuple[str, int]] = set()
    for report in reports:
        key = (report.asset_id, report.window_start_ms)
        expected_kwh = truth_kwh.get(key)
        if expected_kwh is None or key in seen:
            continue
        seen.add(key)
        error = abs(report.kwh - expected_kwh) / expected_kwh if expected_kwh else abs(report.kwh)
        max_error = max(max_error, error)
        if error <= tolerance:
            matched_usage += 1
    return Evaluation(
        scores=[
            KindScore(
                "fault",
                len(expected_faults),
                len(fault_keys),
                _count_matches(expected_faults, fault_keys),
            ),
            KindScore(
                "energy_spike",
                len(expected_spikes),
                len(spike_keys),
                _count_matches(expected_spikes, spike_keys),
            ),
            KindScore("usage_report", len(truth_kwh), len(reports), matched_usage),
        ],
        usage_max_error=max_error,
    )
