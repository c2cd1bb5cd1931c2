"""The AttributeValue serializer and the conditional-write rule, without AWS."""

from __future__ import annotations

import enum
import math

import pytest

from sinks.attrvalues import from_attribute_value, from_item, to_attribute_value, to_item
from sinks.conditional import newer_than_condition


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("lamp", {"S": "lamp"}),
        ("", {"S": ""}),
        (True, {"BOOL": True}),
        (False, {"BOOL": False}),
        (0, {"N": "0"}),
        (-12, {"N": "-12"}),
        (2**70, {"N": str(2**70)}),
        (0.1, {"N": "0.1"}),
        (-0.0, {"N": "-0.0"}),
        (1e20, {"N": "1e+20"}),
        (None, {"NULL": True}),
        (b"\x00\xff", {"B": b"\x00\xff"}),
        (bytearray(b"ab"), {"B": b"ab"}),
        ([1, "a"], {"L": [{"N": "1"}, {"S": "a"}]}),
        ((1,), {"L": [{"N": "1"}]}),
        ({"w": 1.5}, {"M": {"w": {"N": "1.5"}}}),
    ],
)
def test_plain_values(value: object, expected: dict[str, object]) -> None:
    assert to_attribute_value(value) == expected


def test_floats_round_trip_exactly_through_repr() -> None:
    for value in [0.1, 1 / 3, 123456.789, -2.5e-300, 1.7976931348623157e308]:
        back = from_attribute_value(to_attribute_value(value))
        assert back == value and isinstance(back, float)


def test_item_round_trip() -> None:
    item = {
        "pk": "ASSET#a1",
        "sk": "STATE",
        "ts_ms": 1_700_000_000_123,
        "power_w": 12.25,
        "on": True,
        "note": None,
        "raw": b"\x01",
        "tags": ["x", {"y": [1, 2.5]}],
    }
    assert from_item(to_item(item)) == item


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused(value: float) -> None:
    with pytest.raises(ValueError):
        to_attribute_value(value)
    with pytest.raises(ValueError, match="cannot store the number"):
        to_item({"pk": "x", "w": value})


class _Name(str):
    pass


class _Level(enum.IntEnum):
    HIGH = 3


class _Watts(float):
    pass


def test_items_convert_each_attribute_as_to_attribute_value_does() -> None:
    values: list[object] = ["s", 7, -(2**70), 0.5, -0.0, 1e-320, True, None, b"b", [1.5], {"m": 1}]
    values += [_Name("sub"), _Level.HIGH, _Watts(2.5)]
    item = {f"a{i}": value for i, value in enumerate(values)}
    item[_Name("named")] = 1
    assert to_item(item) == {name: to_attribute_value(value) for name, value in item.items()}
    assert to_attribute_value(_Level.HIGH) == {"N": "3"}
    assert to_attribute_value(_Watts(2.5)) == {"N": "2.5"}


def test_unknown_types_are_refused() -> None:
    with pytest.raises(TypeError):
        to_attribute_value(object())
    with pytest.raises(TypeError):
        to_item({1: "x"})  # type: ignore[dict-item]


def test_condition_reads_like_the_rule() -> None:
    expression, names, incoming = newer_than_condition("pk", "ts_ms")
    assert expression == "attribute_not_exists(#key) OR #field < :incoming"
    assert names == {"#key": "pk", "#field": "ts_ms"}
    assert incoming == ":incoming"
