"""Deterministic telemetry for a fleet of sites, with injected faults and spikes and the exact
ground truth the rules must find: ``Simulation`` ties the parts together.

Everything follows from ``SimParams`` (``seed`` included): the fleet (``sim.fleet``) and the
episode plan (``sim.episodes``) come from one ``random.Random(seed)``; each asset's readings
(``sim.readings``) come from its own ``random.Random(f"{seed}/{asset_id}")`` drawn in reading
order, so any pass over the data (``records``, ``readings``, ``ground_truth``) sees the same
values. The ground truth (``sim.truth``) and the site thresholds (``sim.thresholds``) are
computed from the readings actually sent.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from domain.registry import Asset, SiteDefaults, limits_of
from domain.rules import Limits
from domain.telemetry import Reading, encode_reading
from sim.episodes import DROPPING_KINDS, PlannedEpisode, plan_episodes
from sim.fleet import AssetSpec, build_fleet, registry_asset, slot_count
from sim.params import SimParams
from sim.readings import Values, series
from sim.thresholds import site_defaults
from sim.truth import GroundTruth, ground_truth


class Simulation:
    """A planned simulation. Construction builds the fleet and places the episodes; data is
    generated lazily by ``records``/``readings`` and can be generated any number of times."""

    def __init__(self, params: SimParams) -> None:
        if not 0 < params.interval_ms <= params.duration_ms:
            raise ValueError("need 0 < interval_ms <= duration_ms")
        self.params = params
        rng = random.Random(params.seed)
        self.assets: list[AssetSpec] = build_fleet(params, rng)
        self.asset_by_id: dict[str, AssetSpec] = {a.asset_id: a for a in self.assets}
        self._episodes: dict[str, list[PlannedEpisode]]
        self._site_spikes: dict[str, tuple[int, int]]
        self._episodes, self._site_spikes = plan_episodes(params, self.assets, rng)
        self._site_defaults: dict[str, SiteDefaults] | None = None
        self._sent_cache: dict[str, list[Values]] = {}
        # Ties in time are broken by registry order; phase < interval keeps global time order.
        self._order = sorted(self.assets, key=lambda a: a.phase_ms)

    def reading_count(self, asset: AssetSpec) -> int:
        """How many readings ``asset`` sends in the period (injected gaps excluded)."""
        dropped = sum(
            e.end - e.first
            for e in self._episodes.get(asset.asset_id, [])
            if e.kind in DROPPING_KINDS
        )
        return slot_count(self.params, asset) - dropped

    def registry(self) -> list[Asset]:
        """The fleet as registry assets (lux sensors are ``sensor``s)."""
        return [registry_asset(a) for a in self.assets]

    def registry_asset(self, asset: AssetSpec) -> Asset:
        """``asset`` as a registry asset."""
        return registry_asset(asset)

    def site_defaults(self) -> dict[str, SiteDefaults]:
        """Per-site thresholds matching the scenario (``sim.thresholds.site_defaults``); raises
        ``ValueError`` if an injected site spike is not clearly above its threshold."""
        if self._site_defaults is None:
            self._site_defaults = site_defaults(
                self.params, self.assets, self._sent, self._site_spikes
            )
        return self._site_defaults

    def limits(self, asset_id: str) -> Limits:
        """``registry.limits_of`` the asset with its site's defaults."""
        asset = self.asset_by_id[asset_id]
        return limits_of(registry_asset(asset), self.site_defaults()[asset.site_id])

    def records(self) -> Iterator[tuple[str, bytes]]:
        """``(partition_key = site_id, JSON telemetry)`` for every reading, in time order."""
        for reading in self.readings():
            yield reading.site_id, encode_reading(reading)

    def readings(self) -> Iterator[Reading]:
        """Every reading, in time order (``records`` is them encoded)."""
        for asset, values in self._values_in_time_order():
            ts_ms, power_w, voltage_v, current_a, lux, on, dim_level, code = values
            yield Reading(
                asset.site_id,
                asset.building_id,
                asset.room_id,
                asset.asset_id,
                ts_ms,
                power_w,
                voltage_v,
                current_a,
                lux,
                on,
                dim_level,
                code,
            )

    def ground_truth(self) -> GroundTruth:
        """Faults, spikes, events, near-misses and hourly usage, computed from the generated
        values (``sim.truth.ground_truth``)."""
        return ground_truth(self.params, self.assets, self._episodes, self._site_spikes, self._sent)

    def _values_in_time_order(self) -> Iterator[tuple[AssetSpec, Values]]:
        all_series = [(asset, self._series(asset)) for asset in self._order]
        rounds = max(slot_count(self.params, asset) for asset in self.assets)
        for _ in range(rounds):
            for asset, values in all_series:
                # Assets with a late phase have one slot fewer; their series just ends.
                # A slot inside an injected gap is None: nothing is sent.
                value = next(values, None)
                if value is not None:
                    yield asset, value

    def _series(self, asset: AssetSpec) -> Iterator[Values | None]:
        return series(self.params, asset, self._episodes.get(asset.asset_id, []))

    def _sent(self, asset: AssetSpec) -> list[Values]:
        """The readings ``asset`` sends (gaps left out), generated once."""
        sent = self._sent_cache.get(asset.asset_id)
        if sent is None:
            sent = [v for v in self._series(asset) if v is not None]
            self._sent_cache[asset.asset_id] = sent
        return sent
