"""Tokens from a setting or a Secrets Manager secret, parsed strictly.

A secret's SecretString is the token itself, or a JSON object whose `token` field is. What
comes out is a token or a `ConfigError` of one line naming the setting, never the value: a
JSON `null`, `false`, a number, an object or a list is refused rather than turned into the
password "None", "False" or "{}"; so are an empty or short token and one holding whitespace
or control characters (it could never be sent in a header unchanged).

The read API's setting may hold two tokens separated by a comma, the current one first: the
server accepts both while clients move from one to the other (see docs/security.md).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from core.errors import ConfigError
from core.retry import describe_error

MIN_API_TOKEN_CHARS: Final = 16
"""The read API's bearer token: 16 characters at least (use 32 random ones)."""
MIN_INFLUX_TOKEN_CHARS: Final = 8
"""InfluxDB's token: 8 at least (on 1.8 it is `user:password`; v2/v3 tokens are far longer)."""
MAX_API_TOKEN_CHARS: Final = 1_024
"""The longest bearer token the read API compares (a longer credential is refused unread):
a longer token would start a server no client can use."""
MAX_API_TOKENS: Final = 2
"""The current token and the previous one, during a rotation."""
_BEARER: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
"""RFC 6750's token68: what a bearer token may hold."""
_PRINTABLE: Final = re.compile(r"[\x21-\x7e]+")


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def strict_token(
    value: object,
    where: str,
    min_chars: int,
    *,
    bearer: bool = False,
    max_chars: int | None = None,
) -> str:
    """`value` if it is a usable token, else `ConfigError` naming `where` (the setting)."""
    if not isinstance(value, str):
        raise ConfigError(f"{where}: the token is {_kind(value)}, not a string")
    if not value:
        raise ConfigError(f"{where}: the token is empty")
    if len(value) < min_chars:
        raise ConfigError(
            f"{where}: the token has {len(value)} characters; at least {min_chars} are required"
        )
    if max_chars is not None and len(value) > max_chars:
        raise ConfigError(
            f"{where}: the token has {len(value)} characters; at most {max_chars} are accepted"
        )
    allowed = _BEARER if bearer else _PRINTABLE
    if not allowed.fullmatch(value):
        what = "letters, digits and - . _ ~ + / =" if bearer else "printable ASCII, no spaces"
        raise ConfigError(f"{where}: the token holds characters other than {what}")
    return value


def token_in_secret(text: object, where: str) -> object:
    """The token a SecretString holds, not yet checked: the string stripped, or the `token`
    field of the JSON object it holds (whatever JSON value that is). A secret that looks like
    another JSON value (a string in quotes, a list) is refused rather than taken as a token
    quotes and all, and so is an object naming `token` twice (which one is meant?)."""
    if not isinstance(text, str):
        raise ConfigError(f"{where}: the secret has no SecretString")
    stripped = text.strip()
    if stripped[:1] in ('"', "["):
        what = "a JSON string" if stripped[0] == '"' else "a JSON list"
        raise ConfigError(
            f"{where}: the secret looks like {what}; it must be the token itself or a JSON "
            "object with a 'token' field"
        )
    if not stripped.startswith("{"):
        return stripped
    try:
        decoded = msgspec.json.decode(text)
        # The object's members in order, repeats kept (a dict keeps only one of each).
        members = json.loads(text, object_pairs_hook=lambda pairs: pairs)
    except (ValueError, RecursionError):  # msgspec.DecodeError is a ValueError
        raise ConfigError(f"{where}: the secret is not valid JSON (or nested too deeply)") from None
    if not isinstance(decoded, dict) or "token" not in decoded:
        raise ConfigError(f"{where}: the secret is JSON without a 'token' field")
    # JSON parsers disagree on a repeated key (first or last wins): refuse rather than guess.
    if [name for name, _ in members].count("token") > 1:
        raise ConfigError(f"{where}: the secret's JSON object has the field 'token' twice")
    return decoded["token"]


def secret_token_text(secretsmanager: Any, secret_id: str, where: str) -> object:
    """`token_in_secret` of the secret `secret_id`, read from Secrets Manager."""
    try:
        text = secretsmanager.get_secret_value(SecretId=secret_id).get("SecretString")
    except (ClientError, BotoCoreError) as exc:
        raise ConfigError(f"{where}: cannot read the secret: {describe_error(exc)}") from exc
    return token_in_secret(text, where)


def secret_token(secretsmanager: Any, secret_id: str, setting: str, min_chars: int) -> str:
    """The one token a secret holds, checked by `strict_token`."""
    where = f"{setting} ({secret_id})"
    return strict_token(secret_token_text(secretsmanager, secret_id, where), where, min_chars)


def api_tokens_from(value: object, where: str) -> list[str]:
    """The read API's tokens in `value` (`current` or `current,previous`), checked."""
    if not isinstance(value, str):
        strict_token(value, where, MIN_API_TOKEN_CHARS)  # raises: not a string
    parts = str(value).split(",")
    if len(parts) > MAX_API_TOKENS:
        raise ConfigError(
            f"{where}: {len(parts)} tokens given; at most {MAX_API_TOKENS} (current,previous)"
        )
    tokens = [
        strict_token(part, where, MIN_API_TOKEN_CHARS, bearer=True, max_chars=MAX_API_TOKEN_CHARS)
        for part in parts
    ]
    if len(set(tokens)) != len(tokens):
        raise ConfigError(f"{where}: the same token is given twice")
    return tokens


def api_tokens(token_setting: str, secret_id: str, secretsmanager: Any) -> list[str]:
    """The read API's tokens, current first: from `LUXFLOW_API_TOKEN` when it is set, else
    from the secret named by `LUXFLOW_API_TOKEN_SECRET`."""
    if token_setting:
        return api_tokens_from(token_setting, "LUXFLOW_API_TOKEN")
    if secret_id:
        where = f"LUXFLOW_API_TOKEN_SECRET ({secret_id})"
        return api_tokens_from(secret_token_text(secretsmanager, secret_id, where), where)
    raise ConfigError("luxflow serve needs LUXFLOW_API_TOKEN or LUXFLOW_API_TOKEN_SECRET")
