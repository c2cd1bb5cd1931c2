"""Reports on time in continuous operation, on emulated AWS: ONE
`luxflow worker` (the local polling runner) keeps running while telemetry arrives in stages,
with the idle close out of reach, so only the readings' event time can close a window.

The event clock stands still between stages (no record beyond a stage's last one exists yet),
so what the command model holds once the worker has checkpointed a stage is exactly what an
event clock at that stage's last reading has emitted:

- nothing before a window's end plus grace (a report then would miss readings still allowed
  to arrive);
- every hourly report, and the daily one, once one reading past end plus grace was read (the
  readings are 30 s apart, so within grace + 30 s of the window end on the event clock), and
  written at the checkpoint that follows, with the exact energy and coverage of the readings.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from core.clock import DAY_MS, HOUR_MS, MINUTE_MS
from domain.telemetry import Reading, encode_reading
from domain.timestamps import format_ts
from tests.support.deployment import Deployment

pytestmark = pytest.mark.integration

GRACE_MS = 600_000  # LUXFLOW_WINDOW_GRACE_MS, its default
CHECKPOINT_INTERVAL_MS = 5_000  # LUXFLOW_CHECKPOINT_INTERVAL_MS, its default
IDLE_TIMEOUT_MS = DAY_MS  # far beyond the test: no window closes by processing time
READING_EVERY_MS = 30_000
STATE_REFRESH_MS = 900_000  # LUXFLOW_STATE_REFRESH_MS, its default
SECOND_MS = 1_000

# site s1 > building b1 > rooms r1 (a0-a2) and r2 (a3-a5); each lamp at its own constant power.
# Power x 30 s is a multiple of 1/8 Wh (P / 120 Wh), so every sum below is exact in binary
# floating point and the stored kWh can be compared with ==.
ASSETS = {
    "a0": ("r1", 15.0),
    "a1": ("r1", 30.0),
    "a2": ("r1", 45.0),
    "a3": ("r2", 60.0),
    "a4": ("r2", 75.0),
    "a5": ("r2", 90.0),
}
USAGE_FIELDS = (
    "level",
    "site_id",
    "building_id",
    "room_id",
    "asset_id",
    "window_start_ms",
    "window_end_ms",
    "window_ms",
    "kwh",
    "covered_ms",
    "coverage",
)
HEADER = "site_id,building_id,room_id,asset_id,kind,rated_w,nominal_voltage_v\n"


def at(day_ms: int, hours: int, minutes: int, seconds: int = 0) -> int:
    return day_ms + hours * HOUR_MS + minutes * MINUTE_MS + seconds * SECOND_MS


@pytest.fixture
def deployment(
    moto_endpoint: str, aws: Callable[[str], Any], unique_name: Callable[[str], str], tmp_path: Path
) -> Deployment:
    deployment = Deployment(moto_endpoint, aws, unique_name("lx"), tmp_path)
    deployment.env.update(
        {
            "LUXFLOW_IDLE_TIMEOUT_MS": str(IDLE_TIMEOUT_MS),
            "LUXFLOW_CHECKPOINT_INTERVAL_MS": str(CHECKPOINT_INTERVAL_MS),
            "LUXFLOW_WINDOW_GRACE_MS": str(GRACE_MS),
        }
    )
    deployment.setup(shards=1)
    registry = tmp_path / "assets.csv"
    registry.write_text(
        HEADER
        + "".join(
            f"s1,b1,{room},{asset},luminaire,100,230\n" for asset, (room, _) in ASSETS.items()
        )
    )
    deployment.luxflow("registry", "import", str(registry))
    return deployment


def readings(from_ms: int, to_ms: int) -> list[Reading]:
    """Every lamp's readings at from_ms, from_ms + 30 s, ..., to_ms (inclusive), in time order."""
    return [
        Reading("s1", "b1", room, asset, ts_ms, power_w, 230.0, power_w / 230.0, 300.0, True, 100)
        for ts_ms in range(from_ms, to_ms + 1, READING_EVERY_MS)
        for asset, (room, power_w) in ASSETS.items()
    ]


