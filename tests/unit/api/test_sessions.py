"""Login sessions: signed with a key derived from the token (never the token), they expire,
logout ends them, and a token rotation keeps them until the old token is dropped."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from api.sessions import Sessions

TOKEN = "current-" + "c" * 24
OLD = "previous-" + "p" * 24
HOUR_MS = 3_600_000


class Clock:
    def __init__(self) -> None:
        self.now = 1_790_000_000_000

    def __call__(self) -> int:
        return self.now


def test_a_session_holds_no_token_and_is_valid_until_it_expires() -> None:
    clock = Clock()
    sessions = Sessions([TOKEN], 8 * HOUR_MS, clock)
    cookie = sessions.issue()
    assert TOKEN not in cookie and TOKEN[:8] not in cookie
    assert sessions.valid(cookie)
    clock.now += 8 * HOUR_MS - 1
    assert sessions.valid(cookie)
    clock.now += 1
    assert not sessions.valid(cookie)


def test_logout_ends_the_session_and_only_that_one() -> None:
    clock = Clock()
    sessions = Sessions([TOKEN], HOUR_MS, clock)
    ended, kept = sessions.issue(), sessions.issue()
    sessions.end(ended)
    assert not sessions.valid(ended)
    assert sessions.valid(kept)


def test_a_session_with_a_later_expiry_written_in_is_refused() -> None:
    clock = Clock()
    sessions = Sessions([TOKEN], HOUR_MS, clock)
    version, expires, sid, tag = sessions.issue().split(".")
    forged = f"{version}.{int(expires) + 100 * HOUR_MS}.{sid}.{tag}"
    assert not sessions.valid(forged)


def test_rotation_keeps_old_sessions_until_the_old_token_is_dropped() -> None:
    clock = Clock()
    old_cookie = Sessions([OLD], HOUR_MS, clock).issue()
    assert Sessions([TOKEN, OLD], HOUR_MS, clock).valid(old_cookie)
    assert not Sessions([TOKEN], HOUR_MS, clock).valid(old_cookie)


def test_the_revocation_list_is_bounded() -> None:
    clock = Clock()
    sessions = Sessions([TOKEN], HOUR_MS, clock, max_revoked=10)
    for _ in range(50):
        sessions.end(sessions.issue())
    assert len(sessions._revoked) == 10


@given(st.text(max_size=300))
def test_any_cookie_value_not_issued_here_is_invalid(cookie: str) -> None:
    assert not Sessions([TOKEN], HOUR_MS, Clock()).valid(cookie)


@given(st.integers(0, 2**64), st.text(max_size=40), st.text(max_size=80))
def test_any_cookie_of_the_issued_shape_not_issued_here_is_invalid_and_never_an_error(
    expires_ms: int, session_id: str, tag: str
) -> None:
    # A tag holding a non-ASCII character made hmac.compare_digest raise TypeError: a 500 on
    # the page, /page/live and /logout for whoever sent such a cookie.
    sessions = Sessions([TOKEN], HOUR_MS, Clock())
    cookie = f"v1.{expires_ms}.{session_id}.{tag}"
    assert not sessions.valid(cookie)
    sessions.end(cookie)


@given(st.data())
def test_an_issued_cookie_with_any_character_changed_is_invalid(data: st.DataObject) -> None:
    sessions = Sessions([TOKEN], HOUR_MS, Clock())
    cookie = sessions.issue()
    at = data.draw(st.integers(0, len(cookie) - 1))
    char = data.draw(st.characters().filter(lambda c: c != cookie[at]))
    assert not sessions.valid(cookie[:at] + char + cookie[at + 1 :])
