"""`to_record`'s fast paths (memoised float texts, dimension checks by length) against the
plain construction they replace: the same record, or the same error, for any point."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sinks import timestream
from sinks.timestream import (
    MAX_DIMENSION_VALUE_BYTES,
    MAX_NAME_BYTES,
    measure_value,
    measure_values,
    to_record,
)


@dataclass(frozen=True)
class Point:
    table: str
    dimensions: dict[str, Any]
    measure_name: str
    measures: dict[str, Any]
    time_ms: int
    version: int = 1


def plain_measure_value(name: str, value: object) -> dict[str, str]:
    if isinstance(value, bool):
        return {"Name": name, "Value": "true" if value else "false", "Type": "BOOLEAN"}
    if isinstance(value, int):
        return {"Name": name, "Value": str(value), "Type": "BIGINT"}
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"measure {name!r} is {value!r}")
        return {"Name": name, "Value": repr(value), "Type": "DOUBLE"}
    if isinstance(value, str):
        return {"Name": name, "Value": value, "Type": "VARCHAR"}
    raise TypeError(f"measure {name!r} has unsupported type {type(value).__name__}")


def plain_record(point: Point) -> dict[str, Any]:
    """The record as it was built before the fast paths: every check, every `repr`."""
    if not point.measures:
        raise ValueError("a point needs at least one measure")
    for name, value in point.dimensions.items():
        if not isinstance(value, str) or not value:
            raise ValueError(f"dimension {name[:64]!r} must be a non-empty string")
        if len(value.encode()) > MAX_DIMENSION_VALUE_BYTES:
            raise ValueError(f"dimension {name[:64]!r} is over {MAX_DIMENSION_VALUE_BYTES} bytes")
        if len(name.encode()) > MAX_NAME_BYTES:
            raise ValueError(f"dimension name {name[:64]!r}... is over {MAX_NAME_BYTES} bytes")
    if len(point.measure_name.encode()) > MAX_NAME_BYTES:
        raise ValueError(f"measure name {point.measure_name[:64]!r}... is too long")
    return {
        "Dimensions": [
            {"Name": name, "Value": value, "DimensionValueType": "VARCHAR"}
            for name, value in point.dimensions.items()
        ],
        "MeasureName": point.measure_name,
        "MeasureValueType": "MULTI",
        "MeasureValues": [plain_measure_value(n, v) for n, v in point.measures.items()],
        "Time": str(int(point.time_ms)),
        "TimeUnit": "MILLISECONDS",
        "Version": int(point.version),
    }


def outcome(build: Any, point: Point) -> object:
    try:
        return build(point)
    except (ValueError, TypeError) as exc:
        return (type(exc), str(exc))


# Few distinct floats, so the memo is hit as well as filled; the signed zeros and the
# non-finite values are the cases a float-keyed memo could get wrong.
floats = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.5, 0.1, 1e16, 1e-7, math.inf, -math.inf, math.nan]),
    st.floats(allow_nan=True, allow_infinity=True),
)
measures_of_any_type = st.one_of(floats, st.integers(), st.booleans(), st.text(max_size=5))
texts = st.one_of(
    st.text(max_size=8),
    st.text(alphabet="\U0001f4a1é", min_size=500, max_size=520),
    st.text(alphabet="a", min_size=2_040, max_size=2_060),
)
points = st.builds(
    Point,
    table=st.just("t"),
    dimensions=st.dictionaries(st.one_of(st.text(max_size=4), texts), texts, max_size=4),
    measure_name=texts,
    measures=st.dictionaries(st.text(max_size=6), measures_of_any_type, max_size=6),
    time_ms=st.integers(min_value=0, max_value=2**45),
    version=st.integers(min_value=1, max_value=2**40),
)


@given(st.lists(points, min_size=1, max_size=8))
@settings(deadline=None)
def test_a_record_is_the_plain_construction_or_its_error(batch: list[Point]) -> None:
    for point in batch:
        assert outcome(to_record, point) == outcome(plain_record, point)


def test_signed_zeros_keep_their_sign_after_the_memo_has_seen_the_other() -> None:
    for value in (0.0, -0.0, 0.0, -0.0):
        (written,) = measure_values({"x": value})
        assert written["Value"] == repr(value)


def test_an_int_or_a_bool_equal_to_a_remembered_float_keeps_its_type() -> None:
    point = Point("t", {"a": "1"}, "m", {"f": 1.0, "i": 1, "b": True}, 1)
    assert to_record(point)["MeasureValues"] == [
        {"Name": "f", "Value": "1.0", "Type": "DOUBLE"},
        {"Name": "i", "Value": "1", "Type": "BIGINT"},
        {"Name": "b", "Value": "true", "Type": "BOOLEAN"},
    ]


def test_a_float_subclass_is_written_with_its_own_repr_and_not_remembered() -> None:
    class Reading(float):
        def __repr__(self) -> str:
            return f"Reading({float(self)!r})"

    assert measure_value("x", Reading(2.5))["Value"] == "Reading(2.5)"
    assert measure_value("x", 2.5)["Value"] == "2.5"


def test_the_memo_is_bounded() -> None:
    for i in range(timestream._FLOAT_TEXT_MAX * 2 + 3):
        measure_value("x", i + 0.5)
    assert len(timestream._float_texts) <= timestream._FLOAT_TEXT_MAX


def test_non_finite_measures_stay_invalid_points() -> None:
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="measure 'x' is"):
            to_record(Point("t", {"a": "1"}, "m", {"x": value}, 1))
