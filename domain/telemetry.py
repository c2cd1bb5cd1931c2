"""Telemetry: the wire schema (JSON) and the internal ``Reading``.

``decode_reading`` turns one Kinesis record's bytes into a validated ``Reading`` or raises
``InvalidTelemetry`` (a ``ValueError``), whatever the bytes: the engine dead-letters the
record with ``str(exc)`` as its reason. A reason is ``<code>`` or ``<code>: <detail>``; the
code is one of ``DECODE_REASONS`` and stable, the detail (a field name, a parser message) is
for people. See docs/input-validation.md.

Schema version: a record without ``v`` (or ``"v": null``) is read as version 1 and counted in
``counters.missing_version``; any other version than 1 is ``unknown_schema``.
The ids of its readings are shared strings (see ``MAX_SHARED_IDS``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Final

import msgspec

from domain.ids import is_valid_id
from domain.timestamps import TimestampError, format_ts, parse_ts_ms

SCHEMA_VERSION = 1
# -- schema v2: optional cumulative energy counter --------------------
SCHEMA_VERSION_ENERGY = 2
"""Version of a record that carries ``energy_wh``; v1 and v2 records share one stream."""
SCHEMA_VERSIONS = (SCHEMA_VERSION, SCHEMA_VERSION_ENERGY)
# -- end schema v2 ---------------------------------------------------------------------------
MAX_RECORD_BYTES = 64 * 1024
DEFAULT_MAX_SKEW_MS = 120_000
"""How far ahead of its arrival at the stream a reading may be stamped: a device clock that
is at most this fast is believed; a faster one is ``clock_skew``. The arrival time is the
stream's, so a device cannot push the event clock (and so make other devices' readings late)
by more than this."""
MAX_AGE_MS = 365 * 86_400_000
"""A reading stamped more than a year before it reached the stream is a device clock that
was reset (1970, 2000), not a late reading: ``bad_ts``."""
MAX_TS_CHARS = 64
MAX_DEPTH = 32
"""Nesting deeper than this in a record that does not decode is reported as ``too_deep``;
the parser's own recursion limit gives ``too_deep`` too."""
MAX_DETAIL_CHARS = 200
MAX_ABS_VALUE = 1e15
"""The largest magnitude a reading's number may have (power, voltage, current, lux, energy
counter): far beyond any device, and far enough below the float range that the sums of a
site's energy over a day, and the squares the energy split takes, stay finite. A reading of
one device beyond it (1e308 W) would make its room's, building's and site's sums infinite,
which no store accepts: the honest assets' energy of that hour would be lost with it."""

MAX_SHARED_IDS = 1_000_000
"""Distinct id strings remembered for sharing; past this the table starts over."""

ID_FIELDS = ("site_id", "building_id", "room_id", "asset_id")
RULE_FIELDS = ("topic_site_id", "topic_asset_id", "client_id")
"""The ids the IoT rule adds from the topic and the connection (see ``Telemetry``)."""
FLOAT_FIELDS = ("power_w", "voltage_v", "current_a", "lux")

# The stable reason codes of ``InvalidTelemetry`` (docs/input-validation.md says what each means).
TOO_LARGE: Final = "too_large"
NOT_UTF8: Final = "not_utf8"
NOT_JSON: Final = "not_json"
TOO_DEEP: Final = "too_deep"
BAD_TYPE: Final = "bad_type"
MISSING_FIELD: Final = "missing_field"
UNKNOWN_SCHEMA: Final = "unknown_schema"
BAD_ID: Final = "bad_id"
BAD_VALUE: Final = "bad_value"
BAD_TS: Final = "bad_ts"
CLOCK_SKEW: Final = "clock_skew"
TOPIC_MISMATCH: Final = "topic_mismatch"
DUPLICATE_FIELD: Final = "duplicate_field"
DECODE_ERROR: Final = "decode_error"
DECODE_REASONS: Final = frozenset(
    {
        TOO_LARGE,
        NOT_UTF8,
        NOT_JSON,
        TOO_DEEP,
        BAD_TYPE,
        MISSING_FIELD,
        UNKNOWN_SCHEMA,
        BAD_ID,
        BAD_VALUE,
        BAD_TS,
        CLOCK_SKEW,
        TOPIC_MISMATCH,
        DUPLICATE_FIELD,
        DECODE_ERROR,
    }
)


