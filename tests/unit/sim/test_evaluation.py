"""A seeded 24 h scenario of 20 sites run through the real lighting app in-process (one
shard, in-memory sinks): every kind found exactly once, nothing on near-misses, nothing on a
clean fleet."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from domain.events import EnergySpike, Fault
from domain.registry import Registry
from domain.views import command_writes
from sim.evaluation import ALL_USAGE_SCOPES, EVENT_KINDS, evaluate, onset_delays
from sim.inprocess import InProcessRun, records_of, registry_cache, run_in_process
from sim.params import ANOMALY_COUNTS, NEAR_MISS_KINDS, scenario_params
from sim.simulation import Simulation
from sim.truth import GroundTruth

# Two runs of the whole app over a day of a 20-site fleet (the scenario and the clean one):
# most of the unit run's time.
pytestmark = pytest.mark.slow

CLEAN = dict.fromkeys(
    (*ANOMALY_COUNTS, "near_miss_count"),
    0,
)


def run(sim: Simulation) -> InProcessRun:
    registry = Registry(sim.registry(), sim.site_defaults().values())
    # 11 minutes of silence after the data close every window (grace 10 minutes) before any
    # asset is 15 minutes without a reading (offline).
    return run_in_process(
        records_of(sim.readings()), registry_cache(registry), idle_close_ms=11 * 60_000
    )


@pytest.fixture(scope="module")
def scenario() -> tuple[Simulation, GroundTruth, InProcessRun]:
    sim = Simulation(scenario_params())
    return sim, sim.ground_truth(), run(sim)


def test_every_kind_is_injected_with_its_near_misses(
    scenario: tuple[Simulation, GroundTruth, InProcessRun],
) -> None:
    sim, truth, _ = scenario
    assert sim.params.sites == 20
    assert sim.params.duration_ms == 24 * 3_600_000
    kinds = Counter(e.kind if e.kind != "energy_spike" else e.code for e in truth.events)
    assert set(kinds) == {
        "lamp_failure",
        "voltage",
        "flicker",
        "offline",
        "power_above_baseline",
        "site_demand",
    }
    assert truth.faults and truth.spikes
    assert Counter(n.kind for n in truth.near_misses) == dict.fromkeys(NEAR_MISS_KINDS, 10)


def test_replay_finds_every_kind_exactly(
    scenario: tuple[Simulation, GroundTruth, InProcessRun],
) -> None:
    _, truth, result = scenario
    evaluation = evaluate(
        truth, result.faults, result.spikes, result.usage, usage_scopes=ALL_USAGE_SCOPES
    )
    report = json.loads(evaluation.to_json())
    assert set(report) == set(EVENT_KINDS)
    for kind, score in report.items():
        assert score["expected"] > 0, kind
        assert (score["precision"], score["recall"]) == (1.0, 1.0), (kind, score)
    assert evaluation.passed
    assert evaluation.usage_max_error < 1e-9
    # Per-asset episodes are found at the injected readings; a site's demand at most one
    # reading interval late (its first and last minutes are partly covered).
    for score in evaluation.scores:
        limit = 120_000 if score.kind == "energy_spike:site_demand" else 0
        assert score.start_error_ms <= limit and score.end_error_ms <= limit, score


def test_a_site_demand_spike_is_raised_within_its_rule_and_two_readings_not_the_grace(
    scenario: tuple[Simulation, GroundTruth, InProcessRun],
) -> None:
    sim, truth, result = scenario
    delays = onset_delays(truth, result.spikes, result.written_at_ms)
    site = delays["energy_spike:site_demand"]
    assert len(site) == len([e for e in truth.events if e.code == "site_demand"])
    # A site minute is judged once complete, not after the grace: the first reading that
    # shows the excess (one interval after the injected start at most), the rule's one
    # minute, the reading of the site's last lamp past its end (one interval more), plus the
    # batch the in-process run takes (1 s). At the grace it was 720 s.
    interval_ms = sim.params.interval_ms
    bound_ms = 60_000 + 2 * interval_ms + 1_000
    assert max(site) <= bound_ms, (site, bound_ms)


def test_each_fault_is_opened_once_and_cleared_once(
    scenario: tuple[Simulation, GroundTruth, InProcessRun],
) -> None:
    _, _, result = scenario
    versions = Counter((e.event_id, e.status) for e in result.events if isinstance(e, Fault))
    ids = {event_id for event_id, _ in versions}
    assert all(versions[i, "open"] == 1 and versions[i, "cleared"] == 1 for i in ids)
    # A spike is raised once when confirmed (open) and closed once when it ends; one that
    # only qualifies at its end is closed only.
    spikes = Counter((e.event_id, e.status) for e in result.events if isinstance(e, EnergySpike))
    spike_ids = {event_id for event_id, _ in spikes}
    assert all(spikes[i, "closed"] == 1 and spikes[i, "open"] <= 1 for i in spike_ids)
    site_spike = next(e for e in result.spikes if e.level == "site")
    [write] = command_writes(site_spike)
    assert write.item["pk"] == f"SPIKE#{site_spike.site_id}"
    assert str(write.item["sk"]).endswith("#SITE#site_demand")


def test_usage_gap_is_reduced_coverage(
    scenario: tuple[Simulation, GroundTruth, InProcessRun],
) -> None:
    _, truth, result = scenario
    gap = next(n for n in truth.near_misses if n.kind == "short_gap")
    hour = gap.start_ms - gap.start_ms % 3_600_000
    [report] = [
        u
        for u in result.usage
        if u.level == "asset"
        and u.asset_id == gap.asset_id
        and u.window_start_ms == hour
        and u.window_ms == 3_600_000
    ]
    assert report.coverage < 1.0


def test_a_clean_fleet_gives_no_events() -> None:
    sim = Simulation(scenario_params(**CLEAN, interval_ms=300_000))
    truth = sim.ground_truth()
    assert not (truth.faults or truth.spikes or truth.events or truth.near_misses)
    result = run(sim)
    # Assets go offline once the data ends (the idle close runs past it): outside the scenario.
    end_ms = sim.params.start_ms + sim.params.duration_ms
    assert [
        e
        for e in result.events
        if (isinstance(e, Fault) and e.opened_at_ms < end_ms) or isinstance(e, EnergySpike)
    ] == []
    assert result.usage


def test_offline_after_the_data_ends_is_outside_the_scenario(
    scenario: tuple[Simulation, GroundTruth, InProcessRun],
) -> None:
    sim, truth, result = scenario
    end_ms = sim.params.start_ms + sim.params.duration_ms
    late = [
        Fault(*(a.site_id, a.building_id, a.room_id, a.asset_id), "offline", end_ms + 1)
        for a in sim.assets[:3]
    ]
    evaluation = evaluate(truth, [*result.faults, *late], result.spikes, result.usage)
    assert evaluation.score("offline").precision == 1.0
