"""The episodes a region stored for a site before another region took it over, looked up in
the background: the memory the takeover rebase (`lighting.takeover`) reads on the record path.

`StoredEpisodes.get(query)` never calls AWS. It returns the answer held in memory, or None
when there is none yet: the query is then queued, and a background thread (`background=True`;
`close()` stops it) or `answer_pending()` runs it. The lifecycle of one query:

1. **Asked**, unanswered: `get` returns None and queues it (once).
2. **Answered**: one Query (all its pages) of the command table's local replica, strongly
   consistent. A failed attempt (throttled, 5xx, connection error, anything) leaves it
   queued, is counted (`failures`), logged at most once a minute, and the thread pauses
   (1 s, doubling, at most `refresh_ms` and 60 s) before it tries again.
3. **Served** from memory to every later `get`. An answer older than `refresh_ms` is still
   served and queued again, so later episodes that replicate late are seen by later lookups
   (what an earlier lookup decided stays decided).

At most `max_answers` answers are kept (least recently used dropped first; a dropped one is
asked again).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from core.clock import Clock
from core.retry import describe_error
from sinks.attrvalues import from_item

log = logging.getLogger(__name__)

THREAD_NAME: Final = "lookup stored episodes"
FAILURE_LOG_INTERVAL_MS: Final = 60_000
MAX_PAUSE_MS: Final = 60_000
DEFAULT_MAX_ANSWERS: Final = 100_000

Episode = dict[str, object]
"""One stored item, plain values."""


class EpisodeQuery(NamedTuple):
    """The items of partition `pk` with a sort key between `low` and `high` (inclusive)."""

    pk: str
    low: str
    high: str


class StoredEpisodes:
    """Answers to `EpisodeQuery`s, looked up in the background (see the module docstring).
    Thread-safe: shard threads call `get`, the background thread answers."""

    def __init__(
        self,
        query: Callable[[EpisodeQuery], list[Episode]],
        now_ms: Clock,
        *,
        refresh_ms: int,
        background: bool = False,
        max_answers: int = DEFAULT_MAX_ANSWERS,
    ) -> None:
        self._query = query
        self._now_ms = now_ms
        self._refresh_ms = refresh_ms
        self._max_answers = max_answers
        self._answers: OrderedDict[EpisodeQuery, tuple[int, list[Episode]]] = OrderedDict()
        self._queued: OrderedDict[EpisodeQuery, None] = OrderedDict()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._consecutive_failures = 0
        self._next_attempt_ms = 0
        self._last_failure_log_ms: int | None = None
        self.failures = 0
        """Queries that failed (each is tried again)."""
        self.answered = 0
        """Queries answered."""
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
            self._thread.start()

    # -- the record path: memory only --------------------------------------------------------

    def get(self, query: EpisodeQuery) -> list[Episode] | None:
        """The answer held for `query`, or None (then it is queued). Never calls AWS."""
        with self._lock:
            held = self._answers.get(query)
            if held is not None:
                self._answers.move_to_end(query)
                if self._now_ms() - held[0] >= self._refresh_ms:
                    self._queue(query)
                return held[1]
            self._queue(query)
            return None

    @property
    def queued(self) -> int:
        """Queries waiting for their (first or refreshed) answer."""
        return len(self._queued)

    def _queue(self, query: EpisodeQuery) -> None:
        if query not in self._queued:
            self._queued[query] = None
            self._wake.set()

    # -- answering: the background thread, or a test ------------------------------------------

    def answer_pending(self) -> bool:
        """Run the queued queries in turn, stopping at the first that fails (it stays queued
        and the next attempt waits for the pause). Returns False if one failed. Never raises."""
        while True:
            with self._lock:
                if not self._queued:
                    return True
                query = next(iter(self._queued))
            try:
                answer = self._query(query)
            except Exception as exc:  # anything: the query stays queued, the caller goes on
                self._failed(exc)
                return False
            with self._lock:
                self._answers[query] = (self._now_ms(), answer)
                self._answers.move_to_end(query)
                while len(self._answers) > self._max_answers:
                    self._answers.popitem(last=False)
                self._queued.pop(query, None)
                self.answered += 1
                self._consecutive_failures = 0

    def _failed(self, exc: BaseException) -> None:
        now_ms = self._now_ms()
        self.failures += 1
        self._consecutive_failures += 1
        pause_ms = min(
            self._refresh_ms, MAX_PAUSE_MS, 1_000 << min(self._consecutive_failures - 1, 16)
        )
        self._next_attempt_ms = now_ms + pause_ms
        last = self._last_failure_log_ms
        if last is None or now_ms - last >= FAILURE_LOG_INTERVAL_MS:
            self._last_failure_log_ms = now_ms
            log.warning(
                "stored episodes: lookup failed (%d so far; %d waiting; next try in %d ms): %s",
                self.failures,
                len(self._queued),
                pause_ms,
                describe_error(exc),
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            wait_ms = max(0, self._next_attempt_ms - self._now_ms())
            if wait_ms:
                self._stop.wait(wait_ms / 1_000)
                continue
            self._wake.wait(1.0)
            self._wake.clear()
            if not self._stop.is_set():
                self.answer_pending()

    def close(self) -> None:
        """Stop the background thread (waits for a query under way, at most 5 s)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


def query_episodes(dynamodb: Any, table: str, query: EpisodeQuery) -> list[Episode]:
    """One attempt at `query` on the command table `table` (every page, strongly consistent);
    a failure raises."""
    items: list[Episode] = []
    pages = dynamodb.get_paginator("query").paginate(
        TableName=table,
        KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
        ExpressionAttributeValues={
            ":pk": {"S": query.pk},
            ":low": {"S": query.low},
            ":high": {"S": query.high},
        },
        ConsistentRead=True,
    )
    for page in pages:
        items.extend(from_item(raw) for raw in page["Items"])
    return items
