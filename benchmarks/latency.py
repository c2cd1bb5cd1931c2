"""PutRecord -> fault item visible in the command model: the measuring half of
`luxflow bench --latency` (`benchmarks.latency_run` starts the emulators and the worker).

While a simulated fleet sends its normal readings (every asset one reading every
`reading_interval_ms`, stamped when sent, in PutRecords batches every 100 ms, partition key
`site_id`), a fault thread sends one reading with a device fault code every `fault_every_ms`
with a single PutRecord, each from another asset (so no fault re-opens within its cool-down
and no site floods). A fault's item key is known in advance (`domain.views`:
`BLDG#<site>#<building>` / `FAULT#<ts_ms>#<asset>#<code>`); a poller reads every pending key
with one strongly consistent BatchGetItem per round. A fault's latency is from just before its
PutRecord to the end of the poll that first returned its item: an upper bound, too high by at
most one poll round (the round time is reported).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from domain.events import Fault
from domain.telemetry import Reading, encode_reading
from domain.views import fault_sk
from sim.params import SimParams
from sim.simulation import Simulation

FAULT_CODE = "E42"
TICK_S = 0.1
POLL_PAUSE_S = 0.05


@dataclass(frozen=True)
class LatencyPlan:
    """What one runner's measurement sends. The defaults: 50 sites of 20 assets at the
    design's 100 MB per site per day (a reading per asset every 4.2 s, about 240 records/s)
    over 2 shards, and 120 faults, one every 0.5 s. Twice that (a shard at its design fill
    of 500 records/s) is more than moto's DynamoDB takes on 2 cores at the 5 s checkpoint:
    the checkpoint's sequential conditional PutItems then outlast the interval and the
    backlog grows without a steady state (`--latency-sites` measures it anyway)."""

    faults: int = 120
    cold_faults: int = 30
    """Faults sent from the fleet's first reading on, one every `fault_every_ms` (15 s, over
    three reading intervals): the cold start, every asset's first current state written,
    measured apart from the `faults` sent once it is over."""
    refresh_ms: int | None = None
    """`LUXFLOW_STATE_REFRESH_MS` of the worker; None: its default. A period shorter than the
    measurement shows whether the fleet's refreshes come back as a burst."""
    sites: int = 50
    reading_interval_ms: int = 4_200
    shards: int = 2
    fault_every_ms: int = 500
    warmup_timeout_s: float = 240.0
    fault_timeout_s: float = 30.0

    @property
    def background_records_per_s(self) -> float:
        return self.sites * 20 * 1000 / self.reading_interval_ms


def fleet_templates(sites: int, now_ms: int) -> list[Reading]:
    """One normal reading per asset of a simulated fleet of `sites` sites (20 assets each),
    taken from the simulator so that values and ids are realistic; re-stamped when sent."""
    params = SimParams(
        sites=sites,
        buildings_per_site=2,
        rooms_per_building=2,
        lamps_per_room=4,
        sensors_per_room=1,
        start_ms=now_ms - now_ms % 60_000 - 120_000,
        duration_ms=60_000,
        interval_ms=60_000,
        seed=23,
        fault_count=0,
        spike_count=0,
    )
    first: dict[str, Reading] = {}
    for reading in Simulation(params).readings():
        first.setdefault(reading.asset_id, reading)
    return [msgspec.structs.replace(r, fault_code=None) for r in first.values()]


def fault_order(templates: Sequence[Reading], count: int) -> list[Reading]:
    """`count` assets to fault, one site after another (round robin), each asset once."""
    by_site: dict[str, list[Reading]] = {}
    for reading in templates:
        by_site.setdefault(reading.site_id, []).append(reading)
    order: list[Reading] = []
    depth = 0
    while len(order) < count:
        row = [assets[depth] for assets in by_site.values() if depth < len(assets)]
        if not row:
            raise ValueError(f"{count} faults need {count} assets; the fleet has {len(order)}")
        order.extend(row)
        depth += 1
    return order[:count]


def fault_key(reading: Reading) -> dict[str, dict[str, str]]:
    """The command-table key of the fault `reading` opens."""
    fault = Fault(
        reading.site_id,
        reading.building_id,
        reading.room_id,
        reading.asset_id,
        FAULT_CODE,
        reading.ts_ms,
    )
    return {
        "pk": {"S": f"BLDG#{fault.site_id}#{fault.building_id}"},
        "sk": {"S": fault_sk(fault)},
    }


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least `fraction` of the values at
    or below it (p99 of 120 values is the 119th smallest); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Measurement:
    """The live state of one runner's measurement; threads update it under `lock`."""

    plan: LatencyPlan
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: dict[tuple[str, str], float] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)
    sent_s: list[float] = field(default_factory=list)
    """When each fault of `latencies_s` was sent (monotonic seconds), in the same order."""
    faults_sent: int = 0
    background_sent: int = 0
    background_s: float = 0.0
    poll_rounds: int = 0
    poll_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    faulted: set[str] = field(default_factory=set)
    """Assets whose fault was sent: the background no longer sends their readings."""
    put_lock: threading.Lock = field(default_factory=threading.Lock)
    """One put at a time: moto's Kinesis numbers a shard's records without a lock, so two
    concurrent puts can get one sequence number and one record is lost."""


