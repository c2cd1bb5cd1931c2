"""Capped exponential backoff with full jitter, and which AWS errors are worth retrying: the
one retry policy of every AWS call luxflow makes (botocore's own retries are off).

How long a call retries: `Backoff()` allows 10 calls with pauses of at most 50 ms, 100 ms,
... capped at 5 s: at most 16.35 s of pauses (about 8 s on average). After that the call's
error propagates and the *shard* (or the runner's shard sync) counts as failing: it is retried
with its own, longer backoff and reported unhealthy; the worker never exits for it.

Retries cover what failed and nothing else: `retry_call` repeats one whole call (the call
failed as a whole), while batch writers use `Backoff.pause` between re-sends of only the
entries the service reported as unprocessed.

The random source and the sleep function are injected so tests run instantly and
deterministically.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, TypeVar

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

T = TypeVar("T")

THROTTLE_CODES: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
        "LimitExceededException",
    }
)
"""Error codes meaning "you are sending too fast"."""

TRANSIENT_CODES: Final = frozenset(
    {
        "InternalServerError",
        "InternalServerException",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "TransactionInProgressException",
        "TransactionInProgress",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
"""Error codes meaning "the service had a moment; the same call may succeed"."""


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a `ClientError`, else None."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def describe_error(exc: BaseException) -> str:
    """A short, readable form of an AWS (botocore) error for messages and logs."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', '?')}: {error.get('Message', '')}"
    return f"{type(exc).__name__}: {exc}"


def is_throttle(exc: BaseException) -> bool:
    """True when the service refused the call because of request rate or capacity."""
    return error_code(exc) in THROTTLE_CODES


def is_retryable(exc: BaseException) -> bool:
    """True when repeating the same call may succeed: throttling, transient service errors,
    HTTP 5xx, and connection-level failures: refused (`EndpointConnectionError`), reset or
    closed (`ConnectionClosedError`, urllib3's `ProtocolError`, `ConnectionError`), timed out
    (`ReadTimeoutError`, `ConnectTimeoutError`, `TimeoutError`)."""
    if isinstance(exc, BotoConnectionError | HTTPClientError | ConnectionError | TimeoutError):
        return True
    # Looked up, not imported: importing urllib3 costs a process that never loads it (the
    # KCL shard processor) several MB, and its exceptions exist only once it is loaded.
    urllib3_errors = sys.modules.get("urllib3.exceptions")
    if urllib3_errors is not None and isinstance(exc, urllib3_errors.ProtocolError):
        return True
    if not isinstance(exc, ClientError):
        return False
    code = error_code(exc)
    if code in THROTTLE_CODES or code in TRANSIENT_CODES:
        return True
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return isinstance(status, int) and status >= 500


@dataclass
class Backoff:
    """Capped exponential backoff with full jitter.

    Attempt `n` (0 = the first retry) waits a uniform random time in
    `[0, min(cap_ms, base_ms * 2**n)]`. `max_attempts` counts every call, the first one
    included, so at most `max_attempts - 1` pauses happen.
    """

    base_ms: int = 50
    cap_ms: int = 5_000
    max_attempts: int = 10
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.base_ms <= 0 or self.cap_ms < self.base_ms:
            raise ValueError("Backoff needs 0 < base_ms <= cap_ms")
        if self.max_attempts < 1:
            raise ValueError("Backoff needs max_attempts >= 1")

    def ceiling_ms(self, retry: int) -> int:
        """The largest wait before retry number `retry` (0-based)."""
        # Stop doubling once past the cap: 2**retry grows without bound otherwise.
        if retry >= 63 or self.base_ms << retry >= self.cap_ms:
            return self.cap_ms
        return self.base_ms << retry

    def delay_ms(self, retry: int) -> float:
        """A jittered wait before retry number `retry` (0-based), in milliseconds."""
        return self.rng.uniform(0.0, float(self.ceiling_ms(retry)))

    def pause(self, retry: int) -> float:
        """Sleep before retry number `retry` (0-based); returns the milliseconds slept."""
        delay = self.delay_ms(retry)
        self.sleep(delay / 1000.0)
        return delay


def retry_call(
    fn: Callable[[], T],
    backoff: Backoff,
    *,
    retryable: Callable[[BaseException], bool] = is_retryable,
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    """Call `fn` until it returns, retrying retryable failures up to `backoff.max_attempts`
    calls in all. A non-retryable error, or the last retryable one, propagates unchanged so the
    caller can translate it (`raise SinkError(...) from exc`). `on_retry` sees each error that
    is about to be retried (for counters)."""
    retry = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            if not retryable(exc) or retry + 1 >= backoff.max_attempts:
                raise
            if on_retry is not None:
                on_retry(exc)
            backoff.pause(retry)
            retry += 1
