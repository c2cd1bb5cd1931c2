"""The benchmark's null clients count every request exactly, also when a flush sends its
conditional puts from a thread pool (the counts are the cost figures' inputs)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from benchmarks.harness import NullDynamoDB, RequestCounters

ITEM = {"pk": {"S": "ASSET#a"}, "sk": {"S": "STATE"}, "power_w": {"N": "12.5"}}


@pytest.fixture
def often_switching_threads() -> Iterator[None]:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


@pytest.mark.usefixtures("often_switching_threads")
def test_puts_from_many_threads_are_each_counted_once() -> None:
    counters = RequestCounters()
    client = NullDynamoDB(counters)
    threads, puts = 8, 3_000

    def put_many() -> None:
        for _ in range(puts):
            client.put_item(TableName="t", Item=ITEM)

    workers = [threading.Thread(target=put_many) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total = threads * puts
    assert counters.by_call == {"PutItem": total}
    assert counters.calls == counters.items == total
    assert counters.item_count == {"current_state": total}
    assert counters.write_units == {"current_state": total}