class Background(threading.Thread):
    """Every asset's normal reading once per `interval_ms`, spread evenly over the interval:
    one PutRecords batch (at most 500) per 100 ms tick."""

    def __init__(
        self, kinesis: Any, stream: str, templates: Sequence[Reading], m: Measurement
    ) -> None:
        super().__init__(name="bench-background", daemon=True)
        self._kinesis, self._stream, self._m = kinesis, stream, m
        slots = max(1, round(m.plan.reading_interval_ms / 1000 / TICK_S))
        self._slots: list[list[Reading]] = [list(templates[i::slots]) for i in range(slots)]

    def run(self) -> None:
        m, slot, next_tick = self._m, 0, time.monotonic()
        started = next_tick
        while not m.stop.is_set():
            with m.lock:
                now_ms = _wall_ms()
                batch = [
                    msgspec.structs.replace(r, ts_ms=now_ms)
                    for r in self._slots[slot]
                    if r.asset_id not in m.faulted
                ]
            for lo in range(0, len(batch), 500):
                entries = [
                    {"Data": encode_reading(r), "PartitionKey": r.site_id}
                    for r in batch[lo : lo + 500]
                ]
                try:
                    with m.put_lock:
                        response = self._kinesis.put_records(
                            StreamName=self._stream, Records=entries
                        )
                except Exception as exc:  # the run goes on; the report says what failed
                    with m.lock:
                        m.errors.append(f"background PutRecords: {exc!r}")
                    continue
                with m.lock:
                    m.background_sent += len(entries) - int(response.get("FailedRecordCount", 0))
            slot = (slot + 1) % len(self._slots)
            next_tick += TICK_S
            m.stop.wait(max(0.0, next_tick - time.monotonic()))
            with m.lock:
                m.background_s = time.monotonic() - started


def send_fault(kinesis: Any, stream: str, template: Reading, m: Measurement) -> None:
    """One fault reading by PutRecord; its clock starts just before the call (once no
    background put is in flight: see `Measurement.put_lock`).

    The asset's background readings stop first, and the fault is stamped 1 ms after any
    reading the background stamped before: a reading at or before an asset's newest is
    ignored by the rules, so a background reading of the same asset racing ahead of the fault
    on the other thread would otherwise swallow it."""
    with m.lock:
        m.faulted.add(template.asset_id)
        ts_ms = _wall_ms() + 1
    reading = msgspec.structs.replace(template, ts_ms=ts_ms, fault_code=FAULT_CODE)
    key = fault_key(reading)
    data = encode_reading(reading)
    with m.put_lock:
        started = time.monotonic()
        with m.lock:
            m.pending[(key["pk"]["S"], key["sk"]["S"])] = started
        kinesis.put_record(StreamName=stream, Data=data, PartitionKey=reading.site_id)
    with m.lock:
        m.faults_sent += 1


class Poller(threading.Thread):
    """Reads every pending fault key (strongly consistent BatchGetItem, 100 keys a call) in
    rounds; a key found gives its fault's latency; one unseen for `fault_timeout_s` is an
    error."""

    def __init__(self, dynamodb: Any, table: str, m: Measurement) -> None:
        super().__init__(name="bench-poller", daemon=True)
        self._dynamodb, self._table, self._m = dynamodb, table, m

    def run(self) -> None:
        m = self._m
        while not (m.stop.is_set() and not m.pending):
            round_started = time.monotonic()
            with m.lock:
                keys = list(m.pending)
            for lo in range(0, len(keys), 100):
                self._poll(keys[lo : lo + 100])
            now = time.monotonic()
            with m.lock:
                m.poll_rounds += 1
                m.poll_seconds += now - round_started
                for key, started in list(m.pending.items()):
                    if now - started > m.plan.fault_timeout_s:
                        del m.pending[key]
                        m.errors.append(
                            f"fault {key[1]} not visible after {m.plan.fault_timeout_s} s"
                        )
            time.sleep(POLL_PAUSE_S)

    def _poll(self, keys: list[tuple[str, str]]) -> None:
        m = self._m
        request = {
            self._table: {
                "Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in keys],
                "ConsistentRead": True,
                "ProjectionExpression": "pk, sk",
            }
        }
        try:
            response = self._dynamodb.batch_get_item(RequestItems=request)
        except Exception as exc:  # a failed round is retried by the next one
            with m.lock:
                m.errors.append(f"poll: {exc!r}")
            return
        seen = time.monotonic()
        with m.lock:
            for item in response.get("Responses", {}).get(self._table, []):
                started = m.pending.pop((item["pk"]["S"], item["sk"]["S"]), None)
                if started is not None:
                    m.latencies_s.append(seen - started)
                    m.sent_s.append(started)


def measure_faults(
    kinesis: Any,
    stream: str,
    faults: Sequence[Reading],
    m: Measurement,
    *,
    progress: Callable[[str], None],
    label: str,
) -> None:
    """Send `faults` one every `fault_every_ms` and wait until each is seen or timed out."""
    every_s = m.plan.fault_every_ms / 1000
    next_at = time.monotonic()
    last_report = next_at
    for template in faults:
        m.stop.wait(max(0.0, next_at - time.monotonic()))
        try:
            send_fault(kinesis, stream, template, m)
        except Exception as exc:
            with m.lock:
                m.errors.append(f"fault PutRecord: {exc!r}")
        next_at += every_s
        if time.monotonic() - last_report >= 10:
            last_report = time.monotonic()
            progress(f"{label}: {progress_line(m)}")
    deadline = time.monotonic() + m.plan.fault_timeout_s + 1
    while time.monotonic() < deadline:
        with m.lock:
            if not m.pending:
                break
        time.sleep(0.1)


def progress_line(m: Measurement) -> str:
    with m.lock:
        seen, sent = len(m.latencies_s), m.faults_sent
        p50 = percentile(m.latencies_s, 0.5)
        background = m.background_sent
    so_far = f", p50 so far {p50:.2f} s" if p50 is not None else ""
    # A measurement beside the fleet's (the cold start's) counts no background of its own.
    fleet = f"; {background:,} background records" if background else ""
    return f"{seen}/{sent} faults seen{so_far}{fleet}"