def put(deployment: Deployment, batch: list[Reading]) -> int:
    """PutRecords (partition key: the site, as the IoT rule sets it); returns the sequence
    number of the last record, which the worker's checkpoint reaches once it is done with it."""
    kinesis = deployment.aws("kinesis")
    last = 0
    for start in range(0, len(batch), 500):
        entries = [
            {"PartitionKey": r.site_id, "Data": encode_reading(r)}
            for r in batch[start : start + 500]
        ]
        response = kinesis.put_records(StreamName=deployment.env["LUXFLOW_STREAM"], Records=entries)
        assert response["FailedRecordCount"] == 0
        last = max(last, *(int(r["SequenceNumber"]) for r in response["Records"]))
    return last


def wait_for_checkpoint(
    deployment: Deployment, worker: subprocess.Popen[str], sequence_number: int
) -> None:
    """Until the worker's checkpoint reaches `sequence_number`. A checkpoint is written only
    after the sinks stored everything the records up to it produced,
    so from then on the command model shows all that reading them emitted, and, with no later
    record and no idle close, nothing more can come: both present and absent items are final.
    The timeout only keeps a broken worker from hanging the suite."""
    deadline = time.monotonic() + 90
    while True:
        leases = list(deployment.leases().values())  # none until the worker takes the shard
        checkpoint = str(leases[0].get("checkpoint", "")) if leases else ""
        if checkpoint.isdigit() and int(checkpoint) >= sequence_number:
            return
        if worker.poll() is not None:
            output, _ = worker.communicate()
            pytest.fail(f"the worker exited {worker.returncode}:\n{output[-4000:]}")
        assert time.monotonic() < deadline, f"no checkpoint at {sequence_number}: {leases}"
        time.sleep(0.2)


Window = tuple[int, int]  # (window_ms, window_start_ms)


def expected_usage(sent: Iterable[Reading], windows: set[Window]) -> dict[tuple[str, str], Any]:
    """The usage items of `windows`, computed from the readings sent: each interval between
    two consecutive readings of a lamp adds its energy (constant power: power x duration) and
    duration to the lamp, its room, building and site; coverage is the covered time over the
    scope's registered lamps x window."""
    by_asset: dict[str, list[Reading]] = defaultdict(list)
    for reading in sent:
        by_asset[reading.asset_id].append(reading)
    sums: dict[tuple[str, str, str, int, int], list[float]] = defaultdict(lambda: [0.0, 0])
    for asset, series in by_asset.items():
        room = ASSETS[asset][0]
        for first, second in itertools.pairwise(series):
            assert first.power_w == second.power_w
            duration_ms = second.ts_ms - first.ts_ms
            wh = first.power_w * duration_ms / HOUR_MS
            for window_ms in (HOUR_MS, DAY_MS):
                start_ms = first.ts_ms - first.ts_ms % window_ms
                assert second.ts_ms <= start_ms + window_ms  # no interval crosses a bound
                for level, scope_room, scope_asset in (
                    ("asset", room, asset),
                    ("room", room, ""),
                    ("building", "", ""),
                    ("site", "", ""),
                ):
                    acc = sums[(level, scope_room, scope_asset, window_ms, start_ms)]
                    acc[0] += wh
                    acc[1] += duration_ms
    lamps = {"asset": 1, "room": 3, "building": 6, "site": 6}
    items: dict[tuple[str, str], Any] = {}
    for (level, room, asset, window_ms, start_ms), (wh, covered_ms) in sums.items():
        if (window_ms, start_ms) not in windows:
            continue
        pk = {
            "asset": "USAGE#s1#b1#" + room,
            "room": "USAGE#s1#b1#" + room,
            "building": "USAGE#s1#b1",
            "site": "USAGE#s1",
        }[level]
        subject = {"asset": asset, "room": room, "building": "b1", "site": "s1"}[level]
        name = "1h" if window_ms == HOUR_MS else "1d"
        items[(pk, f"{level}#{name}#{start_ms:013d}#{subject}")] = {
            "level": level,
            "site_id": "s1",
            "building_id": "" if level == "site" else "b1",
            "room_id": room if level in ("asset", "room") else "",
            "asset_id": asset,
            "window_start_ms": start_ms,
            "window_end_ms": start_ms + window_ms,
            "window_ms": window_ms,
            "kwh": wh / 1000,
            "covered_ms": covered_ms,
            "coverage": covered_ms / (lamps[level] * window_ms),
        }
    return items


