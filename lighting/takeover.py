"""The takeover rebase of one shard's outputs, with no AWS call on the record path.

When a region takes a site over (its home's epoch > 1), a fault or spike that was open when
the old region was lost is detected again from the devices' resent data, from a later first
reading, so it would get a second identity. `Takeover` keeps one episode one item: a `Fault`
whose ``opened_at_ms`` falls inside an episode of the same asset and code that the local
replica already holds (opened before, still open or cleared after) gets that episode's
``opened_at_ms``, hence its identity; an `EnergySpike` inside a stored spike of the same
subject and rule is a partial re-detection and is dropped, unless the stored spike is still
open (the old region was lost during it): then it takes that spike's ``started_at_ms``, so
its closed version closes the stored one. Anything else passes unchanged.

The stored episodes come from memory (`lighting.episodes.StoredEpisodes`, answered by a
background thread). An output whose lookup is not answered yet is **held**, never dropped
and never written un-rebased (`HeldOutputs`):

- the stores' selects hand it to the hold instead of building items; so do they every later
  fault or spike of the same site, so a site's episodes reach each store in their order;
- the hold is the last sink of the shard: its `flush` writes what has been answered since
  into the stores (rebased) and flushes them again; while anything is still held it raises
  `SinkError`, so the checkpoint is not written and the records that made the held outputs
  are not passed (the rest of the shard's outputs are written all the same);
- an output held longer than `hold_ms` is dead-lettered, per store, with the reason
  ``takeover_lookup_unavailable`` and the output as JSON, so a long outage of DynamoDB reads
  cannot stop a shard for good.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import msgspec

from core.clock import DAY_MS, Clock
from core.errors import SinkError
from domain.events import EnergySpike, Fault
from lighting.episodes import EpisodeQuery, StoredEpisodes
from lighting.regions import HomeGate
from sinks.base import Sink

log = logging.getLogger(__name__)

TAKEOVER_LOOKBACK_MS: Final = 7 * DAY_MS
"""How far back a takeover looks for the episode a re-detected fault or spike belongs to."""
TAKEOVER_LOOKUP_UNAVAILABLE: Final = "takeover_lookup_unavailable"
"""Reason of an output dead-lettered after waiting `hold_ms` for its stored-episode lookup."""
MAX_DECISIONS: Final = 100_000
"""Rebase decisions kept per shard; past this they start over (and are looked up again)."""


class _Pending:
    def __repr__(self) -> str:
        return "PENDING"


PENDING: Final = _Pending()
"""`Takeover.rebase`'s answer while the stored episodes it needs are not in memory yet."""


class Takeover:
    """The rebase of one shard's outputs (see the module docstring), judged by the worker's
    home `gate` and read from its stored `episodes`. Decisions are kept per event."""

    def __init__(self, gate: HomeGate, episodes: StoredEpisodes) -> None:
        self._gate = gate
        self._episodes = episodes
        self._decided: dict[tuple[object, ...], object | None] = {}

    def needs_lookup(self, event: object) -> bool:
        """Whether `event` is a fault or spike of a site that was taken over."""
        if not isinstance(event, Fault | EnergySpike):
            return False
        home = self._gate.home(event.site_id)
        return home is not None and home.taken_over

    def rebase(self, event: object) -> object:
        """`event` as it must be stored, None to drop it (a partial re-detection), or
        `PENDING` while its lookup is not answered. Never calls AWS."""
        if not self.needs_lookup(event):
            return event
        assert isinstance(event, Fault | EnergySpike)
        key = (type(event), event.event_id, event.revision)
        if key in self._decided:
            return self._decided[key]
        decided = self._fault(event) if isinstance(event, Fault) else self._spike(event)
        if decided is not PENDING:
            if len(self._decided) >= MAX_DECISIONS:
                self._decided.clear()
            self._decided[key] = decided
        return decided

    def _fault(self, fault: Fault) -> object:
        opened = fault.opened_at_ms
        stored = self._episodes.get(
            EpisodeQuery(
                f"BLDG#{fault.site_id}#{fault.building_id}",
                f"FAULT#{max(0, opened - TAKEOVER_LOOKBACK_MS):013d}",
                f"FAULT#{opened - 1:013d}~",
            )
        )
        if stored is None:
            return PENDING
        spans = [
            item
            for item in stored
            if item.get("asset_id") == fault.asset_id
            and item.get("code") == fault.code
            and _int(item.get("opened_at_ms")) < opened
            and (item.get("cleared_at_ms") is None or _int(item.get("cleared_at_ms")) > opened)
        ]
        if not spans:
            return fault
        stored_opened = max(_int(item.get("opened_at_ms")) for item in spans)
        log.info(
            "takeover: fault %s/%s keeps its episode of %d",
            fault.asset_id,
            fault.code,
            stored_opened,
        )
        return msgspec.structs.replace(fault, opened_at_ms=stored_opened)

    def _spike(self, spike: EnergySpike) -> object:
        start = spike.started_at_ms
        stored = self._episodes.get(
            EpisodeQuery(
                f"SPIKE#{spike.site_id}",
                f"{max(0, start - TAKEOVER_LOOKBACK_MS):013d}#",
                f"{start - 1:013d}~",
            )
        )
        if stored is None:
            return PENDING
        for item in stored:
            if (
                item.get("level") == spike.level
                and item.get("asset_id") == spike.asset_id
                and item.get("rule") == spike.rule
                and _int(item.get("started_at_ms")) < start
            ):
                ended = item.get("ended_at_ms")
                if ended is None:
                    started = _int(item.get("started_at_ms"))
                    return msgspec.structs.replace(spike, started_at_ms=started)
                if start < _int(ended):
                    return None
        return spike


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float | str) else 0


