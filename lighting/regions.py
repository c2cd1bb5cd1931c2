"""Multi-region DR at run time: each site's home region, the gate that keeps a region's workers
to the sites homed there, re-homing (failover, failback) and the takeover rebase.

The command table is a DynamoDB global table (MREC: asynchronous, last writer wins by write
timestamp, conditions checked on the local replica only). Safety rests on one rule: **a site's
items are written by the workers of its home region only**, so at any time one region writes a
site's items and last-writer-wins never arbitrates between two live writers. The home is an
item of the command table (pk ``HOME``, sk ``SITE#<site>``: ``region``, ``epoch``, ``primary``,
``moved_at_ms``), so it replicates with the model. A failover writes a new home with
``epoch + 1`` in the surviving region; the lost region's stale home loses by write time.

A region whose registry holds no home items processes every site: single-region deployments
need nothing. Records of a site homed elsewhere are refused by the decoder (a dead letter
``not home: ...`` with the original bytes), never processed twice.

Takeover: the region that takes a site over starts with no rule state for its assets. A fault
or spike that was open when the old region was lost is seen again from the devices' resent
data, from a later first reading, so it would get a second identity. `lighting.takeover`
keeps the identity of the episode the old region stored (faults) or drops the partial
re-detection (spikes), from lookups of the local replica that the gate's `episodes` answer in
the background (`lighting.episodes`). See docs/dr.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Final

import msgspec

from core.clock import Clock, wall_clock_ms
from core.refresh import Refreshed
from core.retry import Backoff, retry_call
from lighting.clients import Clients
from lighting.episodes import Episode, EpisodeQuery, StoredEpisodes, query_episodes
from lighting.registry import partition_items
from lighting.settings import Settings
from sinks.attrvalues import from_item

log = logging.getLogger(__name__)

HOME_PK: Final = "HOME"


class SiteHome(msgspec.Struct, frozen=True):
    """Where a site's devices publish and whose workers write its items.

    ``epoch`` grows by one on every move; ``primary`` is the region the site lives in normally
    (the failback target); ``moved_at_ms`` is when it last moved (0: never)."""

    site_id: str
    region: str
    epoch: int = 1
    primary: str = ""
    moved_at_ms: int = 0

    @property
    def taken_over(self) -> bool:
        return self.epoch > 1


def home_item(home: SiteHome) -> dict[str, Any]:
    """The command-table item of a home, in the low-level client's shape."""
    return {
        "pk": {"S": HOME_PK},
        "sk": {"S": f"SITE#{home.site_id}"},
        "type": {"S": "site_home"},
        "site_id": {"S": home.site_id},
        "region": {"S": home.region},
        "epoch": {"N": str(home.epoch)},
        "primary": {"S": home.primary or home.region},
        "moved_at_ms": {"N": str(home.moved_at_ms)},
    }


def query_homes(dynamodb: Any, table: str) -> dict[str, SiteHome]:
    """Every site's home as this region's replica holds it: one attempt (a failure raises)."""
    homes: dict[str, SiteHome] = {}
    for raw in partition_items(dynamodb, table, HOME_PK):
        home = msgspec.convert(from_item(raw), SiteHome, strict=False)
        homes[home.site_id] = home
    return homes


def load_homes(dynamodb: Any, table: str) -> dict[str, SiteHome]:
    """`query_homes` retried under the retry policy (throttling, 5xx, connection errors)."""
    return retry_call(lambda: query_homes(dynamodb, table), Backoff())


def store_homes(dynamodb: Any, table: str, homes: Iterable[SiteHome]) -> int:
    """Put the homes (one PutItem each: a move is a handful of writes). Returns how many."""
    count = 0
    for home in homes:
        dynamodb.put_item(TableName=table, Item=home_item(home))
        count += 1
    return count


def assign_homes(sites: Iterable[str], region: str) -> list[SiteHome]:
    """First homes: every site in `region`, epoch 1, `region` its primary."""
    return [SiteHome(site, region, 1, region, 0) for site in sites]


def moved(
    homes: Iterable[SiteHome], from_region: str, to_region: str, now_ms: int
) -> list[SiteHome]:
    """The sites homed in `from_region`, re-homed to `to_region` with the next epoch."""
    return [
        SiteHome(h.site_id, to_region, h.epoch + 1, h.primary or h.region, now_ms)
        for h in homes
        if h.region == from_region and from_region != to_region
    ]


def returning(homes: Iterable[SiteHome], to_region: str, now_ms: int) -> list[SiteHome]:
    """Failback: the sites whose primary is `to_region` but live elsewhere, moved back."""
    return [
        SiteHome(h.site_id, to_region, h.epoch + 1, h.primary, now_ms)
        for h in homes
        if (h.primary or h.region) == to_region and h.region != to_region
    ]


