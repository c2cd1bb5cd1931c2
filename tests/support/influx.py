"""A luxflow deployment whose query model is a real influxd, and the ground truth of a
simulated run in the shapes `luxflow query` returns."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.clock import DAY_MS, HOUR_MS
from emulators.influxd import Influxd
from sim.params import SimParams
from sim.simulation import Simulation
from sim.truth import GroundTruth
from sinks.influxhttp import InfluxHTTP
from tests.support.deployment import Deployment

USAGE_TOLERANCE = 0.005
"""The simulator's usage truth and the worker's integration agree within 0.5 % (the
evaluation's tolerance: readings at window edges are split differently)."""


def influx_deployment(
    moto_endpoint: str,
    aws: Callable[[str], Any],
    name: str,
    tmp: Path,
    influxd: Influxd,
    *,
    token: str | None = None,
) -> Deployment:
    """A deployment (unique names) writing its query model to `influxd`, bucket `<name>`."""
    deployment = Deployment(moto_endpoint, aws, name, tmp)
    deployment.env.update(
        {
            "LUXFLOW_QUERY_MODEL": "influxdb",
            "LUXFLOW_INFLUXDB_URL": influxd.endpoint,
            "LUXFLOW_INFLUXDB_BUCKET": name.replace("-", "_"),
            "LUXFLOW_INFLUXDB_TOKEN": token if token is not None else influxd.token,
            "LUXFLOW_API_TOKEN": f"api-{uuid.uuid4().hex}",
        }
    )
    return deployment


def influx_client(deployment: Deployment) -> InfluxHTTP:
    env = deployment.env
    return InfluxHTTP(
        env["LUXFLOW_INFLUXDB_URL"], env["LUXFLOW_INFLUXDB_BUCKET"], env["LUXFLOW_INFLUXDB_TOKEN"]
    )


def stored_points(client: InfluxHTTP) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Every point of both measurements: (measurement, tags..., time) -> fields."""
    points: dict[tuple[Any, ...], dict[str, Any]] = {}
    for measurement in ("events", "usage"):
        for result in client.query(f"SELECT * FROM {measurement} GROUP BY *"):
            for series in result.get("series", []):
                tags = tuple(sorted((k, v) for k, v in series.get("tags", {}).items() if v))
                columns = series["columns"]
                for values in series["values"]:
                    row = dict(zip(columns, values, strict=True))
                    time_ms = row.pop("time")
                    fields = {k: v for k, v in row.items() if v is not None}
                    points[(measurement, tags, time_ms)] = fields
    return points


@dataclass
class SimulatedRun:
    deployment: Deployment
    simulation: Simulation
    truth: GroundTruth

    @property
    def params(self) -> SimParams:
        return self.truth.params

    def last_reading_ms(self) -> dict[str, int]:
        return {r.asset_id: r.ts_ms for r in self.simulation.readings()}

    def open_faults(self) -> dict[tuple[str, str], set[tuple[str, str, int]]]:
        """(site, building) -> {(asset, code, opened_at_ms)}: every injected fault cleared
        before the data ended, so what is open is each asset going offline 15 minutes after
        its last reading."""
        last = self.last_reading_ms()
        expected: dict[tuple[str, str], set[tuple[str, str, int]]] = defaultdict(set)
        for asset in self.simulation.assets:
            expected[(asset.site_id, asset.building_id)].add(
                (asset.asset_id, "offline", last[asset.asset_id] + self.params.offline_after_ms)
            )
        return expected

    def spikes(self) -> dict[str, set[tuple[str, int, int]]]:
        """site -> {(asset, started_at_ms, ended_at_ms)} of the injected spikes."""
        expected: dict[str, set[tuple[str, int, int]]] = defaultdict(set)
        for spike in self.truth.spikes:
            expected[spike.site_id].add((spike.asset_id, spike.start_ms, spike.end_ms))
        return expected

    def energy(self, scope: str, every_ms: int) -> dict[tuple[str, ...], float]:
        """(ids of the scope..., window_start_ms as str) -> kWh, from the simulator's
        per-asset hourly truth, summed per scope and hour or UTC day."""
        depth = {"site": 1, "building": 2, "room": 3}[scope]
        sums: dict[tuple[str, ...], float] = defaultdict(float)
        for u in self.truth.usage:
            ids = (u.site_id, u.building_id, u.room_id)[:depth]
            start = u.window_start_ms - u.window_start_ms % every_ms
            sums[(*ids, str(start))] += u.wh / 1000
        return dict(sums)

    @property
    def range_ms(self) -> tuple[int, int]:
        """A range covering the whole simulated period, on UTC day bounds."""
        start = self.params.start_ms - self.params.start_ms % DAY_MS
        end = self.params.start_ms + self.params.duration_ms + HOUR_MS
        return start, end - end % DAY_MS + DAY_MS


def close(got: dict[Any, float], expected: dict[Any, float]) -> dict[Any, tuple[float, float]]:
    """The keys where `got` differs from `expected` by more than the usage tolerance."""
    return {
        key: (got.get(key, float("nan")), value)
        for key, value in expected.items()
        if not abs(got.get(key, float("inf")) - value) <= USAGE_TOLERANCE * value
    }


class FaultyInflux:
    """The real InfluxDB client, except that the next `refuse` write calls are answered
    with `status` (and `Retry-After: retry_after_s`) without being sent. Every body the
    server really received is kept in `sent` (decompressed line counts in `sent_lines`)."""

    def __init__(
        self, real: InfluxHTTP, refuse: int, status: int = 503, retry_after_s: str | None = None
    ) -> None:
        self.real = real
        self.url = real.url
        self.bucket = real.bucket
        self.refuse = refuse
        self.status = status
        self.retry_after_s = retry_after_s
        self.refused = 0
        self.sent_lines: list[int] = []

    def write(self, body: bytes, *, gzip_body: bool = True) -> Any:
        from sinks.influxhttp import WriteResponse

        if self.refused < self.refuse:
            self.refused += 1
            retry_ms = int(float(self.retry_after_s) * 1000) if self.retry_after_s else None
            return WriteResponse(self.status, "injected", retry_ms)
        self.sent_lines.append(body.count(b"\n") + 1)
        return self.real.write(body, gzip_body=gzip_body)
