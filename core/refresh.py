"""A copy of something the workers read from a store and seldom changes (the asset registry,
the sites' home regions), reloaded in the background: readers take the copy in use and never
wait for the store, never see a half-loaded copy, and never get the store's errors.

Lifecycle, for every copy:

1. **First load, in the constructor**, before anything reads the copy: retried under the retry
   policy (`core.retry.Backoff`: throttling, 5xx, connection errors; about 16 s at most). If it
   still fails, `SourceError`: a worker does not start without the copy it needs.
2. **Reloads** every `refresh_ms`, by `refresh_if_due()`, which a background thread calls
   (`background=True`): one call of the loader per attempt. A failed reload (anything raised)
   keeps the copy in use, is counted (`failures`), logged at most once a minute, and tried
   again after a pause that doubles from 2 s up to `refresh_ms` (at most 60 s).
3. **`close()`** stops the thread; the last copy stays readable.

Readers use `current`: an attribute read, replaced whole by a reload (never mutated), so a
reader in another thread sees either the old copy or the new one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final, Generic, TypeVar

from core.clock import Clock
from core.errors import SourceError
from core.retry import Backoff, describe_error, retry_call

T = TypeVar("T")

FAILURE_LOG_INTERVAL_MS: Final = 60_000
"""At most one warning per copy this often while its reloads keep failing."""
MAX_RETRY_PAUSE_MS: Final = 60_000
"""The longest pause after failed reloads (also never longer than `refresh_ms`)."""


class Refreshed(Generic[T]):
    """The copy of `what` returned by `load` (see the module docstring for its lifecycle).

    `load` makes one attempt and raises on failure; the first load is retried under
    `backoff` (default `Backoff()`), later ones by `refresh_if_due`'s pauses. `now_ms` is the
    clock of the refresh schedule and `log` the logger of the warnings (the owner's)."""

    def __init__(
        self,
        what: str,
        load: Callable[[], T],
        refresh_ms: int,
        now_ms: Clock,
        *,
        background: bool = False,
        backoff: Backoff | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.what = what
        self._load = load
        self._refresh_ms = refresh_ms
        self._now_ms = now_ms
        self._log = log or logging.getLogger(__name__)
        self.failures = 0
        """Reloads that failed (the copy in use stayed)."""
        self._consecutive_failures = 0
        self._last_failure_log_ms: int | None = None
        self._reloading = threading.Lock()
        try:
            self._current = retry_call(load, backoff or Backoff())
        except Exception as exc:
            raise SourceError(f"the {what} could not be loaded: {describe_error(exc)}") from exc
        self._loaded_ms = now_ms()
        self._next_attempt_ms = self._loaded_ms + refresh_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name=f"refresh {what}", daemon=True)
            self._thread.start()

    @property
    def current(self) -> T:
        """The copy in use. Never loads, never raises."""
        return self._current

    @property
    def loaded_ms(self) -> int:
        """When the copy in use was loaded (ms since the epoch)."""
        return self._loaded_ms

    @property
    def age_ms(self) -> int:
        """Milliseconds since the copy in use was loaded."""
        return self._now_ms() - self._loaded_ms

    def refresh_if_due(self) -> bool:
        """Reload when `refresh_ms` passed since the last load (or the pause after a failed
        reload). Returns False only when a due reload failed. Never raises."""
        if self._now_ms() < self._next_attempt_ms:
            return True
        return self.refresh()

    def refresh(self) -> bool:
        """Reload now; on any failure keep the copy in use, count and log it (rate-limited)
        and return False. Never raises. Concurrent calls reload one after the other."""
        with self._reloading:
            try:
                loaded = self._load()
            except Exception as exc:  # anything: the copy in use stays valid
                self._failed(exc)
                return False
            self._current = loaded
            self._loaded_ms = self._now_ms()
            self._next_attempt_ms = self._loaded_ms + self._refresh_ms
            self._consecutive_failures = 0
            return True

    def _failed(self, exc: BaseException) -> None:
        now_ms = self._now_ms()
        self.failures += 1
        self._consecutive_failures += 1
        pause_ms = min(
            self._refresh_ms, MAX_RETRY_PAUSE_MS, 1_000 << min(self._consecutive_failures, 16)
        )
        self._next_attempt_ms = now_ms + pause_ms
        last = self._last_failure_log_ms
        if last is None or now_ms - last >= FAILURE_LOG_INTERVAL_MS:
            self._last_failure_log_ms = now_ms
            self._log.warning(
                "%s reload failed (%d so far; using the copy loaded %d ms ago): %s",
                self.what,
                self.failures,
                now_ms - self._loaded_ms,
                describe_error(exc),
            )

    def _run(self) -> None:
        poll_s = min(self._refresh_ms, 1_000) / 1_000
        while not self._stop.wait(poll_s):
            self.refresh_if_due()

    def close(self) -> None:
        """Stop the background thread (if any); waits for a reload under way (at most 5 s)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
