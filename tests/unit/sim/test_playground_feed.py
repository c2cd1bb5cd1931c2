"""The playground's live feed, without a stream: the history is sent at once, a reading of
the future only once its time has come, and a malformed record after every N-th reading."""

from __future__ import annotations

import argparse
import threading

from core.clock import HOUR_MS
from sim.malformed import MALFORMED_SAMPLES
from sim.playground import LiveFeed, env_lines, live_simulation

NOW_MS = 1_790_000_000_000 + 1_234_567


def simulation_args(**overrides: float) -> argparse.Namespace:
    values: dict[str, float] = {"sites": 1, "buildings": 1, "rooms": 1, "lamps": 2,
                                "hours": 1, "interval_s": 60, "faults": 2, "spikes": 2,
                                "seed": 3}  # fmt: skip
    values.update(overrides)
    return argparse.Namespace(**values)


def test_the_simulation_starts_hours_before_now_on_the_hour_and_runs_on_live() -> None:
    simulation = live_simulation(simulation_args(hours=2), NOW_MS, live_hours=3)
    params = simulation.params
    assert params.start_ms == NOW_MS - NOW_MS % HOUR_MS - 2 * HOUR_MS
    assert params.start_ms + params.duration_ms == NOW_MS + 3 * HOUR_MS
    # The demo's 2 faults per 2 hours, kept per hour over the longer period.
    assert params.fault_count == round(2 * params.duration_ms / (2 * HOUR_MS))


def test_history_goes_at_once_and_the_future_waits_for_its_time() -> None:
    simulation = live_simulation(simulation_args(), NOW_MS, live_hours=1)
    sent: list[tuple[str, bytes]] = []
    clock = [NOW_MS]
    feed: LiveFeed

    def now_ms() -> int:
        # Each time the feed waits for the future, stop it: what it sent so far is the history.
        feed.stop()
        return clock[0]

    feed = LiveFeed(simulation, sent.extend, malformed_every=10, now_ms=now_ms)
    worker = threading.Thread(target=feed.run)
    worker.start()
    worker.join(timeout=30)
    readings = [r for r in simulation.readings() if r.ts_ms <= NOW_MS]
    malformed = [data for _, data in sent if data in MALFORMED_SAMPLES.values()]
    assert len(sent) == feed.sent == len(readings) + len(readings) // 10
    samples = list(MALFORMED_SAMPLES.values())
    # Every reason, over and over, so the dead letters keep coming in every kind.
    assert malformed == [samples[i % len(samples)] for i in range(len(readings) // 10)]


def test_the_env_file_exports_every_setting_quoted() -> None:
    text = env_lines({"LUXFLOW_API_TOKEN": "abc-123", "AWS_DEFAULT_REGION": "us-east-1"})
    assert text == "export AWS_DEFAULT_REGION='us-east-1'\nexport LUXFLOW_API_TOKEN='abc-123'\n"
