"""The per-client rate limiter: a token bucket with a burst, a refill rate, an extra cost
for refused credentials, a cap on requests in flight and on the clients it remembers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from api.limits import ApiLimits, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def limiter(**overrides: float) -> tuple[RateLimiter, Clock]:
    clock = Clock()
    values: dict[str, float] = {"rate_per_s": 2.0, "burst": 12.0, "failure_cost": 10.0}
    values.update(overrides)
    return RateLimiter(ApiLimits(**values), clock), clock  # type: ignore[arg-type]


def admit(rate: RateLimiter, client: str) -> int | None:
    retry = rate.acquire(client)
    if retry is None:
        rate.release(client)
    return retry


def test_a_client_gets_its_burst_then_a_retry_after_from_the_refill_rate() -> None:
    rate, clock = limiter()
    assert [admit(rate, "a") for _ in range(12)] == [None] * 12
    assert admit(rate, "a") == 1
    clock.now = 0.5  # one token back at 2/s
    assert admit(rate, "a") is None
    assert admit(rate, "a") == 1


def test_clients_have_separate_buckets() -> None:
    rate, _ = limiter()
    for _ in range(12):
        admit(rate, "a")
    assert admit(rate, "a") == 1
    assert admit(rate, "b") is None


def test_a_refused_credential_costs_extra_and_lengthens_the_wait() -> None:
    rate, clock = limiter()
    assert rate.acquire("guesser") is None
    rate.release("guesser", failed_auth=True)  # 12 - 1 - 10 = 1 token left
    assert admit(rate, "guesser") is None
    assert rate.acquire("guesser") == 1
    clock.now += 0.5
    assert rate.acquire("guesser") is None
    rate.release("guesser", failed_auth=True)  # 1 - 1 - 10 = -10 tokens: 5.5 s at 2/s
    assert rate.acquire("guesser") == 6


def test_requests_in_flight_are_capped_per_client() -> None:
    rate, _ = limiter(max_in_flight=2)
    assert rate.acquire("a") is None
    assert rate.acquire("a") is None
    assert rate.acquire("a") == 1
    assert rate.acquire("b") is None
    rate.release("a")
    assert rate.acquire("a") is None


def test_the_limiter_remembers_at_most_max_clients_idle_clients() -> None:
    rate, _ = limiter(max_clients=100)
    for n in range(1_000):
        admit(rate, f"10.0.{n // 256}.{n % 256}")
    assert len(rate) == 100


@given(st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 3), st.booleans()), max_size=80))
def test_admitted_requests_never_exceed_burst_plus_refill(
    steps: list[tuple[str, float, bool]],
) -> None:
    rate, clock = limiter()
    admitted: dict[str, int] = {}
    for client, wait_s, failed in steps:
        clock.now += wait_s
        if rate.acquire(client) is None:
            admitted[client] = admitted.get(client, 0) + 1
            rate.release(client, failed_auth=failed)
    for count in admitted.values():
        assert count <= 12 + clock.now * 2.0 + 1e-9
