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
data, from a later first reading, so it would get a second identity. `Takeover` looks up the
local replica for the episode the old region stored and keeps its identity (faults) or drops
the partial re-detection (spikes). See docs/dr.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Final

import msgspec

from core.clock import DAY_MS, Clock, wall_clock_ms
from core.refresh import Refreshed
from core.retry import Backoff, retry_call
from domain.events import EnergySpike, Fault
from lighting.clients import Clients
from lighting.registry import partition_items
from lighting.settings import Settings
from sinks.attrvalues import from_item

log = logging.getLogger(__name__)

HOME_PK: Final = "HOME"
TAKEOVER_LOOKBACK_MS: Final = 7 * DAY_MS
"""How far back a takeover looks for the episode a re-detected fault or spike belongs to."""


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
    (`Takeover`).

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
    ) -> None:
        self.region = region
        self.homes = Refreshed(
            "site homes", load, refresh_ms, now_ms, background=background, backoff=backoff, log=log
        )
        """The copy and its refreshing: `failures`, `age_ms`, `refresh_if_due()`."""

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
        """Stop the background reloads (the homes in use stay readable)."""
        self.homes.close()


class Takeover:
    """Keeps one episode one item when a site changes region mid-episode.

    For a site that was taken over (epoch > 1), a `Fault` whose ``opened_at_ms`` falls inside
    an episode of the same asset and code already stored in the local replica (opened before,
    still open or cleared after) gets that episode's ``opened_at_ms``, hence its identity; an
    `EnergySpike` inside a stored spike of the same subject and rule is a partial re-detection
    and is dropped. Anything else passes unchanged. Lookups are cached per event."""

    def __init__(self, dynamodb: Any, table: str, gate: HomeGate) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._gate = gate
        self._cache: dict[tuple[object, ...], object | None] = {}

    def rebase(self, event: object) -> object | None:
        if not isinstance(event, Fault | EnergySpike):
            return event
        home = self._gate.home(event.site_id)
        if home is None or not home.taken_over:
            return event
        key = (type(event), event.event_id, getattr(event, "cleared_at_ms", None))
        if key not in self._cache:
            self._cache[key] = (
                self._rebase_fault(event) if isinstance(event, Fault) else self._spike(event)
            )
        return self._cache[key]

    def _stored(self, pk: str, low: str, high: str) -> list[dict[str, object]]:
        def query() -> list[dict[str, object]]:
            items: list[dict[str, object]] = []
            pages = self._dynamodb.get_paginator("query").paginate(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
                ExpressionAttributeValues={
                    ":pk": {"S": pk},
                    ":low": {"S": low},
                    ":high": {"S": high},
                },
                ConsistentRead=True,
            )
            for page in pages:
                items.extend(from_item(raw) for raw in page["Items"])
            return items

        return retry_call(query, Backoff())

    def _rebase_fault(self, fault: Fault) -> Fault:
        opened = fault.opened_at_ms
        low = f"FAULT#{max(0, opened - TAKEOVER_LOOKBACK_MS):013d}"
        high = f"FAULT#{opened - 1:013d}~"
        spans = [
            item
            for item in self._stored(f"BLDG#{fault.site_id}#{fault.building_id}", low, high)
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

    def _spike(self, spike: EnergySpike) -> EnergySpike | None:
        start = spike.started_at_ms
        low = f"{max(0, start - TAKEOVER_LOOKBACK_MS):013d}#"
        high = f"{start - 1:013d}~"
        for item in self._stored(f"SPIKE#{spike.site_id}", low, high):
            if (
                item.get("level") == spike.level
                and item.get("asset_id") == spike.asset_id
                and item.get("rule") == spike.rule
                and _int(item.get("started_at_ms")) < start < _int(item.get("ended_at_ms"))
            ):
                return None
        return spike


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float | str) else 0


def rebased(
    select: Callable[[object], list[Any]], takeover: Takeover
) -> Callable[[object], list[Any]]:
    """`select` applied to what `takeover` makes of each output (nothing for a dropped one)."""

    def apply(event: object) -> list[Any]:
        kept = takeover.rebase(event)
        return [] if kept is None else select(kept)

    return apply


def home_gate(settings: Settings, clients: Clients, *, background: bool = True) -> HomeGate:
    """The gate of this deployment (its region is `settings.region`), reloaded every
    `settings.registry_refresh_ms`: build one per worker process and `close()` it at the end."""
    return HomeGate(
        lambda: query_homes(clients.dynamodb, settings.command_table),
        settings.region,
        settings.registry_refresh_ms,
        wall_clock_ms,
        background=background,
    )


def takeover(settings: Settings, clients: Clients, gate: HomeGate) -> Takeover:
    """The takeover rebase of one shard's outputs (see `Takeover`), judged by the worker's
    `gate`."""
    return Takeover(clients.dynamodb, settings.command_table, gate)
