"""Domain events: deterministic ids and tagged serialisation."""

from __future__ import annotations

import msgspec

from domain.events import (
    AssetState,
    DomainEvent,
    EnergySpike,
    Fault,
    UsageReport,
    make_event_id,
)

FAULT = Fault("s", "b", "r", "a", "E1", 60_000)
SPIKE = EnergySpike("s", "b", "r", "a", 60_000, 180_000, 220.0, 100.0, 3.0, "power_above_threshold")
USAGE = UsageReport("s", "b", "r", "a", 0, 3_600_000, 1.5, 3_600_000, 1.0)
STATE = AssetState("s", "b", "r", "a", 7, 1.0, True, 5)


def test_ids_are_pinned() -> None:
    # Changing these breaks idempotency against data already written: do not.
    assert FAULT.event_id == "1ad6fe12fde465807d7d52dd43b5a560"
    assert SPIKE.event_id == "d62a784b4af0ae03f13346026d136178"
    assert USAGE.event_id == "a8cea53d3a88f4edea0aaf0675021333"
    assert STATE.event_id == "67499bc1cc11e8335e700793bfc4cb51"


def test_same_inputs_same_id_and_status_does_not_change_it() -> None:
    assert Fault("s", "b", "r", "a", "E1", 60_000).event_id == FAULT.event_id
    cleared = Fault("s", "b", "r", "a", "E1", 60_000, "cleared", 120_000)
    assert cleared.event_id == FAULT.event_id


def test_identity_fields_change_the_id() -> None:
    ids = {
        FAULT.event_id,
        Fault("s", "b", "r", "a", "E2", 60_000).event_id,
        Fault("s", "b", "r", "a", "E1", 60_001).event_id,
        Fault("s", "b", "r", "a2", "E1", 60_000).event_id,
        SPIKE.event_id,
        msgspec.structs.replace(SPIKE, started_at_ms=1).event_id,
        msgspec.structs.replace(SPIKE, rule="other").event_id,
        USAGE.event_id,
        msgspec.structs.replace(USAGE, window_end_ms=86_400_000).event_id,
        STATE.event_id,
        msgspec.structs.replace(STATE, ts_ms=8).event_id,
    }
    assert len(ids) == 11


def test_id_parts_are_framed() -> None:
    assert make_event_id("a:b", "c") != make_event_id("a", "b:c")
    assert make_event_id("1", 2) != make_event_id(1, "2")
    assert len(make_event_id("x")) == 32


def test_events_round_trip_as_a_tagged_union() -> None:
    events: list[DomainEvent] = [FAULT, SPIKE, USAGE, STATE]
    data = msgspec.json.encode(events)
    assert msgspec.json.decode(data, type=list[DomainEvent]) == events
    assert msgspec.json.decode(msgspec.json.encode(FAULT))["type"] == "fault"
