"""Spikes are alarms at onset: the real lighting app raises an episode when the rule
confirms it, stores it with that batch (not at the next checkpoint) and replaces it by its
closed version at the end; a crash in between neither loses nor duplicates it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import MINUTE_MS
from core.records import Record
from domain import views
from domain.events import EnergySpike
from lighting.agents import build_app
from lighting.registry import empty_registry
from sinks.memory import InMemorySink
from streams.processor import EngineConfig
from streams.testing import AgentTestContext
from tests.unit.lighting.test_current_state import T0_MS, asset_reading, newer, run_with_crashes

# 60 W for ten minutes, 200 W (above the thresholds: 125 W rated, the learnt baseline's
# lower) for five, then 60 W again.
POWERS = [60.0] * 10 + [200.0] * 5 + [60.0] * 5


def episode() -> list[Record]:
    return [
        asset_reading(minute + 1, T0_MS + minute * MINUTE_MS, "lamp-1", power_w, True, 100)
        for minute, power_w in enumerate(POWERS)
    ]


def spike_items(items: dict[object, object]) -> list[dict[str, object]]:
    return [
        item  # type: ignore[misc]
        for item in items.values()
        if isinstance(item, dict) and item["type"] == "energy_spike"
    ]


def test_a_spike_is_stored_open_with_its_confirming_batch_and_closed_with_the_end() -> None:
    command = InMemorySink(
        views.command_writes,
        key=lambda write: (write.item["pk"], write.item["sk"]),  # type: ignore[attr-defined]
        replaces=newer,
    )
    ctx = AgentTestContext(
        build_app(empty_registry(), topic="t", grace_ms=10 * MINUTE_MS),
        now_ms=T0_MS,
        sinks=[command],
        config=EngineConfig(checkpoint_interval_ms=10**12),
    )
    stored: list[tuple[int, str | None]] = []
    for record in episode():
        ctx.clock.now_ms = record.arrival_ms
        ctx.deliver([record])
        spikes = [w.item for w in command.stored.values() if w.item["type"] == "energy_spike"]  # type: ignore[attr-defined]
        stored.append((record.sequence_number, spikes[0]["status"] if spikes else None))
    assert ctx.checkpointer.calls == []  # nothing above waited for a checkpoint
    # Above from minute 10; confirmed at minute 12 (two readings and the rule's 2 minutes):
    # stored open with that batch; closed with the first reading back (minute 15).
    assert stored[11] == (12, None)
    assert stored[12] == (13, "open")
    assert stored[14] == (15, "open")
    assert stored[15] == (16, "closed")
    (item,) = [w.item for w in command.stored.values() if w.item["type"] == "energy_spike"]  # type: ignore[attr-defined]
    assert (item["started_at_ms"], item["ended_at_ms"]) == (
        T0_MS + 10 * MINUTE_MS,
        T0_MS + 15 * MINUTE_MS,
    )
    assert item["peak_w"] == 200.0 and item["revision"] == 2
    versions = [o for o in ctx.outputs if isinstance(o, EnergySpike)]
    assert [(v.status, v.ended_at_ms) for v in versions] == [
        ("open", None),
        ("closed", T0_MS + 15 * MINUTE_MS),
    ]
    assert versions[0].event_id == versions[1].event_id


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_a_crash_between_the_spike_alarm_and_a_checkpoint_neither_loses_nor_duplicates_it(
    data: st.DataObject,
) -> None:
    records = episode()
    points = st.sets(st.integers(0, len(records) - 1), max_size=4)
    checkpoints, crashes = data.draw(points), data.draw(points)
    _, straight = run_with_crashes(records, set(), set())
    _, items = run_with_crashes(records, checkpoints, crashes)
    assert items == straight
    (spike,) = spike_items(straight)
    assert spike["status"] == "closed" and spike["peak_w"] == 200.0
    threshold_w = float(spike["threshold_w"])  # type: ignore[arg-type]
    assert spike["excess_wh"] == pytest.approx(5 * (200.0 - threshold_w) / 60)
