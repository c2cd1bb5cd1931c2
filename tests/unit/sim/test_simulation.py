"""The simulator: determinism, shape of the data, and ground truth reproduced by the rules."""

from __future__ import annotations

import itertools
from pathlib import Path

import msgspec
import pytest

from domain.events import EnergySpike, Fault
from domain.rules import AssetRuleState, step
from domain.telemetry import decode_reading
from domain.usage import usage_since_last
from sim.malformed import MALFORMED_SAMPLES, with_malformed
from sim.params import SimParams
from sim.simulation import Simulation
from sim.thresholds import limits_for, spike_threshold_w
from sim.truth import (
    FaultTruth,
    GroundTruth,
    SpikeTruth,
    UsageTruth,
    decode_ground_truth,
    encode_ground_truth,
)

PARAMS = SimParams(
    sites=2,
    buildings_per_site=2,
    rooms_per_building=2,
    lamps_per_room=3,
    sensors_per_room=1,
    duration_ms=6 * 3_600_000,
    seed=42,
    fault_count=6,
    spike_count=6,
)
END_MS = PARAMS.start_ms + PARAMS.duration_ms


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return Simulation(PARAMS)


@pytest.fixture(scope="module")
def truth(sim: Simulation) -> GroundTruth:
    return sim.ground_truth()


def test_same_seed_same_bytes_other_seed_other_bytes(sim: Simulation) -> None:
    records = list(sim.records())
    assert list(Simulation(PARAMS).records()) == records
    assert list(sim.records()) == records
    other = SimParams(**{**_fields(PARAMS), "seed": 43})
    assert list(Simulation(other).records()) != records


def test_fleet_shape_and_registry(sim: Simulation) -> None:
    assert len(sim.assets) == 2 * 2 * 2 * (3 + 1)
    assert [a.asset_id for a in sim.assets[:4]] == [
        "site-0001-b01-r01-l01",
        "site-0001-b01-r01-l02",
        "site-0001-b01-r01-l03",
        "site-0001-b01-r01-s01",
    ]
    for asset in sim.assets:
        assert sim.asset_by_id[asset.asset_id] is asset
        assert 0 <= asset.phase_ms < PARAMS.interval_ms
        if asset.kind == "luminaire":
            assert 20.0 <= asset.rated_w <= 150.0
        else:
            assert asset.rated_w == 0.5
        assert spike_threshold_w(asset) == 1.25 * asset.rated_w
        assert limits_for(asset).spike_threshold_w == spike_threshold_w(asset)


def test_records_are_time_ordered_in_period_and_keyed_by_site(sim: Simulation) -> None:
    readings = [decode_reading(data, arrival_ms=END_MS) for _, data in sim.records()]
    assert readings == list(sim.readings())
    assert [key for key, _ in sim.records()] == [r.site_id for r in readings]
    times = [r.ts_ms for r in readings]
    assert times == sorted(times)
    assert PARAMS.start_ms <= times[0]
    assert times[-1] < PARAMS.start_ms + PARAMS.duration_ms
    per_asset: dict[str, list[int]] = {}
    for r in readings:
        per_asset.setdefault(r.asset_id, []).append(r.ts_ms)
    for asset in sim.assets:
        ts = per_asset[asset.asset_id]
        assert len(ts) == sim.reading_count(asset)
        assert ts[0] == PARAMS.start_ms + asset.phase_ms
        assert all(b - a == PARAMS.interval_ms for a, b in itertools.pairwise(ts))
        assert ts[-1] + PARAMS.interval_ms >= PARAMS.start_ms + PARAMS.duration_ms


def test_injected_episodes_avoid_edges_and_each_other(sim: Simulation, truth: GroundTruth) -> None:
    assert len(truth.faults) == PARAMS.fault_count
    assert len(truth.spikes) == PARAMS.spike_count
    spans: dict[str, list[tuple[int, int]]] = {}
    for fault in truth.faults:
        spans.setdefault(fault.asset_id, []).append((fault.start_ms, fault.end_ms))
    for spike in truth.spikes:
        assert sim.asset_by_id[spike.asset_id].kind == "luminaire"
        assert spike.end_ms - spike.start_ms >= 2 * PARAMS.interval_ms
        spans.setdefault(spike.asset_id, []).append((spike.start_ms, spike.end_ms))
    for asset_id, asset_spans in spans.items():
        asset = sim.asset_by_id[asset_id]
        first_ms = PARAMS.start_ms + asset.phase_ms
        last_ms = first_ms + (sim.reading_count(asset) - 1) * PARAMS.interval_ms
        asset_spans.sort()
        for start_ms, end_ms in asset_spans:
            assert first_ms < start_ms < end_ms <= last_ms
        for (_, end_ms), (next_start_ms, _) in itertools.pairwise(asset_spans):
            assert end_ms < next_start_ms  # at least one clean reading in between


