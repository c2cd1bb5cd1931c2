"""What a counter asset's energy needs to remember between readings (``AssetRuleState.energy``):
its steady run of readings and the step interval still open at a window bound.

Plain data shared by the energy model (``domain.energy``, which computes them) and the rule
state (``domain.rules.limits``, which keeps them): kept apart from both so that neither
imports the other's module for them. Snapshots store them array-like, by position.
"""

from __future__ import annotations

import msgspec


class PowerRun(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """The readings of an asset since its power last stepped: first reading's time, counter,
    on/off, dim level and power; sum, sum of squares and number of the readings' powers."""

    start_ms: int
    start_wh: float
    on: bool
    dim_level: int
    first_w: float
    sum_w: float
    sum_sq_w: float
    readings: int


class OpenSplit(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A ``step`` interval cut at ``bound_ms``: its parameters and the energy of
    ``[t1_ms, bound_ms)`` given to the window before the bound so far."""

    t1_ms: int
    t2_ms: int
    total_wh: float
    before_w: float
    bound_ms: int
    applied_wh: float


class EnergyTrack(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """What a counter asset's energy needs between readings (``AssetRuleState.energy``)."""

    run: PowerRun
    split: OpenSplit | None = None
