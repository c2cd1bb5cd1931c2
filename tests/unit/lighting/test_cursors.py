"""Signed page cursors: a cursor is accepted only for the query it was made for, with a key
of this deployment; anything else, whatever its bytes, is a `QueryError` (400), never another
exception (500)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lighting.read.cursors import MAX_CURSOR_CHARS, Cursors, query_id
from lighting.read.rows import QueryError

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
QUERY = query_id("energy", "room", "1h", 0, 10)
STATE = {"t": 3_600_000, "o": 2, "n": 7}


def test_a_cursor_returns_the_state_it_was_made_with() -> None:
    cursors = Cursors([KEY])
    assert cursors.decode(QUERY, cursors.encode(QUERY, STATE)) == STATE


def test_a_cursor_of_another_query_is_refused() -> None:
    cursors = Cursors([KEY])
    cursor = cursors.encode(query_id("energy", "room", "1h", 0, 20), STATE)
    with pytest.raises(QueryError, match="another query"):
        cursors.decode(QUERY, cursor)


@pytest.mark.parametrize("position", range(0, 60, 3))
def test_a_cursor_with_any_character_changed_is_refused(position: int) -> None:
    cursors = Cursors([KEY])
    cursor = cursors.encode(QUERY, STATE)
    changed = "A" if cursor[position] != "A" else "B"
    with pytest.raises(QueryError):
        cursors.decode(QUERY, cursor[:position] + changed + cursor[position + 1 :])


def test_a_truncated_cursor_is_refused() -> None:
    cursors = Cursors([KEY])
    cursor = cursors.encode(QUERY, STATE)
    for length in range(len(cursor)):
        with pytest.raises(QueryError):
            cursors.decode(QUERY, cursor[:length])


def test_a_cursor_forged_with_the_old_unsigned_format_is_refused() -> None:
    # base64 of {"q": ..., "offset": 0}: what the previous API accepted unsigned.
    with pytest.raises(QueryError):
        Cursors([KEY]).decode(QUERY, "eyJxIjoiM2Y5Iiwib2Zmc2V0IjowfQ")


def test_a_cursor_signed_with_a_key_this_deployment_does_not_hold_is_refused() -> None:
    cursor = Cursors([OTHER_KEY]).encode(QUERY, STATE)
    with pytest.raises(QueryError):
        Cursors([KEY]).decode(QUERY, cursor)


def test_during_a_rotation_cursors_of_both_keys_are_accepted_and_the_first_key_signs() -> None:
    old_cursor = Cursors([OTHER_KEY]).encode(QUERY, STATE)
    rotating = Cursors([KEY, OTHER_KEY])
    assert rotating.decode(QUERY, old_cursor) == STATE
    assert Cursors([KEY]).decode(QUERY, rotating.encode(QUERY, STATE)) == STATE


def test_an_overlong_cursor_is_refused_before_decoding() -> None:
    with pytest.raises(QueryError):
        Cursors([KEY]).decode(QUERY, "a" * (MAX_CURSOR_CHARS + 1))


@given(st.text(max_size=2_000))
def test_any_text_as_a_cursor_is_a_query_error(text: str) -> None:
    with pytest.raises(QueryError):
        Cursors([KEY]).decode(QUERY, text)


@given(st.binary(max_size=300), st.binary(min_size=16, max_size=16))
def test_any_payload_with_a_wrong_tag_is_a_query_error(payload: bytes, tag: bytes) -> None:
    import base64

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    with pytest.raises(QueryError):
        Cursors([KEY]).decode(QUERY, f"{b64(payload)}.{b64(tag)}")
