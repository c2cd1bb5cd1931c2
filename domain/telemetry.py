"""Telemetry: the wire schema (JSON) and the internal ``Reading``.

``decode_reading`` turns one Kinesis record's bytes into a validated ``Reading`` or raises
``InvalidTelemetry`` whose ``reason`` is a short stable string fit for a dead-letter record.
The ids of its readings are shared strings (see ``MAX_SHARED_IDS``).
"""

from __future__ import annotations

import json
import math
import re

import msgspec

from domain.timestamps import TimestampError, format_ts, parse_ts_ms

SCHEMA_VERSION = 1
# -- schema v2: optional cumulative energy counter (detection issue 11) --------------------
SCHEMA_VERSION_ENERGY = 2
"""Version of a record that carries ``energy_wh``; v1 and v2 records share one stream."""
SCHEMA_VERSIONS = (SCHEMA_VERSION, SCHEMA_VERSION_ENERGY)
# -- end schema v2 ---------------------------------------------------------------------------
MAX_RECORD_BYTES = 64 * 1024
MAX_FUTURE_MS = 15 * 60_000

MAX_SHARED_IDS = 1_000_000
"""Distinct id strings remembered for sharing; past this the table starts over."""

ID_FIELDS = ("site_id", "building_id", "room_id", "asset_id")
FLOAT_FIELDS = ("power_w", "voltage_v", "current_a", "lux")


class Telemetry(msgspec.Struct, gc=False, omit_defaults=True):
    """One device message as published on the stream (JSON object, schema version ``v``).

    Unknown fields are ignored so that producers can add fields before consumers know them.
    """

    v: int
    site_id: str
    building_id: str
    room_id: str
    asset_id: str
    ts: str
    power_w: float
    voltage_v: float
    current_a: float
    lux: float
    on: bool
    dim_level: int
    fault_code: str | None = None
    energy_wh: float | None = None  # schema v2: the driver's cumulative active-energy counter


class Reading(msgspec.Struct, frozen=True, gc=False):
    """A validated telemetry reading: ids non-empty, floats finite, ``power_w >= 0``,
    ``0 <= dim_level <= 100``, ``fault_code`` ``None`` or non-empty, ``ts_ms`` epoch ms UTC.
    ``energy_wh`` (schema v2, ``None`` in v1): the driver's cumulative active-energy counter in
    Wh (DALI-2 Part 252 / D4i), finite and >= 0; it may reset or roll over (``domain.usage``)."""

    site_id: str
    building_id: str
    room_id: str
    asset_id: str
    ts_ms: int
    power_w: float
    voltage_v: float
    current_a: float
    lux: float
    on: bool
    dim_level: int
    fault_code: str | None = None
    energy_wh: float | None = None  # schema v2


