"""Login sessions of the operator page: signed, expiring, and ended by logout.

The cookie never holds the token. It holds `v1.<expires_ms>.<id>.<tag>`: when the session
ends, a random id, and an HMAC-SHA256 tag of both under a key derived from the API token
(`HMAC(token, "luxflow session v1")`). Every server of a deployment derives the same key, so a
session works on any of them without shared storage; the first token signs, every accepted
token verifies (a rotation keeps sessions valid until the old token is dropped, and dropping
it ends every session it signed).

Logout forgets the session in this process (`end`): its id is kept until it would have
expired anyway (at most `max_revoked` ids; past that, the ones closest to expiry are
dropped first). Another server process does not learn of it: the browser drops the cookie,
and a copy of it stays valid there until it expires. To end every session at once, rotate the
token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from typing import Final

SESSION_KEY_PURPOSE: Final = b"luxflow session v1"
MAX_COOKIE_CHARS: Final = 200


def derive_key(token: str, purpose: bytes) -> bytes:
    """A key for one purpose from the API token (the token itself is never a key)."""
    return hmac.new(token.encode(), purpose, hashlib.sha256).digest()


class Sessions:
    """Issue, check and end sessions (see the module docstring)."""

    def __init__(
        self,
        tokens: Sequence[str],
        ttl_ms: int,
        now_ms: Callable[[], int],
        max_revoked: int = 10_000,
    ) -> None:
        self._keys = [derive_key(token, SESSION_KEY_PURPOSE) for token in tokens]
        self.ttl_ms = ttl_ms
        self._now_ms = now_ms
        self._max_revoked = max_revoked
        self._revoked: dict[str, int] = {}

    def _tag(self, key: bytes, payload: str) -> str:
        return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()

    def issue(self) -> str:
        """A new session's cookie value."""
        payload = f"{self._now_ms() + self.ttl_ms}.{secrets.token_urlsafe(18)}"
        return f"v1.{payload}.{self._tag(self._keys[0], payload)}"

    def _parse(self, cookie: str | None) -> tuple[int, str] | None:
        """(expires_ms, id) of a cookie this deployment signed, else None."""
        # Ours are ASCII: anything else is refused before hmac.compare_digest, which raises
        # TypeError on a non-ASCII str, and before int(), which reads other scripts' digits.
        if not cookie or len(cookie) > MAX_COOKIE_CHARS or not cookie.isascii():
            return None
        parts = cookie.split(".")
        if len(parts) != 4 or parts[0] != "v1" or not parts[1].isdigit():
            return None
        payload = f"{parts[1]}.{parts[2]}"
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(self._tag(key, payload), parts[3])
        return (int(parts[1]), parts[2]) if matched else None

    def valid(self, cookie: str | None) -> bool:
        """The cookie is ours, has not expired and was not ended."""
        parsed = self._parse(cookie)
        return parsed is not None and parsed[0] > self._now_ms() and parsed[1] not in self._revoked

    def end(self, cookie: str | None) -> None:
        """Logout: the session of `cookie` is no longer valid here."""
        parsed = self._parse(cookie)
        if parsed is None:
            return
        now = self._now_ms()
        self._revoked = {sid: until for sid, until in self._revoked.items() if until > now}
        self._revoked[parsed[1]] = parsed[0]
        if len(self._revoked) > self._max_revoked:
            keep = sorted(self._revoked.items(), key=lambda item: item[1])[-self._max_revoked :]
            self._revoked = dict(keep)
