"""Scores of the real app on the realistic fleet (`sim.realistic`): per kind precision,
recall and detection delay, report emission lag, energy error per window level.

A detection matches an injected episode of its kind on the same asset when their intervals
overlap (the truth widened by what the rule needs to see it: a spike's end by one reading
interval, flicker's end by its window and cool-down, offline from the gap's start plus
``offline_after_ms``). Each episode matches once. Onset delay, per matched episode, from the
event clock when the alarm was first written (a spike is first written open when its rule
confirms it, a fault when it opens):

- from the injected start (``delay_ms_*``): what an operator sees;
- from the first reading that showed the anomaly (``reading_delay_ms_*``): the asset's first
  reading at or after the injected start (offline: its last reading before the gap, after
  which silence is the anomaly), so the wait for a sampled reading is left out;
- ``bound_ms``: the rule's own duration (``RULE_MS``) plus one sampling interval (the fleet
  reads a lamp every 10-40 s: the reading that completes the rule comes at most that late)
  plus one batch (its ``batch_ms`` of arrivals, whose readings may be stamped up to
  ``max_delay_ms`` later than they arrive, which the event clock follows). A delay from the
  reading above the bound (``over_bound``) is a bug, not sampling.

Emission lag: event clock when a usage report was first written minus its window end.
Emission wait: the same clock minus the event time of the first reading (in arrival order)
at or past the window end plus grace, the reading that closes the window: what the system
adds to what the data allows. The lag also holds the wait for that reading, so on a sparse
shard (a reading every 30 s) it can exceed grace plus one checkpoint although nothing waited
on luxflow; the wait cannot.
"""

from __future__ import annotations

import bisect
import itertools
import statistics
from collections.abc import Iterable, Iterator

from core.clock import DAY_MS, HOUR_MS, MINUTE_MS
from domain.events import EnergySpike, Fault, UsageReport
from domain.registry import SiteDefaults
from sim.inprocess import InProcessRun, registry_cache, run_in_process
from sim.realistic import Episode, Fleet, RealisticParams

KINDS = (
    "energy_spike:power_above_threshold",
    "energy_spike:power_above_baseline",
    "fault_code",
    "flicker",
    "offline",
)
_DEFAULTS = SiteDefaults("")
RULE_MS = {
    "energy_spike:power_above_threshold": _DEFAULTS.min_spike_ms,
    "energy_spike:power_above_baseline": _DEFAULTS.min_spike_ms,
    "fault_code": 0,
    # Toggles counted within the window: the rule confirms at the latest a window after the
    # first one.
    "flicker": _DEFAULTS.flicker_window_ms,
    # Silence for offline_after_ms, seen by the sweep that runs once a minute.
    "offline": _DEFAULTS.offline_after_ms + MINUTE_MS,
}
"""Each kind's rule duration, from the first reading that showed the anomaly."""
SAMPLING_MS = 40_000
"""The realistic fleet's longest interval between two readings of a lamp."""
BATCH_MS = 1_000
"""The in-process run's batch: the records that arrived within it."""
_WIDEN_MS = {
    "energy_spike:power_above_threshold": 60_000,
    "energy_spike:power_above_baseline": 60_000,
    "fault_code": 60_000,
    "flicker": 20 * MINUTE_MS,
    "offline": 60_000,
}


def evaluate_realistic(params: RealisticParams) -> dict[str, object]:
    fleet = Fleet(params)
    deliveries = fleet.deliveries()
    records = [(pk, data, arrival_ms) for pk, data, arrival_ms, _ in deliveries]
    run = run_in_process(records, registry_cache(fleet.registry()), batch_ms=BATCH_MS)
    out: dict[str, object] = {
        "fleet": {
            "sites": params.sites,
            "lamps": len(fleet.lamps),
            "hours": params.hours,
            "records": run.records,
            "with_counter": sum(lamp.counter for lamp in fleet.lamps),
            "occupancy": sum(lamp.occupancy for lamp in fleet.lamps),
            "late_records": run.late_records,
            "bad_records": run.bad_records,
        }
    }
    kinds: dict[str, object] = {}
    for kind in KINDS:
        kinds[kind] = _score(kind, fleet, run, _reading_times(fleet, kind))
    kinds["blip_spikes"] = _blip_spikes(fleet, run.spikes)
    kinds["site_floods"] = sum(1 for f in run.faults if f.level == "site")
    out["kinds"] = kinds
    out["report_lag_ms"] = _max_per_window(
        (u, run.written_at_ms[u.event_id] - u.window_end_ms) for u in run.usage
    )
    out["report_wait_ms"] = _waits(run, _clock_steps(ts_ms for *_, ts_ms in deliveries))
    out["energy"] = _energy(fleet, run)
    return out


