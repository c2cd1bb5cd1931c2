"""The asset registry: where each asset sits (site > building > room), what it is, its rated
power and nominal voltage, and the thresholds its rules use (per asset, else per site).

Imports (CSV or JSON) are validated row by row: ``parse_csv`` and ``parse_json`` return the
good rows and a ``RejectedRow`` with a clear reason for every bad one, so an operator can fix
the file; one bad row never rejects the others. ``limits_of`` turns an asset (or ``None`` for
an asset the registry does not know) and its site's defaults into the rules' ``Limits``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import msgspec

from domain.ids import ID_PATTERN, is_valid_id
from domain.rules import DEFAULT_COOLDOWN_MS, DEFAULT_MAX_GAP_MS, DEFAULT_RETENTION_MS, Limits
from domain.rules.flood import FloodLimits
from domain.site import SiteLimits

AssetKind = Literal["luminaire", "sensor", "gateway"]
ASSET_KINDS: tuple[str, ...] = ("luminaire", "sensor", "gateway")
CSV_COLUMNS = (
    "site_id",
    "building_id",
    "room_id",
    "asset_id",
    "kind",
    "rated_w",
    "nominal_voltage_v",
)
OPTIONAL_COLUMNS = ("spike_tolerance", "voltage_band", "offline_after_ms")


class Asset(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """One registered asset. The optional thresholds override its site's defaults."""

    site_id: str
    building_id: str
    room_id: str
    asset_id: str
    kind: AssetKind
    rated_w: float
    nominal_voltage_v: float = 230.0
    spike_tolerance: float | None = None
    voltage_band: float | None = None
    offline_after_ms: int | None = None


