"""How well what was detected matches what was injected: the demo's and `evaluate`'s verdict.

Pure: takes the simulator's ground truth and the domain events read back from the command
model, returns counts per event kind. Kinds: ``fault_code`` (device codes), ``lamp_failure``,
``voltage``, ``flicker``, ``offline``, ``energy_spike:<rule>`` per spike rule, and
``usage_report``. A detection matches an injected episode of the same kind, subject (asset,
or site for site demand) and code when their intervals overlap; each injected episode matches
at most once, so a second event for it counts against precision ("exactly once"). Timing
error is the mean absolute difference of start and end times over matched pairs.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping

import msgspec

from core.clock import DAY_MS, HOUR_MS
from domain.events import EnergySpike, Fault, UsageReport
from domain.rules import (
    BASELINE_RULE,
    DERIVED_FAULT_CODES,
    FLICKER,
    LAMP_FAILURE,
    OFFLINE,
    OVER_VOLTAGE,
    SPIKE_RULE,
    UNDER_VOLTAGE,
)
from domain.site import SITE_DEMAND_RULE
from domain.usage import USAGE_LEVELS, scopes_of
from sim.truth import GroundTruth

USAGE_TOLERANCE = 0.005  # 0.5 %
FAULT_KINDS = ("fault_code", LAMP_FAILURE, "voltage", FLICKER, OFFLINE)
SPIKE_KINDS = tuple(
    f"energy_spike:{rule}" for rule in (SPIKE_RULE, BASELINE_RULE, SITE_DEMAND_RULE)
)
USAGE_KIND = "usage_report"
EVENT_KINDS = (*FAULT_KINDS, *SPIKE_KINDS, USAGE_KIND)
ASSET_HOURLY: tuple[tuple[str, int], ...] = (("asset", HOUR_MS),)
ALL_USAGE_SCOPES: tuple[tuple[str, int], ...] = tuple(
    (level, window_ms) for level in USAGE_LEVELS for window_ms in (HOUR_MS, DAY_MS)
)
_FAULT_KIND_OF_CODE = {
    LAMP_FAILURE: LAMP_FAILURE,
    OVER_VOLTAGE: "voltage",
    UNDER_VOLTAGE: "voltage",
    FLICKER: FLICKER,
    OFFLINE: OFFLINE,
}


class KindScore(msgspec.Struct, frozen=True):
    kind: str
    expected: int
    detected: int
    matched: int
    start_error_ms: float = 0.0
    """Mean absolute start error of matched pairs (ms)."""
    end_error_ms: float = 0.0
    """Mean absolute end error of matched pairs that both have an end (ms)."""

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
    """Largest relative error of a usage report against the ground truth."""

    @property
    def passed(self) -> bool:
        return all(s.exact for s in self.scores)

    def score(self, kind: str) -> KindScore:
        return next(s for s in self.scores if s.kind == kind)

    def as_dict(self) -> dict[str, dict[str, float | int]]:
        """One entry per event kind: precision, recall, expected, detected, matched and the
        mean timing errors."""
        return {
            s.kind: {
                "precision": s.precision,
                "recall": s.recall,
                "expected": s.expected,
                "detected": s.detected,
                "matched": s.matched,
                "start_error_ms": s.start_error_ms,
                "end_error_ms": s.end_error_ms,
            }
            for s in self.scores
        }

    def to_json(self) -> str:
        """``as_dict`` as one JSON object keyed by event kind."""
        return json.dumps(self.as_dict(), sort_keys=True)


# (kind, subject, code, start, end); end None: still open.
_Episode = tuple[str, str, str, int, int | None]


def _fault_episode(fault: Fault) -> _Episode:
    kind = _FAULT_KIND_OF_CODE.get(fault.code, "fault_code")
    return kind, fault.asset_id, fault.code, fault.opened_at_ms, fault.cleared_at_ms


def _spike_episode(spike: EnergySpike) -> _Episode:
    subject = spike.site_id if spike.level == "site" else spike.asset_id
    return f"energy_spike:{spike.rule}", subject, "", spike.started_at_ms, spike.ended_at_ms


def _expected(truth: GroundTruth) -> list[_Episode]:
    out: list[_Episode] = [
        ("fault_code", f.asset_id, f.code, f.start_ms, f.end_ms) for f in truth.faults
    ]
    out += [(SPIKE_KINDS[0], s.asset_id, "", s.start_ms, s.end_ms) for s in truth.spikes]
    for e in truth.events:
        if e.kind == "energy_spike":
            out.append(
                (f"energy_spike:{e.code}", e.asset_id or e.site_id, "", e.start_ms, e.end_ms)
            )
        else:
            out.append((e.kind, e.asset_id, e.code, e.start_ms, e.end_ms))
    return out


def _score_episodes(kind: str, expected: list[_Episode], detected: list[_Episode]) -> KindScore:
    by_group: dict[tuple[str, str], list[_Episode]] = {}
    for item in sorted(expected, key=lambda e: e[3]):
        by_group.setdefault((item[1], item[2]), []).append(item)
    used: set[int] = set()
    start_errors: list[int] = []
    end_errors: list[int] = []
    for item in sorted(detected, key=lambda e: e[3]):
        _, subject, code, start_ms, end_ms = item
        for candidate in by_group.get((subject, code), []):
            if id(candidate) in used:
                continue
            c_start, c_end = candidate[3], candidate[4]
            assert c_end is not None
            if start_ms < c_end and (end_ms is None or c_start < end_ms):
                used.add(id(candidate))
                start_errors.append(abs(start_ms - c_start))
                if end_ms is not None:
                    end_errors.append(abs(end_ms - c_end))
                break
    return KindScore(
        kind,
        len(expected),
        len(detected),
        len(used),
        sum(start_errors) / len(start_errors) if start_errors else 0.0,
        sum(end_errors) / len(end_errors) if end_errors else 0.0,
    )


def _usage_key(report: UsageReport) -> tuple[str, int, int]:
    level = USAGE_LEVELS.index(report.level)
    scope = scopes_of(report.site_id, report.building_id, report.room_id, report.asset_id)[level]
    return scope.key, report.window_ms, report.window_start_ms


def evaluate(
    truth: GroundTruth,
    faults: Iterable[Fault],
    spikes: Iterable[EnergySpike],
    usage: Iterable[UsageReport],
    *,
    tolerance: float = USAGE_TOLERANCE,
    usage_scopes: Collection[tuple[str, int]] = ASSET_HOURLY,
    closed_by_ms: int | None = None,
) -> Evaluation:
    """Scores per kind (``EVENT_KINDS``, every kind present). A usage report matches when its
    kWh is within ``tolerance`` of the ground truth's, summed to its scope and window; only
    reports of ``usage_scopes`` ((level, window_ms) pairs; asset-hourly by default) count.
    Faults should be the last stored version of each (a cleared fault replaces its open one).
    Detections starting at or after the end of the simulated period are not counted (every
    asset goes offline once the data ends and the idle clock runs on). With ``closed_by_ms``,
    only usage windows ending by then are expected (today's daily window, say, is still open).
    """
    expected = _expected(truth)
    # Offline faults opened by the idle clock after the data ends are outside the scenario.
    end_ms = truth.params.start_ms + truth.params.duration_ms
    detected = [
        d
        for d in [_fault_episode(f) for f in faults] + [_spike_episode(s) for s in spikes]
        if d[3] < end_ms
    ]
    scores = [
        _score_episodes(
            kind, [e for e in expected if e[0] == kind], [d for d in detected if d[0] == kind]
        )
        for kind in (*FAULT_KINDS, *SPIKE_KINDS)
    ]

    windows = sorted({window_ms for _, window_ms in usage_scopes})
    truth_wh: dict[tuple[str, int, int], float] = {}
    for u in truth.usage:
        for scope in scopes_of(u.site_id, u.building_id, u.room_id, u.asset_id):
            for window_ms in windows:
                if (scope.level, window_ms) not in usage_scopes:
                    continue
                start_ms = u.window_start_ms - u.window_start_ms % window_ms
                if closed_by_ms is not None and start_ms + window_ms > closed_by_ms:
                    continue
                key = (scope.key, window_ms, start_ms)
                truth_wh[key] = truth_wh.get(key, 0.0) + u.wh
    reports = [
        r
        for r in usage
        if (r.level, r.window_ms) in usage_scopes
        and (closed_by_ms is None or r.window_end_ms <= closed_by_ms)
    ]
    matched_usage = 0
    max_error = 0.0
    seen: set[tuple[str, int, int]] = set()
    for report in reports:
        key = _usage_key(report)
        expected_wh = truth_wh.get(key)
        if expected_wh is None or key in seen:
            continue
        seen.add(key)
        expected_kwh = expected_wh / 1000.0
        error = abs(report.kwh - expected_kwh) / expected_kwh if expected_kwh else abs(report.kwh)
        max_error = max(max_error, error)
        if error <= tolerance:
            matched_usage += 1
    scores.append(KindScore(USAGE_KIND, len(truth_wh), len(reports), matched_usage))
    return Evaluation(scores=scores, usage_max_error=max_error)


def onset_delays(
    truth: GroundTruth, spikes: Iterable[EnergySpike], written_at_ms: Mapping[str, int]
) -> dict[str, list[int]]:
    """Per spike kind, the onset delay of each detection that overlaps an injected episode of
    its subject: when it was first written (``written_at_ms`` by ``event_id``, on the event
    clock) minus the injected start, in the detections' order of start."""
    expected = [e for e in _expected(truth) if e[0] in SPIKE_KINDS]
    delays: dict[str, list[int]] = {}
    for spike in sorted(spikes, key=lambda s: s.started_at_ms):
        kind, subject, _, start_ms, end_ms = _spike_episode(spike)
        for e_kind, e_subject, _, e_start, e_end in expected:
            assert e_end is not None
            if (
                (e_kind, e_subject) == (kind, subject)
                and start_ms < e_end
                and (end_ms is None or e_start < end_ms)
            ):
                delays.setdefault(kind, []).append(written_at_ms[spike.event_id] - e_start)
                break
    return delays


__all__ = [
    "ALL_USAGE_SCOPES",
    "ASSET_HOURLY",
    "DERIVED_FAULT_CODES",
    "EVENT_KINDS",
    "Evaluation",
    "KindScore",
    "evaluate",
    "onset_delays",
]
