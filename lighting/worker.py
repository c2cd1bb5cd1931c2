"""Running the lighting app: the local runner wired from the settings, and the KCL daemon's
per-shard processor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.clock import wall_clock_ms
from lighting.agents import build_app
from lighting.clients import Clients
from lighting.fence import DynamoDBQuorum, FencedDynamoDB, FenceRevokedError, Quorum, RegionFence
from lighting.regions import HomeGate, TakeoverGrace, home_gate
from lighting.registry import RegistryCache, load_registry
from lighting.settings import Settings
from lighting.wiring import engine_factory, lease_lineage
from streams.app import App
from streams.engine import ShardEngineFactory
from streams.kinesis.leases import LeaseTable
from streams.kinesis.local_runner import LocalRunner, LocalRunnerConfig
from tables.dynamodb import DynamoDBStateStore


def registry_cache(settings: Settings, clients: Clients) -> RegistryCache:
    """The registry, refreshed in the background (see `RegistryCache`): its first load is
    retried under the retry policy, a failed reload keeps the previous copy."""
    return RegistryCache(
        lambda: load_registry(clients.dynamodb, settings.command_table),
        settings.registry_refresh_ms,
        wall_clock_ms,
        unknown_asset_cap=settings.unknown_asset_cap,
        unknown_asset_site_cap=settings.unknown_asset_site_cap,
        background=True,
    )


@dataclass(frozen=True)
class WorkerViews:
    """What every shard of one worker process shares: its copies of the command table's
    slow-changing items, each reloaded by its own background thread (`core.refresh`) and
    never by record processing. `registry`: the asset registry (the agents' limits); `gate`:
    the sites' homes (the DR gate of the decoder and of every shard's takeover rebase)."""

    registry: RegistryCache
    gate: HomeGate
    fence: RegionFence | None = None

    def close(self) -> None:
        """Stop the refreshers and the fence's renewals (at the end of the worker)."""
        if self.fence is not None:
            self.fence.close()
        self.gate.close()
        self.registry.close()

    def writer(self, clients: Clients, settings: Settings) -> Clients:
        """`clients` as the shards write with them: command-table writes pass the region
        fence when there is one (`lighting.fence`)."""
        if self.fence is None:
            return clients
        return clients.with_dynamodb(
            FencedDynamoDB(clients.dynamodb, self.fence, [settings.command_table])
        )

    def __enter__(self) -> WorkerViews:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def worker_views(
    settings: Settings, clients: Clients, *, quorum: Quorum | None = None
) -> WorkerViews:
    """Load the registry and the homes, both before any record is read (retried under the
    retry policy; `SourceError` if either fails, and the worker does not start), then keep
    them fresh in the background. With `settings.fence_table`, also start renewing the
    region's fence lease (`quorum`, default: that table through `clients`); a region whose
    lease a failover revoked does not start (`FenceRevokedError`). One per worker process;
    close it when the worker ends."""
    fence = region_fence(settings, clients, quorum)
    registry = registry_cache(settings, clients)
    try:
        gate = home_gate(settings, clients)
    except BaseException:
        registry.close()
        if fence is not None:
            fence.close()
        raise
    return WorkerViews(registry, gate, fence)


def region_fence(
    settings: Settings, clients: Clients, quorum: Quorum | None = None
) -> RegionFence | None:
    """The worker's region fence, first renewal done and renewing in the background (None
    without `settings.fence_table`). A first renewal that fails for another reason than a
    revocation is not fatal: writes wait (as for an unavailable service) until one succeeds."""
    if not settings.fence_table:
        return None
    fence = RegionFence(
        quorum or DynamoDBQuorum(clients.dynamodb, settings.fence_table),
        settings.region,
        ttl_ms=settings.fence_ttl_ms,
        renew_ms=settings.fence_renew_ms,
        margin_ms=settings.fence_margin_ms,
    )
    fence.renew()
    if fence.revoked:
        raise FenceRevokedError(
            f"region {settings.region} is fenced: a failover revoked its lease; "
            f"`luxflow dr failback --to {settings.region} --yes` releases it"
        )
    fence.start()
    return fence