class SiteDefaults(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """Thresholds of a site, for its assets and for assets the registry does not know.

    ``demand_threshold_w``: the site's 1-minute demand limit (``None``: no site demand rule).
    ``voltage_band``: fraction around the nominal voltage. ``flicker_toggles`` on/off changes
    within ``flicker_window_ms`` make flicker. ``baseline_factor`` ``None`` turns the learnt
    baseline off. ``default_rated_w`` is the rated power assumed for unknown assets.
    """

    site_id: str = ""
    demand_threshold_w: float | None = None
    demand_min_spike_ms: int = 60_000
    spike_tolerance: float = 1.25
    min_spike_ms: int = 120_000
    baseline_factor: float | None = 1.5
    voltage_band: float = 0.1
    offline_after_ms: int = 900_000
    flicker_toggles: int = 4
    flicker_window_ms: int = 600_000
    lamp_current_fraction: float = 0.1
    default_rated_w: float = 100.0
    nominal_voltage_v: float = 230.0
    max_gap_ms: int = DEFAULT_MAX_GAP_MS
    # -- detection: baseline of the site's demand per hour of day, fault cool-down,
    # short-cycle flicker, flood guard, retention of per-asset state.
    demand_baseline_factor: float | None = 1.5
    cooldown_ms: int = DEFAULT_COOLDOWN_MS
    flicker_max_on_ms: int = 90_000
    min_spike_readings: int = 2
    flood_max_new_faults: int = 10
    flood_window_ms: int = 600_000
    retention_ms: int = DEFAULT_RETENTION_MS
    # -- energy split at window bounds: accuracy of power readings (relative
    # standard deviation) and resolution of the drivers' energy counters.
    power_accuracy: float = 0.01
    counter_resolution_wh: float = 0.001


MAX_DURATION_MS = 10 * 366 * 86_400_000
"""The longest duration a threshold may hold (ten years): longer means never, and keeps the
times rules add it to far inside 64-bit integers (state snapshots)."""

# What each site default may hold (the rules' limits are built from them): values outside
# make a rule divide by zero, fire on every reading or never forget an asset.
_POSITIVE = ("nominal_voltage_v", "default_rated_w")
_FRACTIONS = ("power_accuracy", "lamp_current_fraction")
MAX_COUNTER_RESOLUTION_WH = 1_000.0
"""The coarsest energy counter step a site may declare (1 kWh)."""
_POSITIVE_OR_NONE = ("demand_threshold_w", "baseline_factor", "demand_baseline_factor")
_DURATIONS = ("demand_min_spike_ms", "min_spike_ms", "cooldown_ms", "flicker_max_on_ms")
_POSITIVE_DURATIONS = (
    "offline_after_ms",
    "flicker_window_ms",
    "max_gap_ms",
    "flood_window_ms",
    "retention_ms",
)
_COUNTS = {"flicker_toggles": 1, "min_spike_readings": 1, "flood_max_new_faults": 0}


def site_defaults_problem(site: SiteDefaults) -> str | None:
    """What makes `site` unusable by the rules (``<field> <why>``), or None."""
    for name in _POSITIVE:
        if not getattr(site, name) > 0:
            return f"{name} must be positive"
    for name in _FRACTIONS:
        if not 0 <= getattr(site, name) <= 1:
            return f"{name} must be between 0 and 1"
    if not 0 <= site.counter_resolution_wh <= MAX_COUNTER_RESOLUTION_WH:
        return f"counter_resolution_wh must be between 0 and {MAX_COUNTER_RESOLUTION_WH:g} Wh"
    for name in _POSITIVE_OR_NONE:
        value = getattr(site, name)
        if value is not None and not value > 0:
            return f"{name} must be positive or null"
    for name in _DURATIONS + _POSITIVE_DURATIONS:
        low = 1 if name in _POSITIVE_DURATIONS else 0
        if not low <= getattr(site, name) <= MAX_DURATION_MS:
            return f"{name} must be between {low} and {MAX_DURATION_MS} ms"
    for name, low in _COUNTS.items():
        if getattr(site, name) < low:
            return f"{name} must be at least {low}"
    if not site.spike_tolerance > 1:
        return "spike_tolerance must be above 1"
    if not 0 < site.voltage_band < 1:
        return "voltage_band must be between 0 and 1"
    return None


class RejectedRow(msgspec.Struct, frozen=True, gc=False):
    """A row that was not imported. ``position`` is the CSV line number (the header is line 1)
    or the index in the JSON ``assets`` array (from 0)."""

    position: int
    reason: str


class RegistryImport(msgspec.Struct, frozen=True):
    """The result of an import: good assets and site defaults, and every rejected row."""

    assets: list[Asset]
    sites: list[SiteDefaults]
    rejected: list[RejectedRow]


class RegistryError(ValueError):
    """The file as a whole cannot be read (not CSV/JSON, missing header columns)."""


def limits_of(asset: Asset | None, site: SiteDefaults) -> Limits:
    """The rule limits of ``asset`` in ``site``; ``None`` (unknown asset) gets the site's
    defaults with ``default_rated_w`` and every rule on. Lamp failure and flicker apply to
    luminaires (and unknown assets) only."""
    if asset is None:
        rated_w = site.default_rated_w
        tolerance, band, offline_after_ms = (
            site.spike_tolerance,
            site.voltage_band,
            site.offline_after_ms,
        )
        nominal_v = site.nominal_voltage_v
        lamp_like = True
    else:
        rated_w = asset.rated_w
        tolerance = asset.spike_tolerance or site.spike_tolerance
        band = asset.voltage_band if asset.voltage_band is not None else site.voltage_band
        offline_after_ms = asset.offline_after_ms or site.offline_after_ms
        nominal_v = asset.nominal_voltage_v
        lamp_like = asset.kind == "luminaire"
    return Limits(
        spike_threshold_w=rated_w * tolerance,
        max_gap_ms=site.max_gap_ms,
        min_spike_ms=site.min_spike_ms,
        baseline_factor=site.baseline_factor,
        rated_w=rated_w,
        lamp_current_fraction=site.lamp_current_fraction if lamp_like else None,
        nominal_voltage_v=nominal_v,
        voltage_band=band,
        flicker_toggles=site.flicker_toggles if lamp_like else None,
        flicker_window_ms=site.flicker_window_ms,
        offline_after_ms=offline_after_ms,
        min_spike_readings=site.min_spike_readings,
        flicker_max_on_ms=site.flicker_max_on_ms,
        cooldown_ms=site.cooldown_ms,
        retention_ms=site.retention_ms,
        power_accuracy=site.power_accuracy,
        counter_resolution_wh=site.counter_resolution_wh,
    )


def site_limits_of(site: SiteDefaults) -> SiteLimits | None:
    """The site demand rules' limits, or ``None`` when the site has neither a demand threshold
    nor a learnt baseline."""
    if site.demand_threshold_w is None and site.demand_baseline_factor is None:
        return None
    return SiteLimits(
        site.demand_threshold_w,
        site.demand_min_spike_ms,
        baseline_factor=site.demand_baseline_factor,
    )


def flood_limits_of(site: SiteDefaults) -> FloodLimits:
    """The site's flood guard: more than ``flood_max_new_faults`` per ``flood_window_ms``."""
    return FloodLimits(site.flood_max_new_faults, site.flood_window_ms)


class Registry:
    """Lookup over imported assets and site defaults; ``fallback`` serves unknown sites."""

    def __init__(
        self,
        assets: Iterable[Asset],
        sites: Iterable[SiteDefaults] = (),
        fallback: SiteDefaults | None = None,
    ) -> None:
        self.assets: dict[str, Asset] = {a.asset_id: a for a in assets}
        self.sites: dict[str, SiteDefaults] = {s.site_id: s for s in sites}
        self.fallback = fallback if fallback is not None else SiteDefaults()

    def site(self, site_id: str) -> SiteDefaults:
        return self.sites.get(site_id, self.fallback)

    def limits(self, asset_id: str, site_id: str) -> Limits:
        """``limits_of`` the asset, or the site defaults when it is unknown."""
        return limits_of(self.assets.get(asset_id), self.site(site_id))


def encode_registry(assets: Iterable[Asset], sites: Iterable[SiteDefaults] = ()) -> bytes:
    """JSON ``{"assets": [...], "sites": [...]}``, the form ``parse_json`` reads."""
    return msgspec.json.encode({"assets": list(assets), "sites": list(sites)})


def parse_csv(text: str) -> RegistryImport:
    """Assets from CSV with a header naming at least ``CSV_COLUMNS`` (any order; the optional
    ``OPTIONAL_COLUMNS`` may follow; empty optional cells mean "site default")."""
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = reader.fieldnames or []
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise RegistryError(f"CSV header lacks columns: {', '.join(missing)}")
        rows = ((reader.line_num, dict(row)) for row in reader)
        assets, rejected = _validate(rows, blank_is_missing=True)
    except csv.Error as exc:  # the reader cannot go on (a field over its size limit, ...)
        raise RegistryError(f"not CSV at line {reader.line_num}: {exc}") from exc
    return RegistryImport(assets, [], rejected)


def parse_json(data: bytes | str) -> RegistryImport:
    """Assets (and site defaults) from JSON: either an array of asset objects or an object
    ``{"assets": [...], "sites": [...]}``. Positions are indexes in the assets array."""
    try:
        loaded = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise RegistryError(f"not JSON: {exc}") from exc
    except RecursionError:
        raise RegistryError("not JSON: nested too deeply") from None
    raw_sites: Any = []
    if isinstance(loaded, dict):
        raw_assets = loaded.get("assets", [])
        raw_sites = loaded.get("sites", [])
    else:
        raw_assets = loaded
    if not isinstance(raw_assets, list) or not isinstance(raw_sites, list):
        raise RegistryError("expected an array of assets or {'assets': [...], 'sites': [...]}")
    known = set(SiteDefaults.__struct_fields__)
    for raw_site in raw_sites:
        # A misspelt threshold would leave the site on the default it meant to change.
        unknown = sorted(set(raw_site) - known) if isinstance(raw_site, dict) else []
        if unknown:
            site_id = str(raw_site.get("site_id") or "(fallback)")[:140]
            raise RegistryError(f"bad site defaults: {site_id}: unknown field {unknown[0][:60]!r}")
    try:
        sites = msgspec.convert(raw_sites, list[SiteDefaults])
    except msgspec.ValidationError as exc:
        raise RegistryError(f"bad site defaults: {exc}") from exc
    for site in sites:
        if site.site_id and not is_valid_id(site.site_id):
            raise RegistryError(
                f"bad site defaults: site_id {site.site_id[:140]!r} breaks the id grammar"
            )
        problem = site_defaults_problem(site)
        if problem is not None:
            raise RegistryError(f"bad site defaults: {site.site_id or '(fallback)'}: {problem}")
    rows = ((index, row) for index, row in enumerate(raw_assets))
    assets, rejected = _validate(rows, blank_is_missing=False)
    return RegistryImport(assets, sites, rejected)


def _validate(
    rows: Iterable[tuple[int, Any]], *, blank_is_missing: bool
) -> tuple[list[Asset], list[RejectedRow]]:
    assets: list[Asset] = []
    rejected: list[RejectedRow] = []
    first_seen: dict[str, int] = {}
    for position, row in rows:
        try:
            asset = _asset_of(row, blank_is_missing)
        except ValueError as exc:
            rejected.append(RejectedRow(position, str(exc)))
            continue
        earlier = first_seen.get(asset.asset_id)
        if earlier is not None:
            rejected.append(
                RejectedRow(position, f"duplicate asset_id {asset.asset_id!r} (first at {earlier})")
            )
            continue
        first_seen[asset.asset_id] = position
        assets.append(asset)
    return assets, rejected


def _asset_of(row: Any, blank_is_missing: bool) -> Asset:
    """One validated asset; raises ``ValueError`` with the reason."""
    if not isinstance(row, Mapping):
        raise ValueError("not an object")

    def present(name: str) -> Any:
        value = row.get(name)
        if isinstance(value, str):
            value = value.strip()
            if blank_is_missing and value == "":
                return None
        return value

    ids: list[str] = []
    for name in ("site_id", "building_id", "room_id", "asset_id"):
        value = present(name)
        if value is None or value == "":
            raise ValueError(f"missing {name}")
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string")
        if not is_valid_id(value):
            raise ValueError(f"{name} {value[:140]!r} breaks the id grammar {ID_PATTERN}")
        ids.append(value)
    kind = present("kind")
    if kind not in ASSET_KINDS:
        raise ValueError(f"unknown kind {kind!r} (expected one of {', '.join(ASSET_KINDS)})")
    rated_w = _number(present("rated_w"), "rated_w")
    if rated_w is None:
        raise ValueError("missing rated_w")
    if rated_w <= 0:
        raise ValueError(f"rated_w must be positive, got {rated_w:g}")
    voltage = _number(present("nominal_voltage_v"), "nominal_voltage_v")
    if voltage is not None and voltage <= 0:
        raise ValueError(f"nominal_voltage_v must be positive, got {voltage:g}")
    tolerance = _number(present("spike_tolerance"), "spike_tolerance")
    if tolerance is not None and tolerance <= 1.0:
        raise ValueError(f"spike_tolerance must be above 1, got {tolerance:g}")
    band = _number(present("voltage_band"), "voltage_band")
    if band is not None and not 0 < band < 1:
        raise ValueError(f"voltage_band must be between 0 and 1, got {band:g}")
    offline = _number(present("offline_after_ms"), "offline_after_ms")
    if offline is not None and (
        offline <= 0 or offline != int(offline) or offline > MAX_DURATION_MS
    ):
        raise ValueError(
            f"offline_after_ms must be a positive integer of at most {MAX_DURATION_MS}, "
            f"got {offline:g}"
        )
    site_id, building_id, room_id, asset_id = ids
    return Asset(
        site_id,
        building_id,
        room_id,
        asset_id,
        kind,
        rated_w,
        voltage if voltage is not None else 230.0,
        tolerance,
        band,
        int(offline) if offline is not None else None,
    )


def _number(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}"[:200]) from None
    except OverflowError:  # an integer beyond any float (JSON integers have no bound)
        raise ValueError(f"{name} must be finite, got an integer too large for a float") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}"[:200])
    return number
