"""A query model of 500,000 usage points (100 rooms x 5,000 hours) in a real influxd, written
as the InfluxDB sink writes room usage, and the rows the energy API must return for it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.clock import DAY_MS, HOUR_MS
from emulators.influxd import Influxd
from sinks.lineprotocol import encode_line
from tests.support.deployment import Deployment, recent_params
from tests.support.influx import influx_client, influx_deployment

SITE = "site-scan"
BUILDINGS = 10
ROOMS_PER_BUILDING = 10
HOURS = 5_000
START_MS = 1_780_012_800_000
"""2026-05-29T00:00:00Z: a UTC day boundary, so hours and days line up."""
BATCH_LINES = 10_000


def room_ids() -> list[tuple[str, str]]:
    """(building, room) of every room, in id order."""
    return [
        (f"b{b:02d}", f"b{b:02d}-r{r:02d}")
        for b in range(BUILDINGS)
        for r in range(ROOMS_PER_BUILDING)
    ]


def kwh(room_index: int, hour: int) -> float:
    """The stored energy of a room in an hour: distinct per room and hour of day."""
    return round(0.001 * (room_index + 1) + 0.0001 * (hour % 24), 6)


@dataclass
class Scan:
    deployment: Deployment
    token: str

    @property
    def end_ms(self) -> int:
        return START_MS + HOURS * HOUR_MS


def hourly_rows(hours: int = HOURS) -> list[dict[str, Any]]:
    """The API's rows of scope=room, every=1h over the first `hours`: by time, then ids."""
    return [
        {
            "scope": "room",
            "site_id": SITE,
            "building_id": building,
            "room_id": room,
            "every": "1h",
            "window_start_ms": START_MS + hour * HOUR_MS,
            "kwh": kwh(index, hour),
        }
        for hour in range(hours)
        for index, (building, room) in enumerate(room_ids())
    ]


def daily_kwh() -> dict[tuple[str, int], float]:
    """(room, day start) -> kWh of scope=room, every=1d over the whole data."""
    sums: dict[tuple[str, int], float] = {}
    for hour in range(HOURS):
        day = START_MS + hour * HOUR_MS - (START_MS + hour * HOUR_MS) % DAY_MS
        for index, (_, room) in enumerate(room_ids()):
            sums[(room, day)] = sums.get((room, day), 0.0) + kwh(index, hour)
    return sums


def load_scan(
    moto_endpoint: str, aws: Callable[[str], Any], name: str, tmp: Path, influxd: Influxd
) -> Scan:
    """A deployment (tables, a 3-site registry) whose query model holds the 500k points."""
    deployment = influx_deployment(moto_endpoint, aws, name, tmp, influxd)
    deployment.setup(shards=1)
    deployment.simulation(recent_params())  # the registry, for /fleet and /buildings
    client = influx_client(deployment)
    client.create_database()
    lines: list[str] = []
    for hour in range(HOURS):
        for index, (building, room) in enumerate(room_ids()):
            tags = {"site": SITE, "building": building, "room": room, "level": "room"}
            lines.append(
                encode_line(
                    "usage",
                    {**tags, "measure": "usage"},
                    {"kwh": kwh(index, hour)},
                    START_MS + hour * HOUR_MS,
                )
            )
            if len(lines) == BATCH_LINES:
                _write(client, lines)
    if lines:
        _write(client, lines)
    return Scan(deployment, deployment.env["LUXFLOW_API_TOKEN"])


def _write(client: Any, lines: list[str]) -> None:
    response = client.write("\n".join(lines).encode())
    assert response.ok, response.body
    lines.clear()
