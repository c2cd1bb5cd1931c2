"""The asset registry as the running app sees it, and its items in the command table.

Registry items live in the command table under pk `REGISTRY`, sk `ASSET#<id>` or
`SITE#<id>`, each with the asset or site defaults as a JSON `doc`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

import msgspec

from core.clock import Clock
from core.retry import Backoff
from domain.registry import (
    Asset,
    Registry,
    RegistryImport,
    SiteDefaults,
    flood_limits_of,
    site_limits_of,
)
from domain.rules import Limits
from domain.rules.flood import FloodLimits
from domain.site import SiteLimits
from domain.usage import asset_counts
from sinks.batching import MAX_BATCH_ITEMS, BatchWriter, SinkCounters

log = logging.getLogger(__name__)

REGISTRY_PK: Final = "REGISTRY"


class RegistryCache:
    """The asset registry as the agents see it: loaded from the command table and reloaded
    every `refresh_ms`, so a threshold change reaches running workers within that time.
    Unknown assets get their site's defaults (or the fallback defaults) and are counted."""

    def __init__(self, load: Callable[[], Registry], refresh_ms: int, now_ms: Clock) -> None:
        self._load = load
        self._refresh_ms = refresh_ms
        self._now_ms = now_ms
        self.unknown_assets: set[str] = set()
        self._reload()

    def _reload(self) -> None:
        self._loaded_ms = self._now_ms()
        registry = self._load()
        self._limits: dict[str, Limits] = {}
        self._counts = asset_counts(
            (a.site_id, a.building_id, a.room_id, a.asset_id) for a in registry.assets.values()
        )
        self._registry = registry

    def _fresh(self) -> Registry:
        if self._now_ms() - self._loaded_ms >= self._refresh_ms:
            self._reload()
        return self._registry

    def limits(self, asset_id: str, site_id: str) -> Limits:
        registry = self._fresh()
        limits = self._limits.get(asset_id)
        if limits is None:
            if asset_id not in registry.assets and asset_id not in self.unknown_assets:
                self.unknown_assets.add(asset_id)
                log.debug("asset %s is not in the registry: site defaults apply", asset_id)
            limits = self._limits[asset_id] = registry.limits(asset_id, site_id)
        return limits

    def site_limits(self, site_id: str) -> SiteLimits | None:
        return site_limits_of(self._fresh().site(site_id))

    def flood_limits(self, site_id: str) -> FloodLimits:
        """The flood guard of a site (detection, issue 11)."""
        return flood_limits_of(self._fresh().site(site_id))

    def asset_count(self, scope_key: str) -> int:
        return self._counts.get(scope_key, 0)


def empty_registry() -> RegistryCache:
    """A registry with no assets that never reloads: every asset gets the default limits."""
    return RegistryCache(lambda: Registry([]), 2**62, lambda: 0)


def load_registry(dynamodb: Any, table: str) -> Registry:
    """The registry items of the command table `table`."""
    assets: list[Asset] = []
    sites: list[SiteDefaults] = []
    paginator = dynamodb.get_paginator("query")
    pages = paginator.paginate(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": REGISTRY_PK}},
        ConsistentRead=True,
    )
    for page in pages:
        for item in page["Items"]:
            doc = item["doc"]["S"]
            if item["sk"]["S"].startswith("ASSET#"):
                assets.append(msgspec.json.decode(doc, type=Asset))
            else:
                sites.append(msgspec.json.decode(doc, type=SiteDefaults))
    return Registry(assets, sites)


def store_registry(dynamodb: Any, table: str, imported: RegistryImport) -> None:
    """Put the imported assets and site defaults (an import replaces items with the same id)."""
    docs = [
        ("ASSET#" + a.asset_id, "registry_asset", msgspec.json.encode(a)) for a in imported.assets
    ]
    docs += [("SITE#" + s.site_id, "registry_site", msgspec.json.encode(s)) for s in imported.sites]
    writer = BatchWriter(dynamodb, table, Backoff(), SinkCounters())
    items = [
        {"pk": {"S": REGISTRY_PK}, "sk": {"S": sk}, "type": {"S": kind}, "doc": {"S": doc.decode()}}
        for sk, kind, doc in docs
    ]
    for start in range(0, len(items), MAX_BATCH_ITEMS):
        writer.put_batch(items[start : start + MAX_BATCH_ITEMS])
