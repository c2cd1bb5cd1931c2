"""One device's absurd numbers stay its own: a finite but enormous reading must not turn its
room's, building's and site's sums into infinity, which every store refuses, so the honest
assets' energy of that hour would be lost with it. Through the real app, in process."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.telemetry import MAX_ABS_VALUE, InvalidTelemetry, decode_reading
from domain.timestamps import format_ts
from tests.unit.lighting.test_agents_poison import ARRIVAL_MS, TS_MS, Stack, raw

HOUR_MS = 3_600_000


def non_finite(value: Any, path: str = "") -> list[str]:
    """Where `value` (an output, as the in-memory sinks keep it) holds inf or nan."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite(v, f"{path}.{k}")]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in non_finite(v, f"{path}[{i}]")]
    if hasattr(value, "__struct_fields__"):
        return [p for f in value.__struct_fields__ for p in non_finite(getattr(value, f), f".{f}")]
    if hasattr(value, "__dict__"):
        return [p for k, v in vars(value).items() for p in non_finite(v, f"{path}.{k}")]
    return []


def two_hours(lamp_2: dict[str, Any]) -> list[bytes]:
    """Readings of two lamps of one room every 5 minutes over two hours (so two hourly
    windows close); lamp-2's with `lamp_2`."""
    start = TS_MS - TS_MS % HOUR_MS - 2 * HOUR_MS
    return [
        raw(lamp, ts=format_ts(start + minute * 60_000), **(lamp_2 if lamp == "lamp-2" else {}))
        for minute in range(0, 125, 5)
        for lamp in ("lamp-1", "lamp-2")
    ]


def stored_numbers_problems(stack: Stack) -> list[str]:
    return [
        f"{key}{path}"
        for sink in (stack.command, stack.query)
        for key, item in sink.stored.items()
        for path in non_finite(item)
    ]


def test_an_enormous_power_reading_is_refused_and_the_rooms_sums_stay_finite() -> None:
    stack = Stack()
    stack.run(two_hours({"power_w": 1e308}))
    assert stored_numbers_problems(stack) == []
    reasons = {d.reason for d in stack.letters() if d.origin == "decode"}
    assert "bad_value: power_w" in reasons


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.sampled_from(["power_w", "voltage_v", "current_a", "lux", "energy_wh"]),
    st.floats(min_value=-1.7e308, max_value=1.7e308) | st.sampled_from([1e308, -1e308, 1e200]),
)
def test_no_finite_reading_makes_a_stored_number_infinite(field: str, value: float) -> None:
    overrides: dict[str, Any] = {field: value}
    if field == "energy_wh":
        overrides = {"v": 2, "energy_wh": abs(value)}
    stack = Stack()
    stack.run(two_hours(overrides))
    assert stored_numbers_problems(stack) == []


@given(st.sampled_from(["power_w", "voltage_v", "current_a", "lux"]), st.floats())
def test_a_reading_decodes_only_with_numbers_within_the_bound(field: str, value: float) -> None:
    try:
        reading = decode_reading(raw(**{field: value}), ARRIVAL_MS)
    except InvalidTelemetry as exc:
        assert exc.reason == f"bad_value: {field}"
        return
    assert abs(getattr(reading, field)) <= MAX_ABS_VALUE
