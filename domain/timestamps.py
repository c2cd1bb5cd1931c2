"""ISO-8601 UTC timestamps <-> integer epoch milliseconds.

The wire format is fixed: ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (24 characters). That shape is parsed
without ``datetime`` (the date and minute prefix is cached); anything else must follow
``ISO_GRAMMAR`` and then goes through ``datetime.fromisoformat``, which is the authority on the
numbers: the fast path accepts a string only if both accept it too, and gives the same instant.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

ISO_GRAMMAR: Final = (
    r"(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}-?W\d{2}-?\d)"  # calendar or week date
    r"[Tt ]"
    r"\d{2}(?::?\d{2}(?::?\d{2}(?:[.,]\d+)?)?)?"  # hh[:mm[:ss[.fraction]]]
    r"(?:Z|[+-]\d{2}(?::?\d{2}(?::?\d{2}(?:[.,]\d+)?)?)?)"  # the offset, required
)
"""What a timestamp may look like beyond the wire format (ASCII digits): ISO 8601 dates
(extended, basic or week), a time to any precision and an offset. ``fromisoformat`` decides
whether the numbers are valid; the grammar decides which characters may be there."""
_ISO_RE: Final = re.compile(ISO_GRAMMAR, re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_MS_PER_MINUTE = 60_000
_CACHE_LIMIT = 1 << 16

# "YYYY-MM-DDTHH:MM:" -> epoch ms of that minute, or -1 if the prefix is not a valid UTC minute.
_minute_ms: dict[str, int] = {}
_SECONDS_MS = {f"{second:02d}": second * 1000 for second in range(60)}
_MILLIS = {f"{millis:03d}": millis for millis in range(1000)}
# epoch minute -> "YYYY-MM-DDTHH:MM:"
_minute_prefix: dict[int, str] = {}


class TimestampError(ValueError):
    """The string is not an ISO-8601 timestamp with an explicit UTC offset."""


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _parse_minute_prefix(prefix: str) -> int:
    """Epoch ms of ``YYYY-MM-DDTHH:MM:``, or -1 if it is not exactly that shape and valid."""
    digits = prefix[0:4] + prefix[5:7] + prefix[8:10] + prefix[11:13] + prefix[14:16]
    if not (
        len(prefix) == 17
        and prefix.isascii()
        and digits.isdigit()
        and prefix[4] == "-"
        and prefix[7] == "-"
        and prefix[10] == "T"
        and prefix[13] == ":"
        and prefix[16] == ":"
    ):
        return -1
    year, month, day = int(prefix[0:4]), int(prefix[5:7]), int(prefix[8:10])
    hour, minute = int(prefix[11:13]), int(prefix[14:16])
    if (
        year < 1
        or not 1 <= month <= 12
        or not 1 <= day <= _days_in_month(year, month)
        or hour > 23
        or minute > 59
    ):
        return -1
    return (_days_from_civil(year, month, day) * 1440 + hour * 60 + minute) * _MS_PER_MINUTE


def _parse_slow(text: str) -> int:
    # CPython's parser is looser than ISO 8601 around the offset: it skips any one character
    # before it ("13:05:00!Z", "...00\x1fZ") and reads the offset as a C string (a NUL ends
    # it, whatever follows is ignored: "...00Z\x00<anything>"). The grammar comes first.
    if _ISO_RE.fullmatch(text) is None:
        raise TimestampError(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise TimestampError(text) from exc
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise TimestampError(text)
    # Floor division: sub-millisecond digits are truncated towards the past, never rounded up.
    return (parsed - _EPOCH) // _ONE_MS


def parse_ts_ms(text: str) -> int:
    """Epoch milliseconds of an ISO-8601 timestamp with an explicit offset.

    ``YYYY-MM-DDTHH:MM:SS.mmmZ`` is the fast path; other ISO forms accepted by
    ``datetime.fromisoformat`` with an offset (``+00:00``, ``+02:00``, no fraction,
    microseconds) are converted to UTC, sub-millisecond digits truncated.
    Raises ``TimestampError`` for anything else, including timestamps without an offset and
    any string outside ``ISO_GRAMMAR`` that ``fromisoformat`` would accept.
    """
    if len(text) == 24 and text[23] == "Z" and text[19] == ".":
        base = _minute_ms.get(text[:17])
        if base is None:
            if len(_minute_ms) >= _CACHE_LIMIT:
                _minute_ms.clear()
            base = _minute_ms[text[:17]] = _parse_minute_prefix(text[:17])
        # Table look-ups both convert and validate (only ASCII digits in range are keys).
        seconds_ms = _SECONDS_MS.get(text[17:19])
        millis = _MILLIS.get(text[20:23])
        if base >= 0 and seconds_ms is not None and millis is not None:
            return base + seconds_ms + millis
    return _parse_slow(text)


def format_ts(ts_ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` for epoch milliseconds (years 1..9999)."""
    minute, rest_ms = divmod(ts_ms, _MS_PER_MINUTE)
    prefix = _minute_prefix.get(minute)
    if prefix is None:
        if len(_minute_prefix) >= _CACHE_LIMIT:
            _minute_prefix.clear()
        when = _EPOCH + timedelta(minutes=minute)
        prefix = _minute_prefix[minute] = (
            f"{when.year:04d}-{when.month:02d}-{when.day:02d}T{when.hour:02d}:{when.minute:02d}:"
        )
    seconds, millis = divmod(rest_ms, 1000)
    return f"{prefix}{seconds:02d}.{millis:03d}Z"
