"""The comparison baseline: the same per-record work as a plain loop, the way it is usually
written with the standard library and boto3 (no framework, no msgspec).

Per record: `json.loads`, a `Reading` from the dict, the same domain rules (`rules.step`,
`usage.usage_since_last`), usage summed per (hour, asset) in dicts, hourly windows closed by
the same watermark (max event time - grace), and every event turned into its command-model
item (`views.command_writes`) serialised with boto3's `TypeSerializer` (floats as `Decimal`,
as boto3 requires) and into its Timestream record (`sinks.timestream.to_record`). Items are
buffered, last write per key winning, and dropped at every `flush_every` records, like a
flush. The faust benchmark runs this same worker inside a faust agent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from core.clock import HOUR_MS
from domain import rules, usage, views
from domain.rules import AssetRuleState, Limits
from domain.telemetry import Reading
from domain.timestamps import parse_ts_ms
from sinks.timestream import to_record


def _plain(value: object) -> object:
    return Decimal(repr(value)) if isinstance(value, float) else value


class PlainWorker:
    """Per-record work of the lighting app, in plain Python + boto3. Not thread-safe."""

    def __init__(
        self,
        *,
        rated_w: float = 100.0,
        spike_tolerance: float = 1.25,
        max_gap_ms: int = rules.DEFAULT_MAX_GAP_MS,
        grace_ms: int = 600_000,
    ) -> None:
        self.limits = Limits(rated_w * spike_tolerance, max_gap_ms)
        self.grace_ms = grace_ms
        self.rule_state: dict[str, AssetRuleState] = {}
        # window start -> asset -> [site, building, room, wh, covered_ms]
        self.open_windows: dict[int, dict[str, list[Any]]] = {}
        self.max_event_ms = 0
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.points: list[dict[str, Any]] = []
        self.records = 0
        self.outputs = 0
        self._serializer = TypeSerializer()

    def handle(self, data: bytes) -> None:
        d = json.loads(data)
        reading = Reading(
            d["site_id"],
            d["building_id"],
            d["room_id"],
            d["asset_id"],
            parse_ts_ms(d["ts"]),
            float(d["power_w"]),
            float(d["voltage_v"]),
            float(d["current_a"]),
            float(d["lux"]),
            bool(d["on"]),
            int(d["dim_level"]),
            d.get("fault_code") or None,
        )
        self.records += 1
        asset_id = reading.asset_id
        before = self.rule_state.get(asset_id)
        for start, wh, covered_ms in usage.usage_since_last(before, reading, self.limits):
            bucket = self.open_windows.setdefault(start, {})
            acc = bucket.get(asset_id)
            if acc is None:
                bucket[asset_id] = [
                    reading.site_id,
                    reading.building_id,
                    reading.room_id,
                    wh,
                    covered_ms,
                ]
            else:
                acc[3] += wh
                acc[4] += covered_ms
        after, events = rules.step(before, reading, self.limits)
        if after is not before:
            self.rule_state[asset_id] = after
            self._emit(events)
            self._emit((rules.asset_state(reading),))
        if reading.ts_ms > self.max_event_ms:
            self.max_event_ms = reading.ts_ms
            self._close_windows()

    def _close_windows(self) -> None:
        watermark = self.max_event_ms - self.grace_ms
        for start in sorted(self.open_windows):
            if start + HOUR_MS - 1 >= watermark:
                return
            bucket = self.open_windows.pop(start)
            self._emit(
                usage.usage_report_of(
                    usage.UsageScope("asset", site, building, room, asset_id),
                    window_start_ms=start,
                    window_ms=HOUR_MS,
                    wh=wh,
                    covered_ms=covered_ms,
                )
                for asset_id, (site, building, room, wh, covered_ms) in bucket.items()
            )

    def _emit(self, events: Iterable[object]) -> None:
        serialize = self._serializer.serialize
        for event in events:
            self.outputs += 1
            for write in views.command_writes(event):
                item = {k: serialize(_plain(v)) for k, v in write.item.items()}
                self.items[(str(write.item["pk"]), str(write.item["sk"]))] = item
            for point in views.time_points(event):
                self.points.append(to_record(point))

    def flush(self) -> None:
        self.items.clear()
        self.points.clear()


def run_plain(payloads: Sequence[bytes], *, flush_every: int = 5_000) -> tuple[int, float]:
    """(records, CPU seconds) of the plain loop over `payloads`."""
    worker = PlainWorker()
    cpu0 = time.process_time()
    for lo in range(0, len(payloads), flush_every):
        for data in payloads[lo : lo + flush_every]:
            worker.handle(data)
        worker.flush()
    return worker.records, time.process_time() - cpu0
