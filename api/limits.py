"""The read API's limits, and the per-client rate limiter that enforces two of them.

Every value is a field of `ApiLimits` with its default here; `create_app` takes an instance
(tests pass their own). What each limit protects is said beside it; docs/security.md lists them.

The rate limiter is a token bucket per client address, in memory (one per server process):
a request takes one token, a refused credential `failure_cost` more, and a bucket refills at
`rate_per_s` up to `burst`. A client may also have at most `max_in_flight` requests running at
once. A refused request gets 429 with `Retry-After` (whole seconds). The limiter keeps at most
`max_clients` buckets, forgetting the least recently seen idle one first, so its memory is
bounded whatever addresses come. The limiter is not thread-safe: it is called only from the
event loop (the ASGI middleware), never from the thread pool.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ApiLimits:
    """The limits of one server; the defaults are the documented values."""

    max_body_bytes: int = 4_096
    """A request body larger than this gets 413 (only the login form has a body)."""
    rate_per_s: float = 10.0
    """Requests per second a client may sustain (its bucket's refill rate)."""
    burst: float = 40.0
    """Requests a client may send at once after being quiet (its bucket's size)."""
    failure_cost: float = 10.0
    """Extra tokens a refused credential takes: a guesser gets about one try per second."""
    failure_delay_s: float = 0.5
    """A refused credential is answered after this pause (on the event loop, holding no thread)."""
    max_in_flight: int = 4
    """Requests of one client running at once; more get 429 at once."""
    max_clients: int = 10_000
    """Client buckets kept in memory."""
    session_ttl_ms: int = 8 * 3_600_000
    """A login session ends this long after it began (the cookie's Max-Age too)."""
    max_revoked_sessions: int = 10_000
    """Ended sessions remembered until they expire (logout)."""

    def __post_init__(self) -> None:
        if min(self.max_body_bytes, self.rate_per_s, self.burst, self.max_in_flight) <= 0:
            raise ValueError("body size, rate, burst and in-flight limits must be positive")
        if self.burst < 1 + self.failure_cost:
            raise ValueError("burst must cover one request and one failure")


@dataclass
class _Bucket:
    tokens: float
    updated_s: float
    in_flight: int = 0


class RateLimiter:
    """Token buckets per client; see the module docstring."""

    def __init__(self, limits: ApiLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = limits
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, client: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = _Bucket(self._limits.burst, now)
            self._buckets[client] = bucket
            self._forget_beyond_capacity()
        else:
            elapsed = max(0.0, now - bucket.updated_s)
            bucket.tokens = min(
                self._limits.burst, bucket.tokens + elapsed * self._limits.rate_per_s
            )
            bucket.updated_s = now
            self._buckets.move_to_end(client)
        return bucket

    def _forget_beyond_capacity(self) -> None:
        if len(self._buckets) <= self._limits.max_clients:
            return
        for client in list(self._buckets):
            if self._buckets[client].in_flight == 0:
                del self._buckets[client]
                if len(self._buckets) <= self._limits.max_clients:
                    return

    def acquire(self, client: str) -> int | None:
        """Admit one request of `client` (None) or say in how many seconds to retry."""
        bucket = self._bucket(client)
        if bucket.in_flight >= self._limits.max_in_flight:
            return 1
        if bucket.tokens < 1:
            return max(1, math.ceil((1 - bucket.tokens) / self._limits.rate_per_s))
        bucket.tokens -= 1
        bucket.in_flight += 1
        return None

    def release(self, client: str, *, failed_auth: bool = False) -> None:
        """The admitted request of `client` ended; a refused credential costs extra."""
        bucket = self._buckets.get(client)
        if bucket is None:
            return
        bucket.in_flight = max(0, bucket.in_flight - 1)
        if failed_auth:
            bucket.tokens -= self._limits.failure_cost
