"""The rules' parameters (``Limits``) and what they remember per asset (``AssetRuleState``)."""

from __future__ import annotations

import msgspec

from core.clock import DAY_MS
from domain.energy_track import EnergyTrack
from domain.telemetry import shared_id

DEFAULT_MAX_GAP_MS = 300_000
DEFAULT_WINDOW_MS = 3_600_000
DEFAULT_COOLDOWN_MS = 600_000
DEFAULT_RETENTION_MS = 7 * DAY_MS
DEFAULT_SPIKE_HOLD_MS = 60_000
"""How long after an asset's last reading its power may be taken as unchanged to confirm a spike
on the event clock: more than a healthy luminaire's reporting interval (10-40 s in the fleets
seen), so a device that reports on time is confirmed on the clock, and short enough that a
device silent for longer, which has missed a report (on its way, perhaps saying the power
fell, or never coming), is left to its next reading."""
SPIKE_RULE = "power_above_threshold"
BASELINE_RULE = "power_above_baseline"

# Fault codes of the derived faults (device codes are whatever the device sends).
LAMP_FAILURE = "lamp_failure"
OVER_VOLTAGE = "over_voltage"
UNDER_VOLTAGE = "under_voltage"
FLICKER = "flicker"
OFFLINE = "offline"
DERIVED_FAULT_CODES = frozenset({LAMP_FAILURE, OVER_VOLTAGE, UNDER_VOLTAGE, FLICKER, OFFLINE})
EXPIRED = "expired"
"""``Fault.reason`` of a fault closed because its asset's state was retired."""


class Limits(msgspec.Struct, frozen=True, gc=False):
    """Rule parameters of one asset (``domain.registry.limits_of`` builds them from the registry).

    Every rule beyond device fault codes and the rated-power spike is off unless its parameter
    is set, so ``Limits(threshold)`` keeps the original two rules.

    - spikes: ``spike_threshold_w`` (rated power times tolerance). Every reading is compared
      with the threshold that applies at its own dim level; an episode is reported only if at
      least ``min_spike_readings`` readings were above and it lasted at least ``min_spike_ms``
      (first reading above to first reading back), so one-reading blips never fire. Between
      readings the power is held at the last reading's (sample and hold), which the shard's
      event clock may extend by at most ``spike_hold_ms`` (and ``max_gap_ms``) past the last
      reading to confirm an episode before its next reading (``domain.rules.spikes``).
    - baseline: with ``baseline_factor``, an EWMA of power per (``dim_level`` bucket of
      ``dim_bucket_pct``), learnt from healthy readings while on, gives a second threshold
      ``max(ewma * factor, ewma + baseline_min_excess_w)`` once ``baseline_warmup`` readings
      were learnt; the lower of the two thresholds applies.
    - lamp failure: with ``lamp_current_fraction`` and ``rated_w``: on, ``dim_level >=
      lamp_min_dim_pct`` and ``current_a`` below that fraction of the expected current
      ``rated_w * dim_level / 100 / nominal_voltage_v``.
    - voltage: with ``voltage_band`` (a fraction): outside ``nominal_voltage_v * (1 +- band)``.
    - flicker: with ``flicker_toggles``: at least that many *short cycles* in the last
      ``flicker_window_ms`` (``(ts - window, ts]``). A short cycle is an on-period shorter than
      ``flicker_max_on_ms`` (first reading on to first reading off), i.e. shorter than any
      occupancy sensor's hold time: scheduled and occupancy switching never make one.
    - offline: with ``offline_after_ms``: no reading for that long.
    - cool-down: a fault that re-opens within ``cooldown_ms`` of clearing continues the same
      fault (same identity, ``occurrences + 1``).
    - energy (``domain.energy``): a power reading is accurate to ``power_accuracy`` (relative
      standard deviation), an energy counter to ``counter_resolution_wh``; they weigh the two
      estimates of a run's power where a window bound cuts a power step.
    - retention: an asset without readings for ``retention_ms`` of event time is forgotten,
      its open faults cleared with reason ``expired``.
    """

    spike_threshold_w: float
    max_gap_ms: int = DEFAULT_MAX_GAP_MS
    min_spike_ms: int = 0
    baseline_factor: float | None = None
    baseline_min_excess_w: float = 2.0
    baseline_alpha: float = 0.1
    baseline_warmup: int = 10
    dim_bucket_pct: int = 5
    rated_w: float | None = None
    lamp_current_fraction: float | None = None
    lamp_min_dim_pct: int = 10
    nominal_voltage_v: float = 230.0
    voltage_band: float | None = None
    flicker_toggles: int | None = None
    flicker_window_ms: int = 600_000
    offline_after_ms: int | None = None
    min_spike_readings: int = 2
    flicker_max_on_ms: int = 90_000
    cooldown_ms: int = DEFAULT_COOLDOWN_MS
    retention_ms: int = DEFAULT_RETENTION_MS
    power_accuracy: float = 0.01
    counter_resolution_wh: float = 0.001
    spike_hold_ms: int = DEFAULT_SPIKE_HOLD_MS


class OpenFault(msgspec.Struct, frozen=True, gc=False):
    """A fault slot: open while ``cleared_at_ms`` is None, then kept for the cool-down so a
    re-opening continues it."""

    code: str
    opened_at_ms: int
    cleared_at_ms: int | None = None
    occurrences: int = 1
    suppressed: bool = False


