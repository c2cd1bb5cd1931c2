"""The asset registry as the running app sees it, and its items in the command table.

Registry items live in the command table under pk `REGISTRY`, sk `ASSET#<id>` or
`SITE#<id>`, each with the asset or site defaults as a JSON `doc`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, Final

import msgspec

from core.clock import Clock
from core.refresh import Refreshed
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
from domain.telemetry import Reading
from domain.usage import asset_counts
from lighting.admission import (
    IDENTITY_MISMATCH,
    UNREGISTERED_SITES,
    UnknownAssets,
    mismatch,
)
from sinks.base import SinkCounters
from sinks.batching import MAX_BATCH_ITEMS, BatchWriter

log = logging.getLogger(__name__)

REGISTRY_PK: Final = "REGISTRY"


class _Loaded:
    """One loaded copy of the registry, replaced whole by a refresh (never mutated but for
    its limits cache), so readers in other threads always see a consistent copy."""

    __slots__ = ("counts", "limits", "registry", "shared_limits", "sites")

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.limits: dict[str, Limits] = {}
        # One object per distinct Limits: every unknown asset of a site, and every registered
        # asset of one type, has the same limits, and a Limits per asset was ~200 B of each
        # live asset. Keyed by the encoded bytes, not by equality, so two limits that differ
        # only in the sign of a zero are never merged.
        self.shared_limits: dict[bytes, Limits] = {}
        self.counts = asset_counts(
            (a.site_id, a.building_id, a.room_id, a.asset_id) for a in registry.assets.values()
        )
        self.sites = frozenset(registry.sites) | {a.site_id for a in registry.assets.values()}
        """The sites the registry knows: with site defaults or with a registered asset."""


class RegistryCache:
    """The asset registry as the agents see it, shared by the shards of one worker.

    Loading (`core.refresh.Refreshed`): the first load happens in the constructor (retried on
    transient errors; a `SourceError` if it still fails, so a worker does not start with wrong
    thresholds). After that the registry is reloaded every `refresh_ms` by `refresh_if_due()`,
    which a background thread calls (`background=True`, stopped by `close()`), never record
    processing: a failed reload (throttled Query, connection error, anything) keeps the
    previous copy, is logged at most once a minute and retried with backoff. `limits`,
    `site_limits`, `asset_count` and `admit` never call AWS and never raise an AWS error.
    `age_ms` is the time since the last successful load.

    Admission (`admit`, `lighting.admission`): a registered asset's reading must carry its
    registered site, building and room (else ``identity_mismatch``); unknown assets get their
    site's defaults (or the fallback defaults) within `unknown_asset_site_cap` per site and
    `unknown_asset_cap` in all (None: no such cap; both None: untracked). The app's decoder
    applies `admit` to every decoded reading (`lighting.agents.reading_decoder`).
    """

    def __init__(
        self,
        load: Callable[[], Registry],
        refresh_ms: int,
        now_ms: Clock,
        *,
        unknown_asset_cap: int | None = 10_000,
        unknown_asset_site_cap: int | None = None,
        background: bool = False,
        backoff: Backoff | None = None,
    ) -> None:
        self._unknown = UnknownAssets(fleet_cap=unknown_asset_cap, site_cap=unknown_asset_site_cap)
        self._copy = Refreshed(
            "asset registry",
            lambda: _Loaded(load()),
            refresh_ms,
            now_ms,
            background=background,
            backoff=backoff,
            log=log,
        )

    # -- refreshing (see core.refresh) -------------------------------------------------------

    @property
    def _loaded(self) -> _Loaded:
        return self._copy.current

    @property
    def refresh_failures(self) -> int:
        """Reloads that failed (the previous copy stayed in use)."""
        return self._copy.failures

    @property
    def age_ms(self) -> int:
        """Milliseconds since the registry was last loaded successfully."""
        return self._copy.age_ms

    def refresh_if_due(self) -> bool:
        """Reload when due (see `Refreshed.refresh_if_due`). Never raises."""
        return self._copy.refresh_if_due()

    def refresh(self) -> bool:
        """Reload now, keeping the previous copy on failure. Never raises."""
        return self._copy.refresh()

    def close(self) -> None:
        """Stop the background thread (if any)."""
        self._copy.close()

    # -- what the agents ask -----------------------------------------------------------------
    @property
    def loaded_ms(self) -> int:
        """When the registry in use was loaded (ms since the epoch)."""
        return self._copy.loaded_ms

    def limits(self, asset_id: str, site_id: str) -> Limits:
        """The rule limits of an asset; site defaults for an unknown one. Never raises."""
        loaded = self._loaded
        limits = loaded.limits.get(asset_id)
        if limits is None:
            made = loaded.registry.limits(asset_id, site_id)
            limits = loaded.shared_limits.setdefault(msgspec.msgpack.encode(made), made)
            # Cache only what is bounded: known assets and tracked unknown ones.
            unknown = self._unknown
            if not unknown.tracking or asset_id in loaded.registry.assets or asset_id in unknown:
                loaded.limits[asset_id] = limits
        return limits

    def site_limits(self, site_id: str) -> SiteLimits | None:
        return site_limits_of(self._loaded.registry.site(site_id))

    def flood_limits(self, site_id: str) -> FloodLimits:
        """The flood guard of a site (detection)."""
        return flood_limits_of(self._loaded.registry.site(site_id))

    def asset_count(self, scope_key: str) -> int:
        return self._loaded.counts.get(scope_key, 0)

    @property
    def unknown_asset_count(self) -> int:
        """Unknown assets tracked now (at most the caps allow)."""
        return len(self._unknown)

    @property
    def refused(self) -> Counter[str]:
        """Readings `admit` refused, by reason code (`lighting.admission.ADMISSION_REASONS`)."""
        return self._unknown.refused

    def admit(self, reading: Reading) -> Reading:
        """`reading`, or `AdmissionError` (a `ValueError`) with a stable reason: see the class
        docstring and `lighting.admission`. Never calls AWS."""
        loaded = self._loaded
        asset = loaded.registry.assets.get(reading.asset_id)
        if asset is not None:
            field = mismatch(asset, reading)
            if field is not None:
                raise self._unknown.refuse(IDENTITY_MISMATCH, field)
            return reading
        site_id = reading.site_id
        pool = site_id if site_id in loaded.sites else UNREGISTERED_SITES
        for gone in self._unknown.admit(reading, pool):
            loaded.limits.pop(gone, None)
        return reading


def empty_registry() -> RegistryCache:
    """A registry with no assets that never reloads: every asset gets the default limits;
    unknown assets are not tracked (tests and benchmarks)."""
    return RegistryCache(lambda: Registry([]), 2**62, lambda: 0, unknown_asset_cap=None)


def partition_items(dynamodb: Any, table: str, pk: str) -> Iterator[dict[str, Any]]:
    """Every item of partition `pk` of the command table `table` (strongly consistent, in
    the low-level client's shape): the registry's and the site homes' one Query."""
    pages = dynamodb.get_paginator("query").paginate(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
        ConsistentRead=True,
    )
    for page in pages:
        yield from page["Items"]


def load_registry(dynamodb: Any, table: str) -> Registry:
    """The registry items of the command table `table`."""
    assets: list[Asset] = []
    sites: list[SiteDefaults] = []
    for item in partition_items(dynamodb, table, REGISTRY_PK):
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
