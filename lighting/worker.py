"""Running the lighting app: the local runner wired from the settings, and the KCL daemon's
per-shard processor."""

from __future__ import annotations

from collections.abc import Callable

from core.clock import wall_clock_ms
from core.retry import Backoff, retry_call
from lighting.agents import build_app
from lighting.clients import Clients
from lighting.regions import guard_app, home_gate
from lighting.registry import RegistryCache, load_registry
from lighting.settings import Settings
from lighting.wiring import engine_factory, lease_lineage
from streams.app import App
from streams.engine import ShardEngineFactory
from streams.leases import LeaseTable
from streams.local_runner import LocalRunner, LocalRunnerConfig
from tables.store import DynamoDBStateStore


def registry_cache(settings: Settings, clients: Clients) -> RegistryCache:
    """The registry, loaded under the retry policy (a throttled or refused Query is retried
    rather than failing the reading that triggered the reload)."""
    return RegistryCache(
        lambda: retry_call(
            lambda: load_registry(clients.dynamodb, settings.command_table), Backoff()
        ),
        settings.registry_refresh_ms,
        wall_clock_ms,
        unknown_asset_cap=settings.unknown_asset_cap,
        background=True,
    )


def lighting_app(
    settings: Settings, clients: Clients, registry: RegistryCache | None = None
) -> App:
    """The lighting app with the registry of this deployment (`registry`, else a new cache),
    reading only the sites homed in this region (all of them when no homes are registered;
    see lighting.regions)."""
    app = build_app(
        registry or registry_cache(settings, clients),
        topic=settings.stream,
        grace_ms=settings.window_grace_ms,
    )
    return guard_app(app, home_gate(settings, clients))


def local_runner(
    settings: Settings,
    clients: Clients,
    *,
    stop_when_idle_ms: int | None = None,
    registry: RegistryCache | None = None,
) -> LocalRunner:
    """A local (polling) runner over every shard of the stream."""
    store = DynamoDBStateStore(clients.dynamodb, settings.state_table)
    return LocalRunner(
        clients.kinesis,
        settings.stream,
        LeaseTable(clients.dynamodb, settings.app_name),
        engine_factory(settings, clients, lighting_app(settings, clients, registry), store),
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
) -> LocalRunner:
    """Run a local runner until it stops (idle, `stop()`, or a fatal error)."""
    runner = local_runner(settings, clients, stop_when_idle_ms=stop_when_idle_ms)
    if on_runner is not None:
        on_runner(runner)
    runner.run()
    return runner


def kcl_engine_factory(
    settings: Settings, clients: Clients, registry: RegistryCache | None = None
) -> ShardEngineFactory:
    """The engine factory of `luxflow kcl-processor`: lineage from the lease table."""
    store = DynamoDBStateStore(clients.dynamodb, settings.state_table)
    leases = LeaseTable(clients.dynamodb, settings.app_name)
    return engine_factory(
        settings, clients, lighting_app(settings, clients, registry), store, lease_lineage(leases)
    )