class OpenSpike(msgspec.Struct, frozen=True, gc=False):
    """A spike in progress. ``threshold_w`` and ``rule`` are those of its first reading;
    ``last_threshold_w`` is the threshold at the latest reading (excess energy of the interval
    that follows it is measured against it); ``readings`` counts readings above;
    ``confirmed``: its open ``EnergySpike`` was raised."""

    started_at_ms: int
    peak_w: float
    excess_wh: float
    threshold_w: float
    rule: str = SPIKE_RULE
    readings: int = 1
    last_threshold_w: float | None = None
    confirmed: bool = False


class WrittenState(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """What the command model holds as an asset's current state: the fields of the last
    ``AssetState`` written for it that the deadband compares (``domain.deadband``). Kept in the
    snapshotted rule state, not in the worker, so a shard restored from a snapshot and fed the
    records after it decides exactly as a run that never stopped. Stored by position: the ids
    are the rule state's own."""

    ts_ms: int
    power_w: float
    on: bool
    dim_level: int
    fault_code: str | None = None
    phased: bool = True
    """The next refresh falls due at the asset's phase (False: a full period after this write,
    which was a change). Last, with a default: snapshots written before it load as True."""


class Baseline(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A learnt baseline: dim bucket -> ``(ewma_w, readings learnt)``, read like the dict it
    replaces (``get``, ``[bucket]``, ``items``), held as one flat tuple ``(bucket, ewma_w,
    count, ...)`` in learning order. An asset has one baseline, usually of one or two buckets:
    a dict of one bucket and its pair cost ~360 bytes, this ~110. A lookup is a scan, over at
    most the 100 / ``dim_bucket_pct`` + 1 buckets of a dim range.

    Stored as an array of that one tuple (``[[bucket, ewma_w, count, ...]]``); the rule state
    reads both that and the map a dict was stored as (``AssetRuleState.baseline``)."""

    learnt: tuple[int | float, ...] = ()

    def get(self, bucket: int) -> tuple[float, int] | None:
        """``(ewma_w, count)`` of ``bucket``, or None when it has learnt nothing."""
        learnt = self.learnt
        for i in range(0, len(learnt), 3):
            if learnt[i] == bucket:
                return learnt[i + 1], int(learnt[i + 2])
        return None

    def __getitem__(self, bucket: int) -> tuple[float, int]:
        found = self.get(bucket)
        if found is None:
            raise KeyError(bucket)
        return found

    def __len__(self) -> int:
        return len(self.learnt) // 3

    def items(self) -> list[tuple[int, tuple[float, int]]]:
        """``(bucket, (ewma_w, count))`` in learning order."""
        learnt = self.learnt
        return [
            (int(learnt[i]), (learnt[i + 1], int(learnt[i + 2]))) for i in range(0, len(learnt), 3)
        ]

    def with_bucket(self, bucket: int, ewma_w: float, count: int) -> Baseline:
        """A copy with ``bucket`` learnt as ``(ewma_w, count)`` (states are values)."""
        learnt = self.learnt
        for i in range(0, len(learnt), 3):
            if learnt[i] == bucket:
                return Baseline((*learnt[:i], bucket, ewma_w, count, *learnt[i + 3 :]))
        return Baseline((*learnt, bucket, ewma_w, count))


def baseline_of(learnt: Baseline | dict[int, tuple[float, int]]) -> Baseline:
    """The ``Baseline`` of a stored map (a rule state snapshotted before ``Baseline``), in the
    map's order; a ``Baseline`` as it is."""
    if isinstance(learnt, Baseline):
        return learnt
    return Baseline(
        tuple(v for bucket, (ewma_w, count) in learnt.items() for v in (bucket, ewma_w, count))
    )


class AssetRuleState(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """Everything the rules remember about one asset; msgpack/JSON serialisable for snapshots.

    Fields after ``spike`` have defaults so snapshots written before they existed still load.
    The ids are those of the last reading, for events raised without one (``offline_check``).
    ``baseline`` maps a dim bucket to ``(ewma_w, readings learnt)``: a ``Baseline`` once learnt
    (a dict while empty, and as read from a snapshot written before ``Baseline``, until the
    asset learns again: both answer ``get`` and ``[bucket]`` alike). ``on_since_ms``: first
    reading of the current on-period (None: off, or on since before the asset was first seen);
    ``short_cycles_ms``: ends of recent short on-periods (flicker). ``last_energy_wh``: the
    counter of the last reading (schema v2), for counter-delta energy; ``energy``: the steady
    run and open split a counter asset's energy needs (``domain.energy``). ``written``: the
    current state last written to the command model (``domain.deadband.remember``; None:
    nothing written since the asset was first seen or its state retired).
    """

    last_ts_ms: int
    last_power_w: float
    fault: OpenFault | None = None
    spike: OpenSpike | None = None
    site_id: str = ""
    building_id: str = ""
    room_id: str = ""
    asset_id: str = ""
    last_on: bool | None = None
    lamp: OpenFault | None = None
    voltage: OpenFault | None = None
    flicker: OpenFault | None = None
    offline: OpenFault | None = None
    baseline: Baseline | dict[int, tuple[float, int]] = msgspec.field(default_factory=dict)
    on_since_ms: int | None = None
    short_cycles_ms: tuple[int, ...] = ()
    last_energy_wh: float | None = None
    energy: EnergyTrack | None = None
    written: WrittenState | None = None

    def shared_copy(self) -> AssetRuleState:
        """This state with the readings' shared copies of its ids (`shared_id`): a state read
        back from a snapshot holds its own copies, a running shard's the readings' ones."""
        return msgspec.structs.replace(
            self,
            site_id=shared_id(self.site_id),
            building_id=shared_id(self.building_id),
            room_id=shared_id(self.room_id),
            asset_id=shared_id(self.asset_id),
        )
