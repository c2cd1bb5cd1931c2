"""One asset's readings, drawn from its own RNG with its planned episodes applied.

Each asset's readings come from ``random.Random(f"{seed}/{asset_id}")``, two draws per slot in
slot order whether the reading is sent or not, so any pass over the data sees the same values.
Luminaires follow the day/night schedule (``sim.schedule``) with +-2% noise, so normal power
never exceeds ``rated_w * 1.02``, well below the spike threshold ``1.25 * rated_w``. Lux
sensors draw about 0.5 W. Readings inside an injected gap are not sent.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from domain.rules import OVER_VOLTAGE
from sim.episodes import DROPPING_KINDS, PlannedEpisode
from sim.fleet import NOMINAL_VOLTAGE_V, AssetSpec, slot_count
from sim.params import SimParams
from sim.schedule import daylight_at, scheduled_dim

STANDBY_W = 0.3
_NOISE = 0.04  # full width of the uniform noise: +-2%
SITE_SPIKE_FACTOR = 1.2  # every lamp of the site at 120 % of rated: below its own threshold
BASELINE_SPIKE_FACTOR = 2.0  # to 2.4 times the usual power at that dim level

# One reading's values: ts_ms, power_w, voltage_v, current_a, lux, on, dim_level, fault_code.
Values = tuple[int, float, float, float, float, bool, int, str | None]


def series(
    params: SimParams, asset: AssetSpec, episodes: list[PlannedEpisode]
) -> Iterator[Values | None]:
    """The readings of one asset, ``None`` for a slot inside an injected gap. Exactly two draws
    from the asset's RNG per slot, sent or not."""
    rng = random.Random(f"{params.seed}/{asset.asset_id}")
    draw = rng.random
    rated_w = asset.rated_w
    is_lamp = asset.kind == "luminaire"
    marks: dict[int, PlannedEpisode] = {}
    for planned in episodes:
        for k in range(planned.first, planned.end):
            marks[k] = planned
    ts_ms = params.start_ms + asset.phase_ms
    for k in range(slot_count(params, asset)):
        u_power, u_other = draw(), draw()
        local_ms = ts_ms + asset.utc_offset_ms
        daylight = daylight_at(local_ms)
        episode = marks.get(k)
        code = episode.code if episode is not None else None
        kind = episode.kind if episode is not None else ""
        if kind in DROPPING_KINDS:
            yield None
            ts_ms += params.interval_ms
            continue
        noise = 1.0 + _NOISE * (u_power - 0.5)
        if not is_lamp:
            on, dim_level = True, 0
            power_w = rated_w * noise
            lux = 20.0 + 780.0 * daylight * (0.9 + 0.2 * u_other)
        elif (episode is not None and code is None and kind == "") or kind == "blip":
            on, dim_level = True, 100
            power_w = rated_w * (1.6 + 0.9 * u_power)
            lux = 900.0
        elif kind == "site_spike":
            on, dim_level = True, 100
            power_w = rated_w * SITE_SPIKE_FACTOR * noise
            lux = 900.0
        else:
            dim_level = scheduled_dim(local_ms, daylight)
            on = dim_level > 0
            if kind == "flick" or (
                kind == "flicker" and episode is not None and k % 2 == episode.first % 2
            ):
                on, dim_level = False, 0
            if code == "LAMP_FAILURE" or kind == "lamp_failure" or not on:
                power_w, lux = STANDBY_W * noise, 0.0
            elif kind == "baseline_spike":
                factor = BASELINE_SPIKE_FACTOR + 0.4 * u_power
                power_w, lux = rated_w * dim_level / 100 * factor, dim_level * 6.0
            else:
                power_w, lux = rated_w * dim_level / 100 * noise, dim_level * 6.0
        voltage_v = round(NOMINAL_VOLTAGE_V * (1.0 + 0.02 * (u_other - 0.5)), 1)
        if kind == "voltage":
            off_nominal = params.voltage_band + 0.03 + 0.02 * (u_other - 0.5)
            sign = 1.0 if code == OVER_VOLTAGE else -1.0
            voltage_v = round(NOMINAL_VOLTAGE_V * (1.0 + sign * off_nominal), 1)
        elif kind == "voltage_near":
            inside = params.voltage_band - 0.03 + 0.02 * (u_other - 0.5)
            sign = 1.0 if code == OVER_VOLTAGE else -1.0
            voltage_v = round(NOMINAL_VOLTAGE_V * (1.0 + sign * inside), 1)
        power_w = round(power_w, 3)
        yield (
            ts_ms,
            power_w,
            voltage_v,
            round(power_w / voltage_v, 4),
            round(lux, 1),
            on,
            dim_level,
            code if kind == "" else None,
        )
        ts_ms += params.interval_ms