class HomeGate:
    """The homes as this region's workers see them: one gate per worker process, shared by
    the app's decoder (`lighting.agents.reading_decoder`) and every shard's takeover rebase
    (`lighting.takeover.Takeover`), which also reads the gate's `episodes`.

    The homes are a `core.refresh.Refreshed` copy. **Before any record**: the constructor
    loads them (retried under the retry policy; `SourceError` if that fails, and the worker
    does not start): a worker never judges a record without knowing the homes, so a region
    never writes a site homed elsewhere, even at start-up. **After that**: reloaded every
    `refresh_ms` by a background thread (`background=True`; `close()` stops it), so a
    failover reaches running workers within `refresh_ms` plus the replication lag. `home`
    and `refusal` read the copy in use and never call DynamoDB: a throttled or slow reload
    never holds a shard; it keeps the previous copy (counted in `homes.failures`, logged
    at most once a minute) and is tried again after a pause (2 s, doubling, at most
    `refresh_ms`)."""

    def __init__(
        self,
        load: Callable[[], dict[str, SiteHome]],
        region: str,
        refresh_ms: int,
        now_ms: Clock,
        *,
        background: bool = False,
        backoff: Backoff | None = None,
        episodes: StoredEpisodes | None = None,
    ) -> None:
        self.region = region
        self.homes = Refreshed(
            "site homes", load, refresh_ms, now_ms, background=background, backoff=backoff, log=log
        )
        """The copy and its refreshing: `failures`, `age_ms`, `refresh_if_due()`."""
        self.episodes = episodes or StoredEpisodes(_no_store, now_ms, refresh_ms=refresh_ms)
        """The stored episodes every shard's takeover rebase reads (`lighting.episodes`); by
        default a store that never answers (no takeover needs it without homes)."""

    def home(self, site_id: str) -> SiteHome | None:
        """The site's home in the copy in use (None: no home registered)."""
        return self.homes.current.get(site_id)

    def refusal(self, site_id: str) -> str | None:
        """Why this region must not process `site_id`, or None when it may (homed here, or no
        homes registered at all: a single-region deployment)."""
        home = self.home(site_id)
        if home is None or home.region == self.region:
            return None
        return f"not home: site {site_id} is homed in {home.region} (epoch {home.epoch})"

    def close(self) -> None:
        """Stop the background reloads and lookups (what is in memory stays readable)."""
        self.homes.close()
        self.episodes.close()


class TakeoverGrace:
    """The grace boost of a region that took sites over (`App.boost_grace`): the devices of a
    moved site reconnect here and resend their last `horizon_ms` of readings, older than the
    survivor's live windows would take. While the event clock is before the latest move of a
    site homed here plus `horizon_ms`, windows accept readings up to `horizon_ms` late (the
    boost is `horizon_ms - grace_ms` on top of the grace); then the grace returns by itself.
    Every window of the survivor's shards closes that much later meanwhile (its own sites'
    reports are late by up to the horizon, once); a report a resend completes is written
    again with more coverage (the stores keep the fuller one). Only moves after which this
    region is the home count (failover to it, failback to it); none: no boost."""

    def __init__(self, gate: HomeGate, horizon_ms: int, grace_ms: int) -> None:
        self._gate = gate
        self._extra = max(0, horizon_ms - grace_ms)
        self._horizon = horizon_ms
        self._seen: dict[str, SiteHome] | None = None
        self._boost: tuple[int, int] = (0, -(2**63))

    def __call__(self) -> tuple[int, int]:
        homes = self._gate.homes.current
        if homes is not self._seen:  # recomputed only when a reload brought a new copy
            self._seen = homes
            moves = [
                h.moved_at_ms
                for h in homes.values()
                if h.region == self._gate.region and h.taken_over and h.moved_at_ms
            ]
            if moves and self._extra:
                self._boost = (self._extra, max(moves) + self._horizon)
            else:
                self._boost = (0, -(2**63))
        return self._boost


def _no_store(query: EpisodeQuery) -> list[Episode]:
    raise LookupError(f"no store to look up {query.pk}")


def home_gate(settings: Settings, clients: Clients, *, background: bool = True) -> HomeGate:
    """The gate of this deployment (its region is `settings.region`), reloaded every
    `settings.registry_refresh_ms`, with the takeover's stored-episode lookups of the command
    table answered by their own background thread: build one per worker process and
    `close()` it at the end."""
    table = settings.command_table
    episodes = StoredEpisodes(
        lambda query: query_episodes(clients.dynamodb, table, query),
        wall_clock_ms,
        refresh_ms=settings.registry_refresh_ms,
        background=background,
    )
    try:
        return HomeGate(
            lambda: query_homes(clients.dynamodb, table),
            settings.region,
            settings.registry_refresh_ms,
            wall_clock_ms,
            background=background,
            episodes=episodes,
        )
    except BaseException:
        episodes.close()
        raise