def _detected(kind: str, run: InProcessRun) -> list[tuple[str, int, int, str]]:
    """(asset, start, end, event_id) of the run's asset-level detections of ``kind``."""
    if kind.startswith("energy_spike:"):
        rule = kind.split(":", 1)[1]
        return [
            (s.asset_id, s.started_at_ms, _end(s), s.event_id)
            for s in run.spikes
            if s.level == "asset" and s.rule == rule
        ]
    found = []
    for f in run.faults:
        if f.level != "asset":
            continue
        fault_kind = f.code if f.code in ("flicker", "offline") else "fault_code"
        if fault_kind == kind:
            found.append((f.asset_id, f.opened_at_ms, f.cleared_at_ms or 2**62, f.event_id))
    return found


def _reading_times(fleet: Fleet, kind: str) -> dict[str, list[int]]:
    """Event times of every reading of each lamp with an episode of ``kind``, in order."""
    assets = {e.asset_id for e in fleet.episodes if e.kind == kind}
    return {
        lamp.asset_id: [r.ts_ms for r in fleet.readings(lamp)]
        for lamp in fleet.lamps
        if lamp.asset_id in assets
    }


def first_showing(kind: str, episode: Episode, times: list[int]) -> int:
    """The event time of the first reading that showed ``episode`` (see the module
    docstring); the injected start when there is none."""
    if kind == "offline":
        before = bisect.bisect_left(times, episode.start_ms)
        return times[before - 1] if before else episode.start_ms
    at = bisect.bisect_left(times, episode.start_ms)
    return times[at] if at < len(times) else episode.start_ms


def _score(
    kind: str, fleet: Fleet, run: InProcessRun, times: dict[str, list[int]]
) -> dict[str, float | int]:
    truth = [e for e in fleet.episodes if e.kind == kind]
    detected = _detected(kind, run)
    used: set[int] = set()
    delays: list[int] = []
    from_reading: list[int] = []
    bound_ms = RULE_MS[kind] + SAMPLING_MS + BATCH_MS + fleet.params.max_delay_ms
    matched = 0
    for asset_id, start, end, event_id in sorted(detected, key=lambda d: d[1]):
        for i, e in enumerate(truth):
            t_start = e.start_ms + (900_000 if kind == "offline" else 0)
            t_end = e.end_ms + _WIDEN_MS[kind]
            if i in used or e.asset_id != asset_id or not (start < t_end and t_start < end):
                continue
            used.add(i)
            matched += 1
            written_ms = run.written_at_ms[event_id]
            delays.append(written_ms - e.start_ms)
            from_reading.append(written_ms - first_showing(kind, e, times.get(asset_id, [])))
            break
    return {
        "expected": len(truth),
        "detected": len(detected),
        "matched": matched,
        "precision": matched / len(detected) if detected else 1.0,
        "recall": matched / len(truth) if truth else 1.0,
        "delay_ms_p50": statistics.median(delays) if delays else 0,
        "delay_ms_max": max(delays) if delays else 0,
        "reading_delay_ms_p50": statistics.median(from_reading) if from_reading else 0,
        "reading_delay_ms_max": max(from_reading) if from_reading else 0,
        "bound_ms": bound_ms,
        "over_bound": sum(1 for delay in from_reading if delay > bound_ms),
    }


def _blip_spikes(fleet: Fleet, spikes: Iterable[EnergySpike]) -> int:
    """Spikes that overlap a blip and no injected spike: must be zero."""
    blips = [e for e in fleet.episodes if e.kind == "blip"]
    return sum(
        1
        for s in spikes
        for b in blips
        if s.asset_id == b.asset_id and s.started_at_ms <= b.start_ms <= _end(s)
    )


def _end(spike: EnergySpike) -> int:
    """A spike's end; one still open at the end of the run has none yet."""
    return spike.ended_at_ms if spike.ended_at_ms is not None else 2**62


def _max_per_window(values: Iterable[tuple[UsageReport, int]]) -> dict[str, int]:
    """The largest value per level and window size (``asset_1h_max``, ...)."""
    by_window: dict[str, list[int]] = {}
    for u, value in values:
        by_window.setdefault(f"{u.level}_{_window(u)}", []).append(value)
    return {f"{name}_max": max(values) for name, values in sorted(by_window.items())}


