"""ISO-8601 parsing and formatting, checked against ``datetime``."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.timestamps import ISO_GRAMMAR, TimestampError, format_ts, parse_ts_ms

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def reference_ms(text: str) -> int:
    return (datetime.fromisoformat(text) - EPOCH) // timedelta(milliseconds=1)


@pytest.mark.parametrize(
    ("text", "expected_ms"),
    [
        ("1970-01-01T00:00:00.000Z", 0),
        ("1970-01-01T00:00:00.001Z", 1),
        ("1969-12-31T23:59:59.999Z", -1),
        ("2026-11-27T13:05:00.123Z", 1_795_784_700_123),
        ("2000-02-29T23:59:59.999Z", 951_868_799_999),
        ("2024-12-31T23:59:59.999Z", 1_735_689_599_999),
        ("2025-01-01T00:00:00.000Z", 1_735_689_600_000),
        ("0001-01-01T00:00:00.000Z", -62_135_596_800_000),
        ("9999-12-31T23:59:59.999Z", 253_402_300_799_999),
    ],
)
def test_fast_path_known_values(text: str, expected_ms: int) -> None:
    assert parse_ts_ms(text) == expected_ms
    assert reference_ms(text) == expected_ms
    assert format_ts(expected_ms) == text


@pytest.mark.parametrize(
    ("text", "expected_ms"),
    [
        ("2026-11-27T13:05:00Z", 1_795_784_700_000),
        ("2026-11-27T13:05:00.123+00:00", 1_795_784_700_123),
        ("2026-11-27T14:05:00.123+01:00", 1_795_784_700_123),
        ("2026-11-27T08:05:00.123-05:00", 1_795_784_700_123),
        ("2026-11-27T13:05:00.123999Z", 1_795_784_700_123),  # truncated, not rounded
        ("1969-12-31T23:59:59.9999Z", -1),  # truncation is towards the past
        ("2026-11-27 13:05:00.123Z", 1_795_784_700_123),
    ],
)
def test_fallback_forms(text: str, expected_ms: int) -> None:
    assert parse_ts_ms(text) == expected_ms
    assert reference_ms(text) == expected_ms


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-11-27T13:05:00.123",  # no offset
        "2026-11-27",
        "2026-13-01T00:00:00.000Z",
        "2026-00-01T00:00:00.000Z",
        "2026-02-29T00:00:00.000Z",
        "2100-02-29T00:00:00.000Z",
        "2026-04-31T00:00:00.000Z",
        "2026-11-27T24:00:00.000Z",
        "2026-11-27T13:60:00.000Z",
        "2026-11-27T13:05:60.000Z",  # no leap seconds
        "2026-11-27T13:05:0a.000Z",
        "2026-11-27T13:05:00.12aZ",
        "2026-11-27T13:05:+1.000Z",
        "2026-11-27T13:05:00.1_2Z",
        "2026-11-27T13:05:0\u0663.000Z",  # an Arabic-Indic digit
        "0000-01-01T00:00:00.000Z",
        "2026-11-27T13:05:00.123ZZ",
        "not a time at all, 24ch",
    ],
)
def test_rejects(text: str) -> None:
    with pytest.raises(TimestampError):
        parse_ts_ms(text)


def test_fast_path_agrees_with_datetime_on_random_instants() -> None:
    rng = random.Random(7)
    for _ in range(5000):
        ts_ms = rng.randrange(-2_000_000_000_000, 4_000_000_000_000)
        text = format_ts(ts_ms)
        assert text == (EPOCH + timedelta(milliseconds=ts_ms)).isoformat(
            timespec="milliseconds"
        ).replace("+00:00", "Z")
        assert parse_ts_ms(text) == ts_ms == reference_ms(text)


def test_fast_path_agrees_with_datetime_on_mutated_strings() -> None:
    rng = random.Random(11)
    alphabet = "0123456789-T:.Z +x"
    base = "2024-02-29T23:59:59.999Z"
    for _ in range(5000):
        chars = list(base)
        for _ in range(rng.randint(1, 3)):
            chars[rng.randrange(len(chars))] = rng.choice(alphabet)
        text = "".join(chars)
        try:
            parsed = datetime.fromisoformat(text)
            iso = re.fullmatch(ISO_GRAMMAR, text, re.ASCII) is not None
            expected = reference_ms(text) if parsed.tzinfo is not None and iso else None
        except ValueError:
            expected = None
        try:
            got: int | None = parse_ts_ms(text)
        except TimestampError:
            got = None
        assert got == expected, text


# CPython's `fromisoformat` reads its offset as a C string: whatever follows a NUL there is
# ignored, so "...00Z\x00anything" parsed as a time. ISO 8601 is printable ASCII only.
@given(
    st.sampled_from(
        ["2026-11-27T13:05:00Z", "2026-11-27T13:05:00.123+01:00", "2026-11-27T13:05:00.123Z"]
    ),
    st.characters(
        codec="utf-8",
        exclude_categories=("Cs",),  # a lone surrogate cannot come from JSON
    ).filter(lambda char: not (char.isascii() and char.isprintable())),
    st.data(),
)
def test_a_timestamp_holding_a_control_or_non_ascii_character_anywhere_is_refused(
    text: str, char: str, data: st.DataObject
) -> None:
    at = data.draw(st.integers(0, len(text)), label="at")
    with pytest.raises(TimestampError):
        parse_ts_ms(text[:at] + char + text[at:])


@pytest.mark.parametrize(
    "text",
    ["2026-11-27T13:05:00Z\x00", "2026-11-27T13:05:00Z\x00garbage", "2026-11-27T13:05:00\x00Z"],
)
def test_a_nul_inside_or_after_the_offset_is_refused(text: str) -> None:
    with pytest.raises(TimestampError):
        parse_ts_ms(text)


# The same parser skips one character before the offset, whatever it is: "13:05:00!Z" and
# "13:05:00.123aZ" parsed. A timestamp is believed only in the ISO 8601 grammar.
ISO_FORMS = [
    "2026-11-27T13:05:00Z",
    "2026-11-27T13:05:00.123Z",
    "2026-11-27T13:05:00.123+01:00",
    "2026-11-27T13:05Z",
    "2026-11-27 13:05:00,5-05:00",
    "20261127T130500Z",
    "2026-W48-5T13:05:00Z",
]


@given(
    st.sampled_from(ISO_FORMS),
    st.characters(min_codepoint=0x21, max_codepoint=0x7E),
    st.data(),
)
def test_a_character_outside_the_iso_grammar_anywhere_is_refused(
    text: str, char: str, data: st.DataObject
) -> None:
    at = data.draw(st.integers(0, len(text)), label="at")
    changed = text[:at] + char + text[at:]
    try:
        parse_ts_ms(changed)
    except TimestampError:
        return
    # Still a timestamp: the character made another ISO form (a digit more in a fraction,
    # a basic-format colon), never one that was skipped.
    assert re.fullmatch(ISO_GRAMMAR, changed, re.ASCII), changed


@pytest.mark.parametrize(
    "text", ["2026-11-27T13:05:00!Z", "2026-11-27T13:05:00.123aZ", "2026-11-27T13:05:00 +00:00"]
)
def test_a_character_skipped_before_the_offset_is_refused(text: str) -> None:
    with pytest.raises(TimestampError):
        parse_ts_ms(text)


@pytest.mark.parametrize("text", ISO_FORMS)
def test_the_iso_forms_a_device_may_use_are_accepted(text: str) -> None:
    assert parse_ts_ms(text) == reference_ms(text)
