"""Plain Python values <-> DynamoDB AttributeValues, without boto3's Decimal round-trip.

boto3's TypeSerializer refuses floats and wants `Decimal`; converting every float through
`Decimal(str(x))` is slow and easy to get wrong. Here a float is written as its shortest
round-tripping text (`repr`), which DynamoDB parses exactly, and an int as its decimal text.

Numbers come back from `from_attribute_value` as int when the text has no fraction or
exponent, else float.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

AttributeValue = dict[str, Any]
"""One DynamoDB AttributeValue in the low-level client's JSON shape, e.g. {"S": "x"}."""

AttributeMap = dict[str, AttributeValue]
"""One DynamoDB item in the low-level client's shape."""


def _str(value: Any) -> AttributeValue:
    return {"S": value}


def _int(value: Any) -> AttributeValue:
    return {"N": str(value)}


def _float(value: Any) -> AttributeValue:
    if not math.isfinite(value):
        raise ValueError(f"DynamoDB cannot store the number {value!r}")
    return {"N": repr(value)}


def _bool(value: Any) -> AttributeValue:
    return {"BOOL": value}


def _none(_value: Any) -> AttributeValue:
    return {"NULL": True}


def _bytes(value: Any) -> AttributeValue:
    return {"B": bytes(value)}


def _list(value: Any) -> AttributeValue:
    return {"L": [to_attribute_value(v) for v in value]}


def _map(value: Any) -> AttributeValue:
    return {"M": to_item(value)}


# Exact-type dispatch (keeps bool apart from int) for the rarer types; isinstance as fallback.
_BY_TYPE: dict[type, Callable[[Any], AttributeValue]] = {
    str: _str,
    bool: _bool,
    int: _int,
    float: _float,
    type(None): _none,
    bytes: _bytes,
    bytearray: _bytes,
    memoryview: _bytes,
    list: _list,
    tuple: _list,
    dict: _map,
}


def to_attribute_value(value: object) -> AttributeValue:
    """One plain value (str, int, float, bool, None, bytes, list/tuple, dict with str keys)."""
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is int:
        return {"N": str(value)}
    convert = _BY_TYPE.get(kind)
    if convert is not None:
        return convert(value)
    if isinstance(value, bool):
        return _bool(value)
    if isinstance(value, str):
        return _str(value)
    if isinstance(value, int):
        return _int(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return _bytes(value)
    if isinstance(value, Mapping):
        return _map(value)
    if isinstance(value, list | tuple):
        return _list(value)
    raise TypeError(f"cannot store a {type(value).__name__} in DynamoDB: {value!r}")


def to_item(mapping: Mapping[str, object]) -> AttributeMap:
    """A whole item. Keys must be strings."""
    item: AttributeMap = {}
    # The attributes of nearly every item (str, int, finite float, None, bool) are converted
    # inline: on this path a function call per attribute costs as much as the conversion.
    for name, value in mapping.items():
        if type(name) is not str and not isinstance(name, str):
            raise TypeError(f"attribute names must be str, got {name!r}")
        kind = type(value)
        if kind is str:
            item[name] = {"S": value}
        elif kind is int:
            item[name] = {"N": str(value)}
        elif kind is float and value - value == 0.0:  # type: ignore[operator]
            # x - x is 0.0 for every finite float, NaN for NaN and +-inf (refused by _float).
            item[name] = {"N": repr(value)}
        elif value is None:
            item[name] = {"NULL": True}
        elif kind is bool:
            item[name] = {"BOOL": value}
        else:
            item[name] = to_attribute_value(value)
    return item


def _number(text: str) -> int | float:
    if "." in text or "e" in text or "E" in text:
        return float(text)
    return int(text)


def from_attribute_value(value: Mapping[str, Any]) -> object:
    """The plain value of one AttributeValue (the inverse of `to_attribute_value`)."""
    ((kind, raw),) = value.items()
    if kind == "S":
        return str(raw)
    if kind == "N":
        return _number(raw)
    if kind == "BOOL":
        return bool(raw)
    if kind == "NULL":
        return None
    if kind == "B":
        return bytes(raw)
    if kind == "L":
        return [from_attribute_value(v) for v in raw]
    if kind == "M":
        return from_item(raw)
    if kind == "SS":
        return {str(v) for v in raw}
    if kind == "NS":
        return {_number(v) for v in raw}
    if kind == "BS":
        return {bytes(v) for v in raw}
    raise ValueError(f"unknown AttributeValue type {kind!r}")


def from_item(item: Mapping[str, Mapping[str, Any]]) -> dict[str, object]:
    """The plain values of a whole item."""
    return {name: from_attribute_value(value) for name, value in item.items()}
