"""InfluxDB line protocol: one query-model point -> one line.

    <measurement>[,<tag>=<value>...] <field>=<value>[,<field>=<value>...] <timestamp>

Escaping (the InfluxDB line protocol reference, identical in v1.8, v2 and v3):
- measurement: backslash-escape commas and spaces;
- tag keys, tag values and field keys: backslash-escape commas, equals signs and spaces;
- string field values: double-quoted, backslash-escape double quotes and backslashes.
Newlines end a line and cannot be escaped anywhere, so a name or value containing one is
refused here (`ValueError`), as are empty tag values (a tag is absent, never empty), NaN
and infinities (InfluxDB has no such floats) and points without fields.

Field types: `bool` -> `true`/`false`; `int` -> `<n>i` (64-bit integer; checked after bool,
its subclass); `float` -> its shortest repr (always with a `.` or exponent, so InfluxDB never
takes it for an integer); `str` -> a quoted string. Timestamps are integer milliseconds: the
writer sends `precision=ms`.

Tags are written sorted by key (InfluxDB's own recommendation: it sorts them otherwise), so
the same point always gives the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

MIN_TIME_MS: Final = -9_223_372_036_854  # InfluxDB stores int64 nanoseconds
MAX_TIME_MS: Final = 9_223_372_036_854

_MEASUREMENT: Final = str.maketrans({",": "\\,", " ": "\\ "})
_KEY: Final = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_STRING: Final = str.maketrans({'"': '\\"', "\\": "\\\\"})


def _no_newline(what: str, text: str) -> str:
    if "\n" in text or "\r" in text:
        raise ValueError(f"{what} {text!r} contains a line break")
    return text


def escape_measurement(name: str) -> str:
    if not name:
        raise ValueError("the measurement name is empty")
    return _no_newline("measurement", name).translate(_MEASUREMENT)


def escape_key(text: str, what: str = "tag") -> str:
    """A tag key, tag value or field key."""
    if not text:
        raise ValueError(f"a {what} key or value is empty")
    if text.endswith("\\"):
        # A trailing backslash would escape the separator that follows it.
        raise ValueError(f"{what} {text!r} ends with a backslash")
    return _no_newline(what, text).translate(_KEY)


_NAMES_KEPT: Final = 4_096
"""At most this many escaped tag and field keys are remembered (`_escaped_name`): a
schema's few names, never a runaway set."""
_escaped_names: dict[tuple[str, str], str] = {}


def _escaped_name(text: str, what: str) -> str:
    """`escape_key` of a tag or field key, remembered: a point's keys are the schema's (a
    series point has 23 fields), the same on every point, so each is checked and escaped
    once rather than per point."""
    key = (text, what)
    done = _escaped_names.get(key)
    if done is None:
        done = escape_key(text, what)
        if len(_escaped_names) < _NAMES_KEPT:
            _escaped_names[key] = done
    return done


def field_value(name: str, value: object) -> str:
    """The line-protocol form of one field value."""
    kind = type(value)
    if kind is float:  # the common case first, by exact type (a bool is never a float)
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise ValueError(f"field {name!r} is {value!r}")
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"field {name!r} = {value} does not fit in 64 bits")
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"field {name!r} is {value!r}")
        return repr(value)
    if isinstance(value, str):
        return '"' + _no_newline(f"field {name!r}", value).translate(_STRING) + '"'
    raise TypeError(f"field {name!r} has unsupported type {type(value).__name__}")


def encode_line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, object],
    time_ms: int,
) -> str:
    """One line (without the trailing newline). Empty tag values are left out."""
    if not fields:
        raise ValueError("a point needs at least one field")
    if not MIN_TIME_MS <= time_ms <= MAX_TIME_MS:
        raise ValueError(f"time {time_ms} ms is outside InfluxDB's range")
    head = escape_measurement(measurement)
    tag_part = "".join(
        [
            f",{_escaped_name(key, 'tag')}={escape_key(value)}"
            for key, value in sorted(tags.items())
            if value
        ]
    )
    field_part = ",".join(
        [
            f"{_escaped_name(name, 'field')}={field_value(name, value)}"
            for name, value in fields.items()
        ]
    )
    return f"{head}{tag_part} {field_part} {int(time_ms)}"