def reason_code(reason: str) -> str:
    """The stable code of a reason: the part before the first ``:``."""
    return reason.split(":", 1)[0]


class Telemetry(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    """One device message as published on the stream (JSON object): the wire schema, the one
    definition both ``decode_reading`` and ``encode_telemetry`` use.

    ``v`` is the schema version: absent (or ``null``) reads as version 1. Unknown fields are
    ignored so that producers can add fields before consumers know them. Built by keyword.

    ``topic_site_id``, ``topic_asset_id`` and ``client_id`` are not the device's: the IoT rule
    adds them from the MQTT topic (``luxflow/telemetry/<site_id>/<asset_id>``) and the
    connection's client id (the thing name, which is the asset id). Each one present must
    equal the payload's ``site_id``, ``asset_id``, ``asset_id`` respectively, else the record
    is ``topic_mismatch: <payload field>``: a device speaks only for the asset it connected as.
    Absent (records that did not come through the rule: replays, the simulator): not checked.
    """

    v: int | None = None
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
    topic_site_id: str | None = None
    topic_asset_id: str | None = None
    client_id: str | None = None


class Reading(msgspec.Struct, frozen=True, gc=False):
    """A validated telemetry reading: ids follow the id grammar (``domain.ids``), floats
    finite and at most ``MAX_ABS_VALUE`` in magnitude, ``power_w >= 0``,
    ``0 <= dim_level <= 100``, ``fault_code`` ``None`` or an id, ``ts_ms`` epoch ms UTC.
    ``energy_wh`` (schema v2, ``None`` in v1): the driver's cumulative active-energy counter
    in Wh (DALI-2 Part 252 / D4i), 0 to ``MAX_ABS_VALUE``; it may reset or roll over
    (``domain.usage``)."""

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
    """A record that cannot become a ``Reading``. ``reason`` is ``code`` or
    ``code: detail`` with ``code`` in ``DECODE_REASONS``; ``str(exc) == reason``."""

    def __init__(self, code: str, detail: str = "") -> None:
        detail = detail[:MAX_DETAIL_CHARS]
        reason = f"{code}: {detail}" if detail else code
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class DecodeCounters:
    """Process-wide decoder counts (for logs and metrics). Monotonic."""

    missing_version: int = 0
    """Records without ``v``, read as version 1."""


counters = DecodeCounters()

_decoder = msgspec.json.Decoder(Telemetry)
_encoder = msgspec.json.Encoder()
# Every reading decodes fresh copies of its four ids, and the tables, rule states and
# windows keep them per asset: one shared copy of each id keeps live assets small. Starting
# over past the bound only costs sharing, never correctness (ids are compared by value).
# Only ids that follow the grammar are entered, so a hit here is also a validated id.
_shared_ids: dict[str, str] = {}
_MISSING_RE = re.compile(r"^Object missing required field `([^`]+)`")
_OUT_OF_RANGE_RE = re.compile(r"^Number out of range - at `\$\.([A-Za-z_]+)`$")
# A JSON string (an unterminated one runs to the end: linear, never retried) or a bracket.
_TOKEN_RE = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


def _nesting_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects outside strings. Only on the error path."""
    depth = deepest = 0
    for token in _TOKEN_RE.findall(data):
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def _validation_error(message: str, data: bytes) -> InvalidTelemetry:
    missing = _MISSING_RE.match(message)
    if missing is not None:
        return InvalidTelemetry(MISSING_FIELD, missing.group(1))
    out_of_range = _OUT_OF_RANGE_RE.match(message)
    if out_of_range is not None:
        return InvalidTelemetry(BAD_VALUE, out_of_range.group(1))
    if _nesting_depth(data) > MAX_DEPTH:
        return InvalidTelemetry(TOO_DEEP)
    return InvalidTelemetry(BAD_TYPE, message)


def _malformed_error(data: bytes) -> InvalidTelemetry:
    """``too_deep``, ``not_utf8``, ``bad_value: <field>`` for JSON extended with NaN/Infinity
    literals (Python's ``json.dumps`` emits them), else ``not_json``."""
    if _nesting_depth(data) > MAX_DEPTH:
        return InvalidTelemetry(TOO_DEEP)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidTelemetry(NOT_UTF8)
    try:
        loose = json.loads(text)
    except (ValueError, RecursionError):
        return InvalidTelemetry(NOT_JSON)
    if isinstance(loose, dict):
        for name in (*FLOAT_FIELDS, "energy_wh"):
            value = loose.get(name)
            if isinstance(value, float) and not math.isfinite(value):
                return InvalidTelemetry(BAD_VALUE, name)
    return InvalidTelemetry(NOT_JSON)


def _repeated_identity(data: bytes) -> str | None:
    """The first of ``ID_FIELDS`` and ``RULE_FIELDS`` that the JSON object `data` names more
    than once, parsed again keeping repeated keys (only for the records `_decode`'s cheap
    test cannot clear)."""
    names = [name for name, _ in json.loads(data, object_pairs_hook=lambda pairs: pairs)]
    return next((f for f in (*ID_FIELDS, *RULE_FIELDS) if names.count(f) > 1), None)


def _shared_id(value: str, field: str) -> str:
    """The shared copy of a valid id; ``missing_field`` for ``""``, ``bad_id`` otherwise."""
    shared = _shared_ids.get(value)
    if shared is not None:
        return shared
    if not value:
        raise InvalidTelemetry(MISSING_FIELD, field)
    if not is_valid_id(value):
        raise InvalidTelemetry(BAD_ID, field)
    if len(_shared_ids) >= MAX_SHARED_IDS:
        _shared_ids.clear()
    _shared_ids[value] = value
    return value


def shared_id(value: str) -> str:
    """The shared copy of `value` if it is a valid id (entered if new), else `value` itself:
    for ids read back from elsewhere than a reading (a state snapshot), so that they share
    one copy with the readings' as they do in a shard that never restarted."""
    shared = _shared_ids.get(value)
    if shared is not None:
        return shared
    if not value or not is_valid_id(value):
        return value
    if len(_shared_ids) >= MAX_SHARED_IDS:
        _shared_ids.clear()
    _shared_ids[value] = value
    return value


def decode_reading(
    data: bytes, arrival_ms: int, *, max_skew_ms: int = DEFAULT_MAX_SKEW_MS
) -> Reading:
    """Decode and validate one record.

    ``arrival_ms`` is when the stream received the record (its approximate arrival timestamp),
    not the wall clock, so a replay makes the same decisions as the first run.
    Checks, in order: size (> 64 KiB, before parsing), UTF-8, JSON, depth and types, an id
    field named twice (``duplicate_field``), version, ids, the ids the IoT rule added from the
    topic and the client id (``topic_mismatch``, see ``Telemetry``), floats finite and at most
    ``MAX_ABS_VALUE`` in magnitude, power, dim level, timestamp (parsable, not more than a year
    before ``arrival_ms``), then the device's clock: stamped more than ``max_skew_ms`` after
    ``arrival_ms`` is ``clock_skew: more than <allowance>s ahead``.
    An empty ``fault_code`` means no fault and becomes ``None``.
    Raises ``InvalidTelemetry``, never anything else, for any input bytes: an unexpected
    exception becomes ``decode_error: <exception type>``.
    """
    try:
        return _decode(data, arrival_ms, max_skew_ms)
    except InvalidTelemetry:
        raise
    except RecursionError:
        raise InvalidTelemetry(TOO_DEEP) from None
    except Exception as exc:  # the contract: nothing but InvalidTelemetry leaves the decoder
        raise InvalidTelemetry(DECODE_ERROR, type(exc).__name__) from exc


def _decode(data: bytes, arrival_ms: int, max_skew_ms: int) -> Reading:
    if len(data) > MAX_RECORD_BYTES:
        raise InvalidTelemetry(TOO_LARGE)
    try:
        t = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise _validation_error(str(exc), data) from None
    except msgspec.DecodeError:
        raise _malformed_error(data) from None
    except UnicodeDecodeError:
        raise InvalidTelemetry(NOT_UTF8) from None
    except RecursionError:
        raise InvalidTelemetry(TOO_DEEP) from None
    # JSON parsers disagree on which of two equal keys counts (msgspec takes the last), so a
    # record naming an id twice would be from whoever the parser picked. Only a JSON escape
    # (\u005f) spells a key without its bytes: a record without a backslash whose every
    # decoded id key ends in the bytes _id" once, and nothing else does, names none twice.
    # That is the test every record pays; the others are parsed again.
    rule_ids = (t.topic_site_id is not None) + (t.topic_asset_id is not None)
    if data.count(b'_id"') != 4 + rule_ids + (t.client_id is not None) or b"\\" in data:
        repeated = _repeated_identity(data)
        if repeated is not None:
            raise InvalidTelemetry(DUPLICATE_FIELD, repeated)
    if t.v not in SCHEMA_VERSIONS:
        if t.v is not None:
            raise InvalidTelemetry(UNKNOWN_SCHEMA, f"v={t.v}"[:40])
        counters.missing_version += 1
    site_id = _shared_id(t.site_id, "site_id")
    building_id = _shared_id(t.building_id, "building_id")
    room_id = _shared_id(t.room_id, "room_id")
    asset_id = _shared_id(t.asset_id, "asset_id")
    if t.topic_site_id is not None and t.topic_site_id != site_id:
        raise InvalidTelemetry(TOPIC_MISMATCH, "site_id")
    if t.topic_asset_id is not None and t.topic_asset_id != asset_id:
        raise InvalidTelemetry(TOPIC_MISMATCH, "asset_id")
    if t.client_id is not None and t.client_id != asset_id:
        raise InvalidTelemetry(TOPIC_MISMATCH, "client_id")
    fault_code = _shared_id(t.fault_code, "fault_code") if t.fault_code else None
    power_w, voltage_v, current_a, lux = t.power_w, t.voltage_v, t.current_a, t.lux
    # Every comparison with NaN is false: one test for NaN, +-inf and magnitudes beyond the bound.
    if not (
        abs(power_w) <= MAX_ABS_VALUE
        and abs(voltage_v) <= MAX_ABS_VALUE
        and abs(current_a) <= MAX_ABS_VALUE
        and abs(lux) <= MAX_ABS_VALUE
    ):
        field = next(n for n in FLOAT_FIELDS if not abs(getattr(t, n)) <= MAX_ABS_VALUE)
        raise InvalidTelemetry(BAD_VALUE, field)
    if power_w < 0:
        raise InvalidTelemetry(BAD_VALUE, "power_w")
    dim_level = t.dim_level
    if not 0 <= dim_level <= 100:
        raise InvalidTelemetry(BAD_VALUE, "dim_level")
    ts = t.ts
    if len(ts) > MAX_TS_CHARS:
        raise InvalidTelemetry(BAD_TS, "unparsable")
    try:
        ts_ms = parse_ts_ms(ts)
    except TimestampError:
        raise InvalidTelemetry(BAD_TS, "unparsable") from None
    if arrival_ms - ts_ms > MAX_AGE_MS:
        raise InvalidTelemetry(BAD_TS, "ancient")
    if ts_ms - arrival_ms > max_skew_ms:
        # The detail names the allowance, not the amount: the same record gives the same
        # reason in every run (its arrival differs between a run and a replay elsewhere).
        raise InvalidTelemetry(CLOCK_SKEW, f"more than {max_skew_ms // 1000}s ahead")
    energy_wh = t.energy_wh  # schema v2: a cumulative counter, finite and never negative
    if energy_wh is not None and not 0 <= energy_wh <= MAX_ABS_VALUE:
        raise InvalidTelemetry(BAD_VALUE, "energy_wh")
    return Reading(
        site_id,
        building_id,
        room_id,
        asset_id,
        ts_ms,
        power_w,
        voltage_v,
        current_a,
        lux,
        t.on,
        dim_level,
        fault_code,
        energy_wh,
    )


def telemetry_of(reading: Reading) -> Telemetry:
    """The wire form of a reading (v1, or v2 when it has ``energy_wh``; ``ts`` with ms)."""
    return Telemetry(
        v=SCHEMA_VERSION if reading.energy_wh is None else SCHEMA_VERSION_ENERGY,
        site_id=reading.site_id,
        building_id=reading.building_id,
        room_id=reading.room_id,
        asset_id=reading.asset_id,
        ts=format_ts(reading.ts_ms),
        power_w=reading.power_w,
        voltage_v=reading.voltage_v,
        current_a=reading.current_a,
        lux=reading.lux,
        on=reading.on,
        dim_level=reading.dim_level,
        fault_code=reading.fault_code,
        energy_wh=reading.energy_wh,
    )


def encode_telemetry(telemetry: Telemetry) -> bytes:
    """JSON bytes of a wire message; floats round-trip exactly through ``decode_reading``."""
    return _encoder.encode(telemetry)


def encode_reading(reading: Reading) -> bytes:
    """``encode_telemetry(telemetry_of(reading))``."""
    return _encoder.encode(telemetry_of(reading))
