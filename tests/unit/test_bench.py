"""`luxflow bench` on a tiny input: every required key is there with a sane value.

Keeps the command from rotting; asserts nothing about speed. No network: the emulator part is
skipped (--no-e2e) and checked only for its "skipped" shape. The app is a small stand-in built
here from the domain (nothing imports app.py), shaped like the lighting app: rule state per
asset, an hourly usage window, events and asset state as outputs.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable

import msgspec
import pytest

from benchmarks import cli
from core.clock import HOUR_MS
from domain import rules, usage
from domain.rules import AssetRuleState, Limits
from domain.telemetry import Reading, decode_reading
from streams.app import App
from streams.stream import Stream


class Usage(msgspec.Struct):
    site_id: str = ""
    building_id: str = ""
    room_id: str = ""
    wh: float = 0.0
    covered_ms: int = 0


def _no_state() -> AssetRuleState:
    raise KeyError("use .get()")


def lighting_like_app() -> App:
    app = App("bench-test")
    topic = app.topic("telemetry", decoder=decode_reading)
    asset_rules = app.Table("asset_rules", default=_no_state, value_type=AssetRuleState)
    hourly = (
        app.Table("usage_hourly", default=Usage, value_type=Usage)
        .tumbling(HOUR_MS, grace_ms=600_000, expires_ms=HOUR_MS)
        .relative_to_field(lambda reading: reading.ts_ms)
    )
    limits = Limits(125.0)

    @hourly.on_window_close
    def report(asset_id: str, window: tuple[int, int], acc: Usage) -> Iterable[object]:
        yield usage.usage_report_of(
            usage.UsageScope("asset", acc.site_id, acc.building_id, acc.room_id, asset_id),
            window_start_ms=window[0],
            window_ms=HOUR_MS,
            wh=acc.wh,
            covered_ms=acc.covered_ms,
        )

    @app.agent(topic)
    async def detect(stream: Stream[Reading]) -> AsyncIterator[object]:
        async for reading in stream:
            before = asset_rules.get(reading.asset_id)
            for start, wh, covered in usage.usage_since_last(before, reading, limits):
                acc = hourly.at(reading.asset_id, start).value()
                hourly.at(reading.asset_id, start).set(
                    Usage(
                        reading.site_id,
                        reading.building_id,
                        reading.room_id,
                        acc.wh + wh,
                        acc.covered_ms + covered,
                    )
                )
            after, events = rules.step(before, reading, limits)
            if after is not before:
                asset_rules[reading.asset_id] = after
                for event in events:
                    yield event
                yield rules.asset_state(reading)

    return app


TINY = [
    "--json",
    "--sites",
    "4",
    "--minutes",
    "20",
    "--repeat",
    "1",
    "--memory-assets",
    "40,80",
    "--no-e2e",
    "--no-faust",
]


def test_bench_json_has_every_required_key_with_sane_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(TINY, build_app=lighting_like_app) == 0
    report = json.loads(capsys.readouterr().out)

    assert report["input"]["records"] == 4 * 20 * 20  # sites x assets per site x minutes
    assert report["pipeline"]["records"] == report["input"]["records"]
    assert report["pipeline"]["bad_records"] == 0
    assert report["pipeline"]["outputs"] >= report["input"]["records"]  # one state per reading
    assert report["pipeline"]["requests"]["PutItem"] > 0  # requests were built and sent
    assert report["pipeline_records_per_s_per_core"] > 0
    assert report["plain_boto3_records_per_s_per_core"] > 0
    assert report["plain_boto3_ratio"] > 0
    assert set(report["throughput_by_shards"]) == {"1", "4", "16", "64"}
    assert all(rate > 0 for rate in report["throughput_by_shards"].values())
    assert report["throughput_by_shards"]["1"] == report["pipeline_records_per_s_per_core"]
    assert set(report["bytes_per_live_asset"]) == {"40", "80"}
    assert all(0 < size < 100_000 for size in report["bytes_per_live_asset"].values())
    stages = report["stages_us_per_record"]
    assert 0 < stages["decode"] < stages["full_pipeline"]

    # Skipped parts say so instead of failing.
    assert report["faust_ratio"] is None
    assert "skipped" in report["faust_error"]
    assert report["e2e_ratio_to_emulator"] is None
    assert "skipped" in report["e2e"]["error"]

    machine = report["machine"]
    assert machine["cores"] >= 1
    assert machine["python"].count(".") == 2
    assert set(report["goals"]) == {
        "pipeline_at_least_200k_per_core",
        "faust_ratio_at_least_10",
        "e2e_ratio_at_least_0_8",
        "shards_within_20_percent",
        "at_most_1kb_per_live_asset",
    }


def test_bench_table_names_every_measure(capsys: pytest.CaptureFixture[str]) -> None:
    args = [a for a in TINY if a != "--json"]
    assert cli.main(args, build_app=lighting_like_app) == 0
    table = capsys.readouterr().out
    for name in ("in-process pipeline", "faust_ratio", "plain_boto3_ratio", "64 shard(s)"):
        assert name in table
    assert "memory per live asset, 80 assets" in table
    assert "faust: skipped" in table


def test_faust_comparison_gives_a_figure_or_says_why() -> None:
    from benchmarks.faust_bench import run_faust
    from benchmarks.workload import fleet, generate

    payloads = [r.data for r in generate(fleet(1, 10 * 60_000, episodes=False)).records]
    result = run_faust(payloads)
    if result.error is None:
        assert result.events == len(payloads)
        assert result.events_per_cpu_s is not None and result.events_per_cpu_s > 0
    else:
        assert result.events_per_cpu_s is None
        assert "faust" in result.error
