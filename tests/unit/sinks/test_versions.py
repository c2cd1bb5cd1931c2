"""The ordering rule both models share (`sinks.versions`): whatever order the versions of one
event arrive in, and however they are split into checkpoints, the highest is what is kept."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st

from core.retry import Backoff
from domain.events import EnergySpike, Fault, UsageReport
from domain.views import command_writes, point_version, time_points
from lighting.wiring import superseded_by, versioned_points
from sinks.dynamodb import DynamoDBSink, _stored_is_newer
from sinks.timestream import is_superseded, to_record
from sinks.versions import Superseded, VersionedPoint, forward_only, point_identity

H = 3_600_000
T0 = 1_795_737_600_000


def report(covered_ms: int) -> UsageReport:
    return UsageReport(
        "s1", "b1", "r1", "a1", T0, T0 + H, covered_ms / H, covered_ms, covered_ms / H
    )


points = versioned_points(time_points)


class Checkpoint:
    """One shard's checkpoint step over the real buffering rules: a `DynamoDBSink` (its
    buffer; the store's newer-than condition is `stored`), then the query points the
    command model did not supersede, written in order over `query` (an overwrite, as
    InfluxDB does)."""

    def __init__(self) -> None:
        self.stored: int | None = None
        self.query: dict[object, Any] = {}

    def run(self, outputs: list[UsageReport]) -> None:
        superseded = Superseded()
        noted: list[int] = []

        def note(item: Mapping[str, object], field: str, stored: object = None) -> None:
            noted.append(cast(int, item[field]))
            superseded_by(superseded)(item, field, None)

        command = DynamoDBSink(cast(Any, None), "t", command_writes, Backoff(), on_superseded=note)
        buffered = [p for output in outputs for p in points(output)]
        for output in outputs:
            command.write(output)  # conditional writes only buffer: no call
        # The store's condition (`<`), told back as the failed put's stored item tells it.
        for write in command._conditional.values():
            if self.stored is not None and self.stored > write.value:
                note(write.values, write.field)
            elif self.stored is None or self.stored < write.value:
                self.stored = write.value
        stale = forward_only(buffered, superseded)
        for index, point in enumerate(buffered):
            if index not in stale:
                self.query[point_identity(point)] = point


@given(
    versions=st.lists(st.integers(0, H), min_size=1, max_size=8),
    cuts=st.lists(st.integers(1, 8), max_size=6),
)
def test_any_order_in_any_checkpoints_keeps_the_highest_version(
    versions: list[int], cuts: list[int]
) -> None:
    step = Checkpoint()
    rest = [report(v) for v in versions]
    for cut in [*cuts, len(rest)]:
        step.run(rest[:cut])
        rest = rest[cut:]
    assert step.stored == max(versions)
    [kept] = step.query.values()
    assert kept.order == max(versions)
    assert kept.measures["covered_ms"] == max(versions)


@given(versions=st.lists(st.integers(0, H), min_size=1, max_size=8))
def test_the_command_buffer_reports_exactly_the_lower_versions(versions: list[int]) -> None:
    told: list[int] = []
    sink = DynamoDBSink(
        cast(Any, None),
        "t",
        command_writes,
        Backoff(),
        on_superseded=lambda item, field, _stored: told.append(cast(int, item[field])),
    )
    for version in versions:
        sink.write(report(version))
    # Equal buffered versions are one write: telling one of them covers both.
    assert set(told) == {v for v in versions if v < max(versions)}


def test_equal_versions_are_not_superseded() -> None:
    superseded = Superseded()
    superseded.note("e", 5)
    superseded.note("e", 3)
    assert superseded.covers("e", 5) and superseded.covers("e", 4)
    assert not superseded.covers("e", 6)
    assert not superseded.covers("other", 0)
    same = points(report(H)) + points(report(H))
    assert forward_only(same, Superseded()) == set()


def test_unversioned_points_always_pass() -> None:
    fault = Fault("s1", "b1", "r1", "a1", "E1", T0)
    assert point_version(fault) is None
    [point] = points(fault)
    assert not isinstance(point, VersionedPoint)
    superseded = Superseded()
    superseded.note(fault.event_id, 10)
    assert forward_only([point], superseded) == set()


def test_a_spike_revision_is_its_version() -> None:
    ids = ("s1", "b1", "r1", "a1")
    opened = EnergySpike(*ids, T0, None, 900.0, 500.0, 6.5, "rated", status="open")
    closed = EnergySpike(*ids, T0, T0 + 60_000, 900.0, 500.0, 6.5, "rated")
    assert (point_version(opened), point_version(closed)) == (1, 2)
    [point] = points(closed)
    assert isinstance(point, VersionedPoint) and point.order == 2


def test_timestream_version_is_the_event_version_plus_one() -> None:
    [point] = points(report(1_800_000))
    assert to_record(point)["Version"] == 1_800_001
    [unversioned] = points(Fault("s1", "b1", "r1", "a1", "E1", T0))
    assert to_record(unversioned)["Version"] == 1


def test_a_rejection_naming_a_higher_version_is_superseded() -> None:
    record = {"Version": 7}
    assert is_superseded({"RecordIndex": 0, "ExistingVersion": 9}, record, versioned=False)
    assert is_superseded({"RecordIndex": 0, "ExistingVersion": 7}, record, versioned=True)
    # An unversioned point refused at its own version carries a second value: a dead letter.
    assert not is_superseded({"RecordIndex": 0, "ExistingVersion": 7}, record, versioned=False)
    assert not is_superseded({"RecordIndex": 0, "ExistingVersion": 6}, record, versioned=True)
    assert not is_superseded({"RecordIndex": 0, "Reason": "bad dimension"}, record, versioned=True)


def test_a_stored_version_is_newer_only_when_strictly_above() -> None:
    assert _stored_is_newer({"N": "3600000"}, 1_800_000)
    assert not _stored_is_newer({"N": "3600000"}, 3_600_000)
    assert not _stored_is_newer(None, 1)
    assert not _stored_is_newer({"S": "x"}, 1)


def test_the_stored_version_of_a_superseded_report_is_restored_to_the_query_model() -> None:
    superseded, restored = Superseded(), []
    note = superseded_by(superseded, restored.append)
    partial, full = report(1_800_000), report(H)
    [stored] = command_writes(full)
    [incoming] = command_writes(partial)
    # A stored item reads back with whole numbers as int (DynamoDB's N).
    note(incoming.item, "covered_ms", {**stored.item, "kwh": 1, "coverage": 1})
    assert restored == [full]
    assert superseded.covers(partial.event_id, 1_800_000)
    assert not superseded.covers(full.event_id, H)


def test_a_superseded_fault_is_not_restored() -> None:
    superseded, restored = Superseded(), []
    note = superseded_by(superseded, restored.append)
    opened = Fault("s1", "b1", "r1", "a1", "E1", T0)
    cleared = Fault("s1", "b1", "r1", "a1", "E1", T0, "cleared", T0 + 60_000)
    [write] = command_writes(opened)
    note(write.item, "revision", command_writes(cleared)[0].item)
    assert restored == []
    assert superseded.covers(opened.event_id, 1)
