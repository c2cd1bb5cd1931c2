"""Registry admission: the last check a reading passes before any agent sees it, after decoding
and the DR gate (`lighting.agents.reading_decoder`). It decides who a reading may speak for.

- **A registered asset** is where the registry says it is: a reading whose ``site_id``,
  ``building_id`` or ``room_id`` differs from the registered ones is refused with the reason
  ``identity_mismatch: <field>`` (the first field that differs, in that order) and changes
  nothing. Moving an asset is a registry import, never something a device says.
- **An unknown asset** (not in the registry) is processed with its site's defaults and is
  bound, while it is tracked, to the ids of its first admitted reading: a later reading of it
  under other ids is ``identity_mismatch`` too. At most ``site_cap`` unknown assets are tracked
  per site, counted together for every site the registry does not know (a device inventing
  sites gets one site's allowance, not one per invented site): a further one is refused as
  ``unknown_asset_site_cap``. At most ``fleet_cap`` are tracked in all: a further one is
  refused as ``unknown_asset``. An unknown asset without a reading for ``ttl_ms`` of event
  time gives up its place to the next newcomer of its site (the site cap) or of the fleet.
  ``None`` for a cap: no such cap.

Every refusal is a `ValueError` whose message is the reason (the engine dead-letters the
record with it and its original bytes) and is counted in `refused` by reason code. The
reason codes are stable: alarms and queries match them.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from typing import Final, NamedTuple

from core.clock import DAY_MS
from domain.registry import Asset
from domain.telemetry import Reading

IDENTITY_MISMATCH: Final = "identity_mismatch"
"""A reading's site, building or room differs from its asset's registered (or bound) ones."""
UNKNOWN_ASSET: Final = "unknown_asset"
"""A reading of a new unknown asset while the fleet's allowance of unknown assets is full."""
UNKNOWN_ASSET_SITE_CAP: Final = "unknown_asset_site_cap"
"""A reading of a new unknown asset while its site's allowance of unknown assets is full."""
ADMISSION_REASONS: Final = frozenset({IDENTITY_MISMATCH, UNKNOWN_ASSET, UNKNOWN_ASSET_SITE_CAP})
UNKNOWN_ASSET_TTL_MS: Final = DAY_MS
"""An unknown asset without readings for this long (event time) gives up its place."""
UNREGISTERED_SITES: Final = ""
"""The one allowance that every site unknown to the registry shares."""
PLACE_FIELDS: Final = ("site_id", "building_id", "room_id")


class AdmissionError(ValueError):
    """A reading registry admission refuses; ``str(exc) == reason``, ``code`` its stable
    part (one of ``ADMISSION_REASONS``)."""

    def __init__(self, code: str, detail: str = "") -> None:
        reason = f"{code}: {detail}" if detail else code
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Place(NamedTuple):
    """Where an asset sits: site, building, room."""

    site_id: str
    building_id: str
    room_id: str


def place_of(item: Reading | Asset) -> Place:
    return Place(item.site_id, item.building_id, item.room_id)


def mismatch(expected: Place | Asset, reading: Reading) -> str | None:
    """The first of ``PLACE_FIELDS`` in which `reading` differs from `expected`, or None."""
    if reading.site_id != expected.site_id:
        return "site_id"
    if reading.building_id != expected.building_id:
        return "building_id"
    if reading.room_id != expected.room_id:
        return "room_id"
    return None


class _Tracked:
    __slots__ = ("last_ms", "place", "pool")

    def __init__(self, place: Place, pool: str, last_ms: int) -> None:
        self.place = place
        self.pool = pool
        self.last_ms = last_ms


class UnknownAssets:
    """The unknown assets a worker tracks (see the module docstring), shared by its shards:
    every method is safe to call from any thread."""

    def __init__(
        self, *, fleet_cap: int | None, site_cap: int | None, ttl_ms: int = UNKNOWN_ASSET_TTL_MS
    ) -> None:
        self.fleet_cap = fleet_cap
        self.site_cap = site_cap
        self.ttl_ms = ttl_ms
        self._fleet: OrderedDict[str, _Tracked] = OrderedDict()  # least recently seen first
        self._pools: dict[str, OrderedDict[str, _Tracked]] = {}
        self._lock = threading.Lock()
        self.refused: Counter[str] = Counter()
        """Readings refused, by reason code (identity mismatches of registered assets too)."""

    @property
    def tracking(self) -> bool:
        """Whether unknown assets are tracked at all (some cap is set)."""
        return self.fleet_cap is not None or self.site_cap is not None

    def __len__(self) -> int:
        return len(self._fleet)

    def __contains__(self, asset_id: object) -> bool:
        return asset_id in self._fleet

    def refuse(self, code: str, detail: str = "") -> AdmissionError:
        """Count a refusal and return its error (for the caller to raise)."""
        with self._lock:
            self.refused[code] += 1
        return AdmissionError(code, detail)

    def admit(self, reading: Reading, pool: str) -> list[str]:
        """Admit `reading` of an unknown asset whose site's allowance is `pool`, or raise
        `AdmissionError`. Returns the asset ids that gave up their place for it."""
        if not self.tracking:
            return []
        asset_id, ts_ms = reading.asset_id, reading.ts_ms
        with self._lock:
            tracked = self._fleet.get(asset_id)
            if tracked is not None:
                field = mismatch(tracked.place, reading)
                if field is not None:
                    self.refused[IDENTITY_MISMATCH] += 1
                    raise AdmissionError(IDENTITY_MISMATCH, field)
                if ts_ms > tracked.last_ms:
                    tracked.last_ms = ts_ms
                    self._fleet.move_to_end(asset_id)
                    self._pools[tracked.pool].move_to_end(asset_id)
                return []
            members = self._pools.get(pool)
            evict: list[str] = []
            site_oldest = self._full(members, self.site_cap, ts_ms)
            if site_oldest is None:
                self.refused[UNKNOWN_ASSET_SITE_CAP] += 1
                raise AdmissionError(UNKNOWN_ASSET_SITE_CAP)
            if site_oldest:
                evict.append(site_oldest)
            if not evict:  # a place freed in the site frees one in the fleet too
                fleet_oldest = self._full(self._fleet, self.fleet_cap, ts_ms)
                if fleet_oldest is None:
                    self.refused[UNKNOWN_ASSET] += 1
                    raise AdmissionError(UNKNOWN_ASSET)
                if fleet_oldest:
                    evict.append(fleet_oldest)
            for gone in evict:
                left = self._fleet.pop(gone)
                del self._pools[left.pool][gone]
            entry = _Tracked(place_of(reading), pool, ts_ms)
            self._fleet[asset_id] = entry
            self._pools.setdefault(pool, OrderedDict())[asset_id] = entry
            return evict

    def _full(
        self, members: OrderedDict[str, _Tracked] | None, cap: int | None, ts_ms: int
    ) -> str | None:
        """ "" when `members` has room under `cap`; when full, the id of its least recently
        seen member if that one was quiet for the TTL (it gives up its place), else None."""
        size = len(members) if members is not None else 0
        if cap is None or size < cap:
            return ""
        if members is None or cap == 0:
            return None
        oldest_id, oldest = next(iter(members.items()))
        if ts_ms - oldest.last_ms < self.ttl_ms:
            return None
        return oldest_id