class InvalidTelemetry(ValueError):  # noqa: N818 -- the name is part of the contract
    """A record that cannot become a ``Reading``. ``reason`` is short and stable, e.g.
    ``not_json``, ``too_large``, ``wrong_type: <msgspec message>``, ``missing: <field>``,
    ``nan: <field>``, ``negative_power``, ``bad_ts``, ``future_ts``, ``bad_version``,
    ``bad_dim_level``, ``bad_energy`` (v2: ``energy_wh`` negative or not finite)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_decoder = msgspec.json.Decoder(Telemetry)
_encoder = msgspec.json.Encoder()
# Every reading decodes fresh copies of its four ids, and the tables, rule states and
# windows keep them per asset: one shared copy of each id keeps live assets small. Starting
# over past the bound only costs sharing, never correctness (ids are compared by value).
_shared_ids: dict[str, str] = {}
_MISSING_RE = re.compile(r"^Object missing required field `([^`]+)`")
_OUT_OF_RANGE_RE = re.compile(r"^Number out of range - at `\$\.([A-Za-z_]+)`$")


def _validation_reason(message: str) -> str:
    missing = _MISSING_RE.match(message)
    if missing is not None:
        return f"missing: {missing.group(1)}"
    out_of_range = _OUT_OF_RANGE_RE.match(message)
    if out_of_range is not None and out_of_range.group(1) in FLOAT_FIELDS:
        return f"nan: {out_of_range.group(1)}"
    return f"wrong_type: {message}"


def _malformed_reason(data: bytes) -> str:
    """``nan: <field>`` for JSON extended with NaN/Infinity literals (Python's ``json.dumps``
    emits them), ``not_json`` otherwise. Only runs on the error path."""
    try:
        loose = json.loads(data)
    except (ValueError, RecursionError):
        return "not_json"
    if isinstance(loose, dict):
        for name in FLOAT_FIELDS:
            value = loose.get(name)
            if isinstance(value, float) and not math.isfinite(value):
                return f"nan: {name}"
    return "not_json"


def decode_reading(data: bytes, arrival_ms: int) -> Reading:
    """Decode and validate one record.

    ``arrival_ms`` is when the stream received the record (its approximate arrival timestamp),
    not the wall clock, so a replay makes the same decisions as the first run.
    Checks, in order: size (> 64 KiB, before parsing), JSON and types, version, ids,
    finite floats, power, dim level, timestamp, not more than 15 minutes after ``arrival_ms``.
    An empty ``fault_code`` means no fault and becomes ``None``.
    Raises ``InvalidTelemetry``; never anything else for any input bytes.
    """
    if len(data) > MAX_RECORD_BYTES:
        raise InvalidTelemetry("too_large")
    try:
        t = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise InvalidTelemetry(_validation_reason(str(exc))) from None
    except msgspec.DecodeError:
        raise InvalidTelemetry(_malformed_reason(data)) from None
    if t.v not in SCHEMA_VERSIONS:
        raise InvalidTelemetry("bad_version")
    if not (t.site_id and t.building_id and t.room_id and t.asset_id):
        field = next(name for name in ID_FIELDS if not getattr(t, name))
        raise InvalidTelemetry(f"missing: {field}")
    power_w, voltage_v, current_a, lux = t.power_w, t.voltage_v, t.current_a, t.lux
    # x - x is 0.0 for every finite float and NaN for NaN and +-inf: one test for four fields.
    if (power_w - power_w) + (voltage_v - voltage_v) + (current_a - current_a) + (lux - lux) != 0:
        field = next(name for name in FLOAT_FIELDS if not math.isfinite(getattr(t, name)))
        raise InvalidTelemetry(f"nan: {field}")
    if power_w < 0:
        raise InvalidTelemetry("negative_power")
    dim_level = t.dim_level
    if not 0 <= dim_level <= 100:
        raise InvalidTelemetry("bad_dim_level")
    try:
        ts_ms = parse_ts_ms(t.ts)
    except TimestampError:
        raise InvalidTelemetry("bad_ts") from None
    if ts_ms - arrival_ms > MAX_FUTURE_MS:
        raise InvalidTelemetry("future_ts")
    energy_wh = t.energy_wh  # schema v2
    if energy_wh is not None and not (energy_wh - energy_wh == 0 and energy_wh >= 0):
        raise InvalidTelemetry("bad_energy")
    if len(_shared_ids) > MAX_SHARED_IDS:
        _shared_ids.clear()
    shared = _shared_ids.setdefault
    site_id, building_id, room_id, asset_id = t.site_id, t.building_id, t.room_id, t.asset_id
    return Reading(
        shared(site_id, site_id),
        shared(building_id, building_id),
        shared(room_id, room_id),
        shared(asset_id, asset_id),
        ts_ms,
        power_w,
        voltage_v,
        current_a,
        lux,
        t.on,
        dim_level,
        t.fault_code or None,
        energy_wh,
    )


def telemetry_of(reading: Reading) -> Telemetry:
    """The wire form of a reading (v1, or v2 when it has ``energy_wh``; ``ts`` with ms)."""
    return Telemetry(
        SCHEMA_VERSION if reading.energy_wh is None else SCHEMA_VERSION_ENERGY,
        reading.site_id,
        reading.building_id,
        reading.room_id,
        reading.asset_id,
        format_ts(reading.ts_ms),
        reading.power_w,
        reading.voltage_v,
        reading.current_a,
        reading.lux,
        reading.on,
        reading.dim_level,
        reading.fault_code,
        reading.energy_wh,
    )


def encode_telemetry(telemetry: Telemetry) -> bytes:
    """JSON bytes of a wire message; floats round-trip exactly through ``decode_reading``."""
    return _encoder.encode(telemetry)


def encode_reading(reading: Reading) -> bytes:
    """``encode_telemetry(telemetry_of(reading))``."""
    return _encoder.encode(telemetry_of(reading))