Select = Callable[[object], list[Any]]
"""A store's select: the items or points of one output."""
DeadLetterOutput = Callable[[str, object, str], None]
"""Dead-letters (store name, output, reason)."""


class _Held:
    __slots__ = ("output", "since_ms", "store")

    def __init__(self, store: str, output: object, since_ms: int) -> None:
        self.store = store
        self.output = output
        self.since_ms = since_ms


class HeldOutputs:
    """The outputs of one shard that wait for their takeover lookup (see the module
    docstring). Wire it with `select(store, select)` for each store's select, `attach(store,
    sink)` for each store's sink, and put it last in the shard's sinks (it is a `Sink`)."""

    def __init__(
        self,
        takeover: Takeover,
        *,
        hold_ms: int,
        now_ms: Clock,
        dead_letter: DeadLetterOutput,
    ) -> None:
        self._takeover = takeover
        self._hold_ms = hold_ms
        self._now_ms = now_ms
        self._dead_letter = dead_letter
        self._stores: dict[str, Sink] = {}
        self._held: dict[str, deque[_Held]] = {}  # per site, in output order
        self._releasing = False

    @property
    def held(self) -> int:
        """Outputs held now (one per store that holds it)."""
        return sum(len(queue) for queue in self._held.values())

    def attach(self, store: str, sink: Sink) -> None:
        """The sink of `store`, which held outputs are written to once answered."""
        self._stores[store] = sink

    def select(self, store: str, select: Select) -> Select:
        """`select` of `store`, applied to what the rebase makes of each output: nothing for
        a dropped one or for one this hold keeps until its lookup is answered."""
        takeover = self._takeover

        def apply(output: object) -> list[Any]:
            if self._releasing or not takeover.needs_lookup(output):
                return select(output)
            site_id: str = getattr(output, "site_id", "")
            verdict = takeover.rebase(output)  # asks for the lookup now, even if it waits
            if verdict is PENDING or self._held.get(site_id):
                self._held.setdefault(site_id, deque()).append(_Held(store, output, self._now_ms()))
                return []
            return [] if verdict is None else select(verdict)

        return apply

    # -- the Sink protocol ---------------------------------------------------------------------

    def write(self, item: object) -> None:
        """Nothing: outputs reach the hold through the stores' selects."""

    def flush(self) -> None:
        """Write what was answered since into the stores and flush them; dead-letter what
        waited past `hold_ms`; raise `SinkError` while anything is still held."""
        now_ms = self._now_ms()
        released: set[str] = set()
        for site_id in list(self._held):
            queue = self._held[site_id]
            while queue:
                held = queue[0]
                verdict = self._takeover.rebase(held.output)
                if verdict is PENDING:
                    if now_ms - held.since_ms < self._hold_ms:
                        break
                    queue.popleft()
                    self._dead_letter(held.store, held.output, TAKEOVER_LOOKUP_UNAVAILABLE)
                    continue
                queue.popleft()
                if verdict is not None:
                    self._write(held.store, verdict)
                    released.add(held.store)
            if not queue:
                del self._held[site_id]
        # In attach order: the command model's flush tells the query model's what it superseded.
        for store in [store for store in self._stores if store in released]:
            self._stores[store].flush()
        if self._held:
            raise SinkError(
                f"takeover: {self.held} outputs of {len(self._held)} site(s) wait for their "
                "stored episodes (looked up in the background)"
            )

    def _write(self, store: str, output: object) -> None:
        self._releasing = True
        try:
            self._stores[store].write(output)
        finally:
            self._releasing = False

    def discard(self) -> None:
        self._held.clear()