def test_normal_power_never_crosses_the_threshold(sim: Simulation, truth: GroundTruth) -> None:
    spiking = {(s.asset_id, s.start_ms, s.end_ms) for s in truth.spikes}
    for r in sim.readings():
        limit = spike_threshold_w(sim.asset_by_id[r.asset_id])
        in_spike = any(a == r.asset_id and s <= r.ts_ms < e for a, s, e in spiking)
        assert (r.power_w > limit) == in_spike
        if in_spike:
            rated_w = sim.asset_by_id[r.asset_id].rated_w
            assert 1.6 * rated_w <= r.power_w <= 2.5 * rated_w
        assert 0 <= r.dim_level <= 100
        assert r.power_w >= 0


def test_replaying_through_the_rules_reproduces_the_ground_truth(
    sim: Simulation, truth: GroundTruth
) -> None:
    states: dict[str, AssetRuleState] = {}
    faults: list[FaultTruth] = []
    opened = 0
    spikes: list[SpikeTruth] = []
    wh: dict[tuple[str, int], float] = {}
    covered: dict[tuple[str, int], int] = {}
    for _, data in sim.records():
        reading = decode_reading(data, arrival_ms=END_MS)
        asset = sim.asset_by_id[reading.asset_id]
        limits = limits_for(asset)
        state = states.get(reading.asset_id)
        for window_start_ms, contribution_wh, covered_ms in usage_since_last(
            state, reading, limits
        ):
            key = (reading.asset_id, window_start_ms)
            wh[key] = wh.get(key, 0.0) + contribution_wh
            covered[key] = covered.get(key, 0) + covered_ms
        states[reading.asset_id], events = step(state, reading, limits)
        for event in events:
            if isinstance(event, Fault) and event.status == "open":
                opened += 1
            elif isinstance(event, Fault):
                assert event.cleared_at_ms is not None
                faults.append(
                    FaultTruth(
                        event.site_id,
                        event.building_id,
                        event.room_id,
                        event.asset_id,
                        event.code,
                        event.opened_at_ms,
                        event.cleared_at_ms,
                    )
                )
            elif isinstance(event, EnergySpike) and event.status == "closed":
                spikes.append(
                    SpikeTruth(
                        event.site_id,
                        event.building_id,
                        event.room_id,
                        event.asset_id,
                        event.started_at_ms,
                        event.ended_at_ms,
                        event.peak_w,
                        event.threshold_w,
                        event.excess_wh,
                    )
                )
    # A cleared fault stays in its slot for the cool-down; none is open, no spike either.
    assert all(
        (s.fault is None or s.fault.cleared_at_ms is not None) and s.spike is None
        for s in states.values()
    )
    assert opened == len(truth.faults)
    assert sorted(faults, key=_key) == sorted(truth.faults, key=_key)
    assert sorted(spikes, key=_key) == sorted(truth.spikes, key=_key)
    assets = sim.asset_by_id
    usage = [
        UsageTruth(
            assets[a].site_id,
            assets[a].building_id,
            assets[a].room_id,
            a,
            start,
            wh[a, start],
            covered[a, start],
        )
        for a, start in wh
    ]
    # The simulator integrates the trapezoid on its own, in another order: equal to 1e-12.
    ours, theirs = sorted(usage, key=_key), sorted(truth.usage, key=_key)
    assert [msgspec.structs.replace(u, wh=0.0) for u in ours] == [
        msgspec.structs.replace(u, wh=0.0) for u in theirs
    ]
    assert all(
        abs(u.wh - t.wh) <= 1e-12 * max(1.0, t.wh) for u, t in zip(ours, theirs, strict=True)
    )
    # Six hours from an hour boundary: six hourly windows per asset, none invented.
    assert len(truth.usage) == len(sim.assets) * 6


def test_ground_truth_round_trips_through_a_json_file(tmp_path: Path, truth: GroundTruth) -> None:
    path = tmp_path / "truth.json"
    path.write_bytes(encode_ground_truth(truth))
    assert decode_ground_truth(path.read_bytes()) == truth


def test_cannot_place_more_episodes_than_fit() -> None:
    tiny = SimParams(
        sites=1,
        buildings_per_site=1,
        rooms_per_building=1,
        lamps_per_room=1,
        sensors_per_room=0,
        duration_ms=4 * 60_000,
        fault_count=0,
        spike_count=2,
    )
    with pytest.raises(ValueError, match="cannot place"):
        Simulation(tiny)


def _key(item: FaultTruth | SpikeTruth | UsageTruth) -> tuple[str, int]:
    if isinstance(item, UsageTruth):
        return item.asset_id, item.window_start_ms
    return item.asset_id, item.start_ms


def _fields(params: SimParams) -> dict[str, int]:
    return {name: getattr(params, name) for name in params.__struct_fields__}


def test_with_malformed_spreads_every_sample_once_among_the_records() -> None:
    records = [(f"site-{i % 3}", f"r{i}".encode()) for i in range(1_200)]
    mixed = list(with_malformed(records, every=500))
    samples = [data for _, data in mixed if data in MALFORMED_SAMPLES.values()]
    assert sorted(samples) == sorted(MALFORMED_SAMPLES.values())
    assert [r for r in mixed if r[1] not in MALFORMED_SAMPLES.values()] == records
    assert mixed[500] == (records[499][0], next(iter(MALFORMED_SAMPLES.values())))
