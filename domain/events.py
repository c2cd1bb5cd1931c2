"""Domain events. Each has a deterministic ``event_id``: a pure function of the fields that
identify it (never of time of processing or randomness), so re-processing after a crash
produces the same id and a store overwrites instead of duplicating.

Structs are tagged (``type`` field) so ``msgspec`` can encode and decode ``DomainEvent``.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import msgspec

_id_encoder = msgspec.json.Encoder()


def make_event_id(*parts: str | int) -> str:
    """32 hex chars of BLAKE2b over the JSON array of ``parts``.

    JSON framing keeps ``("a:b", "c")`` and ``("a", "b:c")`` apart; the hash keeps ids short
    and free of separator characters. Stable across processes and Python versions.
    """
    return hashlib.blake2b(_id_encoder.encode(parts), digest_size=16).hexdigest()


class Fault(msgspec.Struct, frozen=True, gc=False, tag_field="type", tag="fault"):
    """A fault episode of one asset. ``status="open"`` when it starts; the ``"cleared"``
    version carries ``cleared_at_ms`` and has the same ``event_id``, so it replaces the open one.

    ``occurrences``: a fault that re-opens within the cool-down of its clearing continues the
    same episode (same ``event_id``), re-opened with ``occurrences + 1`` (``revision`` orders
    the versions). ``suppressed``: the site's flood guard kept this fault out of the operators'
    view (a site-level ``Fault`` of the same code stands for the flood). ``level="site"`` is that
    flood event: ``building_id``, ``room_id`` and ``asset_id`` are empty, ``occurrences`` counts
    the faults it suppressed. ``reason`` says why a fault was cleared without a reading
    (``expired``: the asset's state was retired after its retention).
    """

    site_id: str
    building_id: str
    room_id: str
    asset_id: str
    code: str
    opened_at_ms: int
    status: Literal["open", "cleared"] = "open"
    cleared_at_ms: int | None = None
    occurrences: int = 1
    suppressed: bool = False
    level: Literal["asset", "site"] = "asset"
    reason: str | None = None

    @property
    def event_id(self) -> str:
        """Identity: asset (or, for ``level="site"``, the site), code and ``opened_at_ms``;
        independent of ``status`` and ``occurrences``."""
        if self.level == "asset":
            return make_event_id("fault", self.asset_id, self.code, self.opened_at_ms)
        return make_event_id("fault", self.level, self.site_id, self.code, self.opened_at_ms)

    @property
    def revision(self) -> int:
        """Orders the versions of one fault: open 1, cleared 2, re-opened 3, cleared 4, ...
        (a flood event's count only grows, so its later versions rank higher too)."""
        return 2 * self.occurrences - (1 if self.status == "open" else 0)


class EnergySpike(msgspec.Struct, frozen=True, gc=False, tag_field="type", tag="energy_spike"):
    """A spike episode: power above ``threshold_w`` from ``started_at_ms`` (first reading
    above). ``status="open"`` when the rule confirms it, while it lasts (``ended_at_ms`` None,
    ``peak_w`` and ``excess_wh`` so far); the ``"closed"`` version has the same ``event_id``,
    ends at ``ended_at_ms`` (first reading back at or below) with the episode's peak and
    ``excess_wh`` (energy above the threshold, integrated like usage: left rectangle, gaps
    contribute nothing), and replaces the open one (``revision``). An episode that ends before
    it could be confirmed while open has only its closed version.

    ``rule`` names the rule that fired (``domain.rules.SPIKE_RULE``, ``BASELINE_RULE``,
    ``domain.site.SITE_DEMAND_RULE``). ``level="site"`` is a site's demand spike: its
    ``building_id``, ``room_id`` and ``asset_id`` are empty, times are minute bounds.
    """

    site_id: str
    building_id: str
    room_id: str
    asset_id: str
    started_at_ms: int
    ended_at_ms: int | None
    peak_w: float
    threshold_w: float
    excess_wh: float
    rule: str
    level: Literal["asset", "site"] = "asset"
    status: Literal["open", "closed"] = "closed"

    @property
    def event_id(self) -> str:
        """Identity: asset (or, for ``level="site"``, the site), rule and ``started_at_ms``;
        independent of ``status``."""
        if self.level == "asset":
            return make_event_id("energy_spike", self.asset_id, self.rule, self.started_at_ms)
        return make_event_id(
            "energy_spike", self.level, self.site_id, self.rule, self.started_at_ms
        )

    @property
    def revision(self) -> int:
        """Orders the versions of one spike: open 1, closed 2."""
        return 1 if self.status == "open" else 2


UsageLevel = Literal["asset", "room", "building", "site"]


class UsageReport(msgspec.Struct, frozen=True, gc=False, tag_field="type", tag="usage_report"):
    """Energy of one asset, room, building or site (``level``) in the window
    ``[window_start_ms, window_end_ms)`` (hourly or daily: ``window_ms``).

    Ids below the level are empty (a room's report has ``asset_id=""``).
    ``covered_ms`` is the asset-time backed by consecutive readings (gaps excluded), summed over
    the assets of the scope; ``coverage = covered_ms / (assets * window_ms)``, so an asset that
    is silent shows as reduced coverage, never as energy that was silently zero.
    """

    site_id: str
    building_id: str
    room_id: str
    asset_id: str
    window_start_ms: int
    window_end_ms: int
    kwh: float
    covered_ms: int
    coverage: float
    level: UsageLevel = "asset"

    @property
    def window_ms(self) -> int:
        return self.window_end_ms - self.window_start_ms

    @property
    def event_id(self) -> str:
        """Identity: level, the scope's ids and window bounds (the bounds carry the window size)."""
        if self.level == "asset":
            return make_event_id(
                "usage_report", self.level, self.asset_id, self.window_start_ms, self.window_end_ms
            )
        return make_event_id(
            "usage_report",
            self.level,
            self.site_id,
            self.building_id,
            self.room_id,
            self.window_start_ms,
            self.window_end_ms,
        )


class AssetState(msgspec.Struct, frozen=True, gc=False, tag_field="type", tag="asset_state"):
    """The current state of an asset as of reading time ``ts_ms``."""

    site_id: str
    building_id: str
    room_id: str
    asset_id: str
    ts_ms: int
    power_w: float
    on: bool
    dim_level: int
    fault_code: str | None = None

    @property
    def event_id(self) -> str:
        """Identity: asset and ``ts_ms``."""
        return make_event_id("asset_state", self.asset_id, self.ts_ms)


DomainEvent = Fault | EnergySpike | UsageReport | AssetState