def stored_usage(items: list[dict[str, Any]], fields: Iterable[str]) -> dict[tuple[str, str], Any]:
    wanted = tuple(fields)
    return {
        (item["pk"], item["sk"]): {name: item.get(name) for name in wanted}
        for item in items
        if item["type"] == "usage_report"
    }


def test_a_running_worker_writes_each_report_once_end_plus_grace_passed_on_the_event_clock(
    deployment: Deployment,
) -> None:
    day_ms = time.time_ns() // 1_000_000 // DAY_MS * DAY_MS - 2 * DAY_MS  # UTC midnight, day D
    next_day_ms = day_ms + DAY_MS
    hour_22, hour_23, day = (
        (HOUR_MS, at(day_ms, 22, 0)),
        (HOUR_MS, at(day_ms, 23, 0)),
        (DAY_MS, day_ms),
    )
    # Stage by stage: the last reading sent, and the windows whose reports must then be stored
    # (no other). Windows close when the event clock passes end + grace, here 23:10 for the
    # 22:00 hour, 00:10 (next day) for the 23:00 hour and day D; the first reading past it is
    # 30 s later.
    stages = [
        (at(day_ms, 23, 9, 30), set()),  # the 22:00 hour: end + grace not passed yet
        (at(day_ms, 23, 10, 30), {hour_22}),  # ... and now one reading past it
        (at(next_day_ms, 0, 9, 30), {hour_22}),  # the 23:00 hour and day D: not yet
        (at(next_day_ms, 0, 10, 30), {hour_22, hour_23, day}),  # ... and now
    ]
    assert at(day_ms, 23, 10, 30) - (at(day_ms, 23, 0) + GRACE_MS) == READING_EVERY_MS

    worker = deployment.start_worker()
    sent: list[Reading] = []
    try:
        next_ms = at(day_ms, 22, 0)
        for last_ms, windows in stages:
            batch = readings(next_ms, last_ms)
            next_ms = last_ms + READING_EVERY_MS
            wait_for_checkpoint(deployment, worker, put(deployment, batch))
            sent.extend(batch)

            items = deployment.items()
            # The worker read every record of the stage. At constant power a lamp's state is
            # rewritten only by the refresh (the deadband keeps drift out): it is at most
            # the refresh time older than its last reading, and one of its readings.
            states = {i["asset_id"]: i["ts_ms"] for i in items if i["type"] == "asset_state"}
            assert set(states) == set(ASSETS)
            for ts_ms in states.values():
                assert last_ms - STATE_REFRESH_MS < ts_ms <= last_ms
                assert (ts_ms - at(day_ms, 22, 0)) % READING_EVERY_MS == 0
            expected = expected_usage(sent, windows)
            assert stored_usage(items, USAGE_FIELDS) == expected, f"up to {format_ts(last_ms)}"
            # A healthy fleet at constant power: no fault, no spike; the registry, states, usage.
            assert {i["type"] for i in items} <= {"registry_asset", "asset_state", "usage_report"}
        before_stop = deployment.items()
    finally:
        output = deployment.stop(worker)

    assert worker.returncode == 0, output[-4000:]
    match = re.search(r"luxflow worker: (\d+) records read, (\d+) dead-lettered", output)
    assert match is not None, output[-4000:]
    assert (int(match.group(1)), int(match.group(2))) == (len(sent), 0)
    assert deployment.dead_letters() == []
    # The stop checkpoints; it does not close the open 00:00 windows (no idle close either).
    assert deployment.items() == before_stop
    # 6 lamps x (2 hours + 1 day) + 2 rooms x 3 + building x 3 + site x 3, and their values:
    # e.g. lamp a0 (15 W) used 0.015 kWh in each hour and 0.03 kWh on day D (22:00-24:00),
    # a 1/12 coverage of the day.
    final = stored_usage(before_stop, ("kwh", "covered_ms", "coverage"))
    assert len(final) == 30
    assert final[("USAGE#s1#b1#r1", f"asset#1h#{at(day_ms, 22, 0):013d}#a0")] == {
        "kwh": 0.015,
        "covered_ms": HOUR_MS,
        "coverage": 1.0,
    }
    assert final[("USAGE#s1", f"site#1d#{day_ms:013d}#s1")] == {
        "kwh": 2 * (15 + 30 + 45 + 60 + 75 + 90) / 1000,
        "covered_ms": 6 * 2 * HOUR_MS,
        "coverage": 1 / 12,
    }
