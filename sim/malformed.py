"""Malformed telemetry for the dead-letter path: one bad record of each kind the decoder
rejects, and a way to spread them among good records."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

_GOOD_FIELDS = (
    b'"building_id":"b","room_id":"r","ts":"2026-01-01T00:00:00.000Z","voltage_v":230,'
    b'"current_a":0.1,"lux":1,"on":true,"dim_level":50'
)
MALFORMED_SAMPLES: dict[str, bytes] = {
    "not_json": b"\x00\x01 definitely not json",
    "bad_type": b'{"v":1,"site_id":"s","asset_id":"a","power_w":"high",' + _GOOD_FIELDS + b"}",
    "missing_field": b'{"v":1,"site_id":"s","power_w":1,' + _GOOD_FIELDS + b"}",
    "bad_value": b'{"v":1,"site_id":"s","asset_id":"a","power_w":NaN,' + _GOOD_FIELDS + b"}",
    "clock_skew": (
        b'{"v":1,"site_id":"s","asset_id":"a","power_w":1,'
        + _GOOD_FIELDS.replace(b"2026-01-01", b"2999-01-01")
        + b"}"
    ),
    "bad_id": b'{"v":1,"site_id":"s","asset_id":"a#b","power_w":1,' + _GOOD_FIELDS + b"}",
    "too_deep": b'{"v":1,"x":' + b"[" * 6_000 + b"]" * 6_000 + b"}",
    "too_large": b"{" + b"x" * 900_000,
}
"""One bad record of each kind the decoder rejects, keyed by the reason code it must give."""


def with_malformed(
    records: Iterable[tuple[str, bytes]], every: int = 500
) -> Iterator[tuple[str, bytes]]:
    """`records` with the `MALFORMED_SAMPLES` spread among them (one after each `every`-th
    record, under that record's partition key); any left over come at the end."""
    samples = iter(MALFORMED_SAMPLES.values())
    partition_key = "site-x"
    for i, (partition_key, data) in enumerate(records):
        yield partition_key, data
        if i % every == every - 1:
            sample = next(samples, None)
            if sample is not None:
                yield partition_key, sample
    for sample in samples:
        yield partition_key, sample
