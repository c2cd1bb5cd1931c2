"""Backoff timing and error classification, without sleeping."""

from __future__ import annotations

import random

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from core.retry import Backoff, is_retryable, is_throttle, retry_call


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "Op",
    )


class Sleeps:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


def test_defaults() -> None:
    backoff = Backoff()
    assert (backoff.base_ms, backoff.cap_ms, backoff.max_attempts) == (50, 5_000, 10)


def test_ceiling_doubles_then_caps() -> None:
    backoff = Backoff(base_ms=50, cap_ms=1_000)
    assert [backoff.ceiling_ms(n) for n in range(7)] == [50, 100, 200, 400, 800, 1_000, 1_000]
    assert backoff.ceiling_ms(10_000) == 1_000


def test_full_jitter_stays_within_zero_and_ceiling() -> None:
    backoff = Backoff(base_ms=50, cap_ms=5_000, rng=random.Random(7))
    for retry in range(20):
        for _ in range(200):
            assert 0.0 <= backoff.delay_ms(retry) <= backoff.ceiling_ms(retry)


def test_jitter_spreads_and_is_deterministic_with_a_seed() -> None:
    assert Backoff(rng=random.Random(42)).delay_ms(6) == Backoff(rng=random.Random(42)).delay_ms(6)
    backoff = Backoff(rng=random.Random(1))
    delays = [backoff.delay_ms(6) for _ in range(500)]
    # Full jitter: uses the whole range, not just the top of it.
    assert min(delays) < 0.1 * 3_200 and max(delays) > 0.9 * 3_200


def test_pause_sleeps_the_delay_in_seconds() -> None:
    sleeps = Sleeps()
    backoff = Backoff(base_ms=100, cap_ms=100, rng=random.Random(3), sleep=sleeps)
    slept_ms = backoff.pause(0)
    assert sleeps.seconds == [pytest.approx(slept_ms / 1000)]
    assert 0.0 <= sleeps.seconds[0] <= 0.1


@pytest.mark.parametrize(
    "kwargs", [{"base_ms": 0}, {"cap_ms": 10, "base_ms": 20}, {"max_attempts": 0}]
)
def test_rejects_nonsense(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "code",
    [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "LimitExceededException",
    ],
)
def test_throttles_are_throttles_and_retryable(code: str) -> None:
    assert is_throttle(client_error(code))
    assert is_retryable(client_error(code))


@pytest.mark.parametrize(
    "code",
    [
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "TransactionInProgressException",
    ],
)
def test_transient_errors_are_retryable_not_throttles(code: str) -> None:
    assert is_retryable(client_error(code))
    assert not is_throttle(client_error(code))


@pytest.mark.parametrize(
    "code",
    [
        "ValidationException",
        "ResourceNotFoundException",
        "ConditionalCheckFailedException",
        "RejectedRecordsException",
        "AccessDeniedException",
    ],
)
def test_caller_errors_are_not_retryable(code: str) -> None:
    assert not is_retryable(client_error(code))
    assert not is_throttle(client_error(code))


def test_http_5xx_and_connection_errors_are_retryable() -> None:
    assert is_retryable(client_error("SomethingNew", status=503))
    assert is_retryable(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert is_retryable(ReadTimeoutError(endpoint_url="http://127.0.0.1:1"))
    assert not is_retryable(ValueError("not AWS"))


def test_retry_call_retries_only_retryable_errors_until_success() -> None:
    sleeps = Sleeps()
    outcomes: list[BaseException | str] = [
        client_error("ThrottlingException"),
        client_error("InternalServerError"),
        "done",
    ]
    seen: list[BaseException] = []

    def call() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    backoff = Backoff(rng=random.Random(0), sleep=sleeps)
    assert retry_call(call, backoff, on_retry=seen.append) == "done"
    assert len(sleeps.seconds) == 2 and len(seen) == 2
    assert sleeps.seconds[0] <= 0.05 and sleeps.seconds[1] <= 0.1


def test_retry_call_gives_up_after_max_attempts_with_the_original_error() -> None:
    sleeps = Sleeps()
    calls = 0

    def call() -> None:
        nonlocal calls
        calls += 1
        raise client_error("ProvisionedThroughputExceededException")

    with pytest.raises(ClientError) as raised:
        retry_call(call, Backoff(max_attempts=4, sleep=sleeps))
    assert calls == 4 and len(sleeps.seconds) == 3
    assert raised.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"


def test_retry_call_does_not_retry_a_non_retryable_error() -> None:
    sleeps = Sleeps()
    calls = 0

    def call() -> None:
        nonlocal calls
        calls += 1
        raise client_error("ValidationException")

    with pytest.raises(ClientError):
        retry_call(call, Backoff(sleep=sleeps))
    assert calls == 1 and sleeps.seconds == []