def lighting_app(settings: Settings, views: WorkerViews) -> App:
    """The lighting app with the worker's registry, reading only the sites homed in this
    region (all of them when no homes are registered; see lighting.regions)."""
    app = build_app(
        views.registry,
        topic=settings.stream,
        grace_ms=settings.window_grace_ms,
        max_skew_ms=settings.max_clock_skew_ms,
        gate=views.gate,
        series_interval_ms=settings.series_interval_ms,
        deadband=settings.deadband,
    )
    app.boost_grace(TakeoverGrace(views.gate, settings.takeover_grace_ms, settings.window_grace_ms))
    return app


def shard_engines(
    settings: Settings,
    clients: Clients,
    views: WorkerViews,
    *,
    bounded: bool,
    save_in_background: bool = False,
) -> ShardEngineFactory:
    """The engines of the local runner and of a replay from the archive: one per shard,
    sharing `views`, writing through its fence, state in the state table.
    `save_in_background`: the local runner's (its lease table may be called from any
    thread)."""
    return engine_factory(
        settings,
        views.writer(clients, settings),
        lighting_app(settings, views),
        DynamoDBStateStore(clients.dynamodb, settings.state_table),
        gate=views.gate,
        bounded=bounded,
        save_in_background=save_in_background,
    )


def local_runner(
    settings: Settings,
    clients: Clients,
    views: WorkerViews,
    *,
    stop_when_idle_ms: int | None = None,
    bounded: bool | None = None,
) -> LocalRunner:
    """A local (polling) runner over every shard of the stream; its shards share `views`.
    `bounded` (default: when it stops on idle) makes quiet at the tip the end of the input
    (`EngineConfig.bounded`)."""
    if bounded is None:
        bounded = stop_when_idle_ms is not None
    return LocalRunner(
        clients.kinesis,
        settings.stream,
        LeaseTable(clients.dynamodb, settings.app_name),
        shard_engines(settings, clients, views, bounded=bounded, save_in_background=True),
        LocalRunnerConfig(
            worker_id=settings.owner,
            initial_position=settings.initial_position,
            at_timestamp_ms=settings.at_timestamp_ms,
            idle_poll_interval_ms=settings.poll_interval_ms,
            shard_sync_interval_ms=settings.shard_sync_interval_ms,
            failover_ms=settings.failover_ms,
            # As the KCL: renew three times per failover time, so one late renewal is no loss.
            lease_renew_interval_ms=max(100, settings.failover_ms // 3),
            stop_when_idle_ms=stop_when_idle_ms,
        ),
    )


def run_local_worker(
    settings: Settings,
    clients: Clients,
    *,
    stop_when_idle_ms: int | None = None,
    on_runner: Callable[[LocalRunner], None] | None = None,
    bounded: bool | None = None,
    quorum: Quorum | None = None,
) -> LocalRunner:
    """Run a local runner until it stops (idle, `stop()`, or a fatal error), with its own
    `worker_views` (`quorum`: the fence's, see `worker_views`), closed when it stops."""
    with worker_views(settings, clients, quorum=quorum) as views:
        runner = local_runner(
            settings, clients, views, stop_when_idle_ms=stop_when_idle_ms, bounded=bounded
        )
        if views.fence is not None:
            views.fence.when_revoked(runner.stop)
        if on_runner is not None:
            on_runner(runner)
        runner.run()
    return runner


def kcl_engine_factory(
    settings: Settings, clients: Clients, views: WorkerViews
) -> ShardEngineFactory:
    """The engine factory of `luxflow kcl-processor`: lineage from the lease table."""
    store = DynamoDBStateStore(clients.dynamodb, settings.state_table)
    leases = LeaseTable(clients.dynamodb, settings.app_name)
    return engine_factory(
        settings,
        views.writer(clients, settings),
        lighting_app(settings, views),
        store,
        gate=views.gate,
        lineage=lease_lineage(leases),
    )
