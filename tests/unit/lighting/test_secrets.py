"""Tokens from settings and secrets are parsed strictly: whatever a secret holds, the result
is a usable token or one line naming the setting, never the password "None"."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ConfigError
from lighting.secrets import (
    MAX_API_TOKEN_CHARS,
    MIN_API_TOKEN_CHARS,
    MIN_INFLUX_TOKEN_CHARS,
    api_tokens,
    api_tokens_from,
    strict_token,
    token_in_secret,
)

GOOD = "tok-" + "x" * 28
WHERE = "LUXFLOW_INFLUXDB_TOKEN_SECRET (influx)"


@pytest.mark.parametrize(
    ("secret", "said"),
    [
        ('{"token": null}', "is null"),
        ('{"token": false}', "is a boolean"),
        ('{"token": 12345678901234567}', "is a number"),
        ('{"token": {}}', "is an object"),
        ('{"token": ["a"]}', "is a list"),
        ('{"token": ""}', "is empty"),
        ('{"token": "short"}', "has 5 characters"),
        ("{}", "without a 'token' field"),
        ('{"token": ', "not valid JSON"),
        ("   ", "is empty"),
        ('{"token": "has a space inside it"}', "other than"),
    ],
)
def test_a_secret_without_a_usable_token_is_one_line_naming_the_setting(
    secret: str, said: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        strict_token(token_in_secret(secret, WHERE), WHERE, MIN_INFLUX_TOKEN_CHARS)
    message = str(caught.value)
    assert message.startswith(WHERE)
    assert said in message
    assert "\n" not in message
    assert "None" not in message and "False" not in message


def test_a_plain_or_json_secret_gives_its_token() -> None:
    assert token_in_secret(f"  {GOOD}\n", WHERE) == GOOD
    assert token_in_secret(msgspec.json.encode({"token": GOOD}).decode(), WHERE) == GOOD


def test_the_api_takes_one_token_or_the_current_and_previous_one() -> None:
    other = "old-" + "y" * 28
    assert api_tokens(GOOD, "", None) == [GOOD]
    assert api_tokens(f"{GOOD},{other}", "", None) == [GOOD, other]


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("a", f"at least {MIN_API_TOKEN_CHARS}"),
        ("x" * 15, "has 15 characters"),
        (f"{GOOD},", "is empty"),
        (f"{GOOD},{GOOD}", "twice"),
        (f"{GOOD},{GOOD}1,{GOOD}2", "at most 2"),
        ("x" * 20 + "\"'<>", "other than"),
    ],
)
def test_a_short_or_malformed_api_token_refuses_to_start(value: str, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        api_tokens(value, "", None)
    assert str(caught.value).startswith("LUXFLOW_API_TOKEN:")
    assert said in str(caught.value)


def test_no_api_token_at_all_names_both_settings() -> None:
    with pytest.raises(ConfigError, match="LUXFLOW_API_TOKEN or LUXFLOW_API_TOKEN_SECRET"):
        api_tokens("", "", None)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)


@given(json_values)
def test_any_json_token_is_either_that_exact_string_or_a_config_error(value: object) -> None:
    secret = msgspec.json.encode({"token": value}).decode()
    try:
        token = strict_token(token_in_secret(secret, WHERE), WHERE, MIN_INFLUX_TOKEN_CHARS)
    except ConfigError as exc:
        assert str(exc).startswith(WHERE)
        return
    assert isinstance(value, str) and token == value and len(token) >= MIN_INFLUX_TOKEN_CHARS


@given(st.text(max_size=80))
def test_any_api_token_setting_is_checked_tokens_or_a_config_error(value: str) -> None:
    try:
        tokens = api_tokens_from(value, "LUXFLOW_API_TOKEN")
    except ConfigError:
        return
    assert ",".join(tokens) == value
    assert all(len(token) >= MIN_API_TOKEN_CHARS and token.isascii() for token in tokens)


@given(json_values)
def test_any_json_value_as_the_whole_secret_is_its_token_field_or_a_config_error(
    value: object,
) -> None:
    secret = msgspec.json.encode(value).decode()
    try:
        token = strict_token(token_in_secret(secret, WHERE), WHERE, MIN_INFLUX_TOKEN_CHARS)
    except ConfigError as exc:
        assert str(exc).startswith(WHERE)
        assert "\n" not in str(exc)
        return
    if isinstance(value, dict):
        assert token == value["token"]
    else:
        # A JSON string or list is never its own text taken as a password, quotes and all.
        assert not isinstance(value, str | list)
        assert token == secret


@pytest.mark.parametrize(
    ("secret", "said"),
    [
        ('"user:password"', "a JSON string"),
        ('  ["user:password"]\n', "a JSON list"),
        ('{"token": "first-token", "token": "other-token"}', "'token' twice"),
        ('{"token": "tok-' + "x" * 28 + '", "x": ' + "[" * 100_000 + "]" * 100_000 + "}", "JSON"),
    ],
)
def test_a_json_secret_that_is_not_one_object_with_one_token_is_one_line(
    secret: str, said: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        strict_token(token_in_secret(secret, WHERE), WHERE, MIN_INFLUX_TOKEN_CHARS)
    assert str(caught.value).startswith(WHERE)
    assert said in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_api_token_longer_than_any_credential_the_server_compares_refuses_to_start() -> None:
    # The server refuses every candidate over MAX_API_TOKEN_CHARS unread: a longer token would
    # start a server that answers every request 401.
    with pytest.raises(ConfigError, match=f"at most {MAX_API_TOKEN_CHARS}"):
        api_tokens("t" * (MAX_API_TOKEN_CHARS + 1), "", None)
    assert api_tokens("t" * MAX_API_TOKEN_CHARS, "", None) == ["t" * MAX_API_TOKEN_CHARS]
