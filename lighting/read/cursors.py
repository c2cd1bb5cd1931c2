"""Opaque page cursors, signed so that a forged, truncated or tampered one is refused.

A cursor is `<payload>.<tag>`: the payload is base64url JSON of the position a page stopped
at (a DynamoDB key, a position in a time range), bound to the query it belongs to; the tag is
an HMAC-SHA256 of the payload (first 16 bytes). Because the reader only ever decodes a cursor
whose tag it made itself, the position inside can be trusted: a client cannot point a query at
another partition, nor widen the slice a page reads, by editing a cursor.

Contract: `decode` raises `QueryError` (the API answers 400) for anything it did not `encode`
for the same query with one of its keys, whatever the input: never another exception. The
first key signs; every key verifies, so a key can be rotated without breaking the cursors of
the pages being read while it changes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from lighting.read.rows import QueryError

MAX_CURSOR_CHARS: Final = 1_024
"""A longer cursor is refused before any decoding (ours are a few hundred characters)."""
_TAG_BYTES: Final = 16
_NOT_OURS: Final = "the cursor is not one this API returned for this query"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode("ascii"))


def query_id(*parts: object) -> str:
    """A short stable id of a query's parameters (what a cursor is bound to)."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()


class Cursors:
    """Encode and check cursors with `keys` (the first signs, each verifies)."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys or any(len(key) < 16 for key in keys):
            raise ValueError("cursor keys must be at least 16 bytes, and one at least")
        self._keys = list(keys)

    @classmethod
    def ephemeral(cls) -> Cursors:
        """Cursors valid in this process only (the CLI, which never hands one out)."""
        return cls([secrets.token_bytes(32)])

    def _tag(self, key: bytes, payload: bytes) -> bytes:
        return hmac.new(key, payload, hashlib.sha256).digest()[:_TAG_BYTES]

    def encode(self, query: str, state: dict[str, Any]) -> str:
        payload = msgspec.json.encode({"q": query, "s": state})
        return f"{_b64(payload)}.{_b64(self._tag(self._keys[0], payload))}"

    def decode(self, query: str, cursor: str) -> dict[str, Any]:
        """The state `encode` was given for `query`, or `QueryError`."""
        if len(cursor) > MAX_CURSOR_CHARS or cursor.count(".") != 1:
            raise QueryError(_NOT_OURS)
        payload_text, tag_text = cursor.split(".")
        try:
            payload, tag = _unb64(payload_text), _unb64(tag_text)
        except (binascii.Error, ValueError):
            raise QueryError(_NOT_OURS) from None
        # Every key is tried, so the time taken does not say which one matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(self._tag(key, payload), tag)
        if not matched:
            raise QueryError(_NOT_OURS)
        try:
            decoded = msgspec.json.decode(payload)
        except msgspec.DecodeError:
            raise QueryError(_NOT_OURS) from None
        if not isinstance(decoded, dict) or not isinstance(decoded.get("s"), dict):
            raise QueryError(_NOT_OURS)
        if decoded.get("q") != query:
            raise QueryError("the cursor belongs to another query")
        state: dict[str, Any] = decoded["s"]
        return state
