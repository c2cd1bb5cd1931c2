"""Where the KCL daemon starts after a replay from a time, and how a replay time is rounded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ConfigError
from core.records import AT_TIMESTAMP, TRIM_HORIZON, Position
from streams.kcl.daemon import KclSettings, render_properties
from streams.kinesis.leases import Lease
from streams.kinesis.replay import kcl_start_position, replay_from_ms

TIMES = st.integers(min_value=0, max_value=253_402_300_799_999)


def lease(shard: str, checkpoint: Position | str, at_ms: int | None = None) -> Lease:
    return Lease(shard, checkpoint, None, 1, at_timestamp_ms=at_ms)


def kcl(**kwargs: object) -> KclSettings:
    return KclSettings("s", "app", "us-east-1", ["luxflow", "kcl-processor"], **kwargs)  # type: ignore[arg-type]


def properties(settings: KclSettings) -> dict[str, str]:
    lines = render_properties(settings).splitlines()[1:]
    return dict(line.split(" = ", 1) for line in lines)


def test_leases_waiting_at_a_replay_time_start_the_daemon_at_the_earliest() -> None:
    leases = [
        lease("a", AT_TIMESTAMP, 1_700_000_002_500),
        lease("b", AT_TIMESTAMP, 1_700_000_001_000),
        lease("c", Position(5), 1_600_000_000_000),  # checkpointed since: its time is spent
    ]
    assert kcl_start_position(leases, TRIM_HORIZON, None) == (AT_TIMESTAMP, 1_700_000_001_000)


def test_without_a_pending_replay_the_configured_position_is_used() -> None:
    leases = [lease("a", Position(5)), lease("b", TRIM_HORIZON)]
    assert kcl_start_position(leases, TRIM_HORIZON, None) == (TRIM_HORIZON, None)
    assert kcl_start_position([], AT_TIMESTAMP, 1_700_000_000_999) == (
        AT_TIMESTAMP,
        1_700_000_000_000,
    )


@given(TIMES)
def test_a_replay_time_is_truncated_to_its_second(time_ms: int) -> None:
    rounded = replay_from_ms(time_ms)
    assert rounded % 1000 == 0
    assert 0 <= time_ms - rounded < 1000


@given(TIMES)
def test_the_daemon_gets_the_timestamp_in_epoch_seconds_and_no_plain_position(
    time_ms: int,
) -> None:
    props = properties(kcl(initial_position=AT_TIMESTAMP, at_timestamp_ms=replay_from_ms(time_ms)))
    assert props["initialPositionInStreamExtended"] == str(time_ms // 1000)
    assert "initialPositionInStream" not in props


def test_a_plain_position_has_no_timestamp() -> None:
    props = properties(kcl(initial_position=TRIM_HORIZON))
    assert props["initialPositionInStream"] == TRIM_HORIZON
    assert "initialPositionInStreamExtended" not in props


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_position": AT_TIMESTAMP},
        {"initial_position": TRIM_HORIZON, "at_timestamp_ms": 1_000},
        {"initial_position": AT_TIMESTAMP, "at_timestamp_ms": 1_500},
    ],
)
def test_a_timestamp_goes_with_at_timestamp_only_and_in_whole_seconds(
    kwargs: dict[str, object],
) -> None:
    with pytest.raises(ConfigError):
        kcl(**kwargs)