def _clock_steps(event_ms: Iterable[int]) -> list[int]:
    """The usage tables' event clock after each delivery, in arrival order: the running
    maximum of ``ts - 1`` (a reading adds its energy at the last millisecond it covers)."""
    return list(itertools.accumulate((ts_ms - 1 for ts_ms in event_ms), max))


def _waits(run: InProcessRun, steps: list[int]) -> dict[str, int]:
    """Per level and window size, the largest emission wait (see the module docstring): the
    window closes with the first delivery that takes the clock to its end plus grace."""

    def waits() -> Iterator[tuple[UsageReport, int]]:
        for u in run.usage:
            due = bisect.bisect_left(steps, u.window_end_ms + run.grace_ms)
            if due < len(steps):  # else closed by no reading (not in a continuous run)
                yield u, run.written_at_ms[u.event_id] - steps[due]

    return _max_per_window(waits())


def _energy(fleet: Fleet, run: InProcessRun) -> dict[str, object]:
    """Relative error of kWh against the exact truth (from each lamp's first reading: nothing
    before it is observable): asset windows for lamps with and without a counter
    (``counter_1h``, ``estimator_1d``, ...), and room, building and site windows, which mix
    both (``room_1h``, ...). Windows an offline gap touches are left out (coverage < 1), except
    counter asset-days (``counter_1d_outage``): the delta across the outage counts in full."""
    counter = {lamp.asset_id: lamp.counter for lamp in fleet.lamps}
    members: dict[str, list[str]] = {}
    for lamp in fleet.lamps:  # the realistic fleet has one building and one room per site
        members.setdefault(lamp.site_id, []).append(lamp.asset_id)
    gaps = [(e.asset_id, e.start_ms, e.end_ms) for e in fleet.episodes if e.kind == "offline"]
    errors: dict[str, list[float]] = {}
    absolute: dict[str, list[float]] = {}
    for u in run.usage:
        start, end = u.window_start_ms, u.window_end_ms
        assets = [u.asset_id] if u.level == "asset" else members[u.site_id]
        truth_wh = sum(
            fleet.energy_wh(a, max(start, fleet.first_reading_ms[a]), end) for a in assets
        )
        if u.level == "asset":
            name = f"{'counter' if counter[u.asset_id] else 'estimator'}_{_window(u)}"
        else:
            name = f"{u.level}_{_window(u)}"
        if any(a in assets and s < end + 60_000 and start < e_ for a, s, e_ in gaps):
            if name != "counter_1d" or end > fleet.end_ms:
                continue
            name = "counter_1d_outage"  # the counter's delta across the outage counts in full
        elif truth_wh <= 0 or u.coverage < 0.98:
            continue
        error_wh = abs(u.kwh * 1000 - truth_wh)
        errors.setdefault(name, []).append(error_wh / truth_wh)
        absolute.setdefault(name, []).append(error_wh)
    out: dict[str, object] = {}
    for name, values in sorted(errors.items()):
        values.sort()
        out[name] = {
            "windows": len(values),
            "p50": values[len(values) // 2],
            "p90": values[int(len(values) * 0.9)],
            "max": values[-1],
            "within_0.5%": sum(v <= 0.005 for v in values) / len(values),
            "max_abs_wh": max(absolute[name]),
        }
    return out


def _window(u: UsageReport) -> str:
    return "1h" if u.window_ms == HOUR_MS else "1d" if u.window_ms == DAY_MS else str(u.window_ms)


def realistic_goals_met(result: dict[str, object]) -> bool:
    """Precision and recall >= 0.99 for every kind, every onset within its bound of the
    first reading that showed it, no spike from a blip, every counter asset-hour within
    0.5 % of the truth."""
    kinds = result["kinds"]
    energy = result["energy"]
    assert isinstance(kinds, dict) and isinstance(energy, dict)
    scores_ok = all(
        kinds[kind]["precision"] >= 0.99
        and kinds[kind]["recall"] >= 0.99
        and kinds[kind]["over_bound"] == 0
        for kind in KINDS
    )
    counter = energy.get("counter_1h", {"within_0.5%": 0.0})
    return scores_ok and kinds["blip_spikes"] == 0 and counter["within_0.5%"] == 1.0


__all__ = ["Episode", "Fault", "evaluate_realistic", "realistic_goals_met"]
