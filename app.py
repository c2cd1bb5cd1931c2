"""luxflow's composition root: settings -> clients -> App("lighting") + agents, and the CLI.

Only this module reads settings (environment variables prefixed LUXFLOW_, see `Settings`);
everything else receives what it needs as arguments. Nothing imports this module.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar, cast

import boto3
import msgspec
from botocore.config import Config

from core.clock import wall_clock_ms
from core.errors import ConfigError, LuxflowError, ReplayRefusedError
from core.records import AT_TIMESTAMP, TRIM_HORIZON, DeadLetter
from core.retry import Backoff
from domain import views
from domain.registry import (
    Asset,
    Registry,
    RegistryError,
    RegistryImport,
    SiteDefaults,
    encode_registry,
    parse_csv,
    parse_json,
    site_limits_of,
)
from domain.rules import AssetRuleState, Limits, asset_state, offline_check, step, usage_since_last
from domain.site import MINUTE_MS, SiteDemandState, SiteLimits, demand_w, site_demand_step
from domain.telemetry import Reading, decode_reading
from domain.usage import DAY_MS, asset_counts, scope_of_key, scopes_of, usage_report_of
from sinks.attrvalues import from_item
from sinks.base import Sink
from sinks.batching import BatchWriter, SinkCounters
from sinks.deadletter import DeadLetterSink, read_dead_letters
from sinks.dynamodb import DynamoDBSink
from sinks.provision import ensure_command_table, ensure_dead_letter_table, ensure_timestream
from sinks.timestream import TimestreamSink
from streams.app import App
from streams.checkpoints import Checkpointer
from streams.engine import EngineConfig, Lineage, ShardEngine
from streams.kinesis import partition_hash
from streams.leases import LeaseTable
from streams.local_runner import LocalRunner, LocalRunnerConfig
from streams.stream import Stream
from tables.store import DynamoDBStateStore, StateStore
from tables.store import ensure_table as ensure_state_table
from tables.table import WindowedTable

log = logging.getLogger("luxflow")
V = TypeVar("V")

HOUR_MS = 3_600_000


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


def _setting(default: Any, help_text: str) -> Any:
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class Settings:
    """Every setting of luxflow. Each field `x` is read from the variable LUXFLOW_<X>."""

    stream: str = _setting("luxflow-telemetry", "Kinesis stream the IoT rule writes to.")
    app_name: str = _setting(
        "luxflow-lighting", "Application name: the KCL lease table has this name."
    )
    region: str = _setting(
        "us-east-1",
        "AWS region (falls back to AWS_REGION / AWS_DEFAULT_REGION when LUXFLOW_REGION is unset).",
    )
    endpoint_url: str = _setting(
        "", "One endpoint for every AWS service (emulators); empty for real AWS."
    )
    kinesis_endpoint_url: str = _setting(
        "", "Kinesis endpoint when it differs from endpoint_url (e.g. kinesalite beside moto)."
    )
    command_table: str = _setting(
        "luxflow-model", "DynamoDB table of the command model (assets, faults, spikes, usage)."
    )
    dead_letter_table: str = _setting(
        "luxflow-dead-letters",
        "DynamoDB table of records that could not be processed, with reason and original bytes.",
    )
    state_table: str = _setting("luxflow-state", "DynamoDB table of per-shard state snapshots.")
    timestream_database: str = _setting(
        "luxflow", "Timestream database of the query model (tables `events` and `usage`)."
    )
    timestream_memory_retention_hours: int = _setting(
        24,
        "Memory-store retention of the Timestream tables; older points go to the magnetic store.",
    )
    timestream_magnetic_retention_days: int = _setting(
        3650, "Magnetic-store retention of the Timestream tables."
    )
    timestream_magnetic_writes: bool = _setting(
        True,
        "Write points older than the memory retention to the magnetic store (else dead-letter).",
    )
    timestream_common_attributes: bool = _setting(
        True,
        "Hoist attributes a batch shares into CommonAttributes; off for moto, which drops them.",
    )
    initial_position: str = _setting(
        TRIM_HORIZON,
        "Where a shard without a checkpoint starts: TRIM_HORIZON, LATEST or AT_TIMESTAMP.",
    )
    at_timestamp: str = _setting("", "ISO-8601 time for initial_position AT_TIMESTAMP.")
    checkpoint_interval_ms: int = _setting(
        5_000, "How often a shard flushes its sinks, saves its state and checkpoints."
    )
    idle_timeout_ms: int = _setting(
        60_000, "After this long without records, a shard closes its windows by processing time."
    )
    window_grace_ms: int = _setting(
        600_000, "How late (event time) a reading may arrive and still count in its hourly window."
    )
    registry_refresh_ms: int = _setting(
        30_000,
        "How often workers reload the asset registry: a threshold change applies within this.",
    )
    worker_id: str = _setting(
        "", "Lease owner name of this worker; default host name and process id."
    )
    poll_interval_ms: int = _setting(
        1_000, "Local runner: pause between GetRecords calls once a shard is caught up."
    )
    shard_sync_interval_ms: int = _setting(
        10_000,
        "Local runner: how often the shard list is read (new shards after a split or merge).",
    )
    failover_ms: int = _setting(
        10_000, "A lease whose counter stood still this long is taken over (both runners)."
    )
    log_level: str = _setting("INFO", "Log level of the luxflow loggers.")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for setting in fields(cls):
            name = f"LUXFLOW_{setting.name.upper()}"
            raw = env.get(name)
            if setting.name == "region" and raw is None:
                raw = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
            if raw is None:
                continue
            values[setting.name] = _parse_setting(name, raw, type(setting.default))
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.initial_position not in (TRIM_HORIZON, "LATEST", AT_TIMESTAMP):
            raise ConfigError(
                f"LUXFLOW_INITIAL_POSITION must be TRIM_HORIZON, LATEST or AT_TIMESTAMP, "
                f"not {self.initial_position!r}"
            )
        if self.initial_position == AT_TIMESTAMP and not self.at_timestamp:
            raise ConfigError("LUXFLOW_INITIAL_POSITION=AT_TIMESTAMP needs LUXFLOW_AT_TIMESTAMP")
        for name in (
            "checkpoint_interval_ms",
            "idle_timeout_ms",
            "registry_refresh_ms",
            "failover_ms",
            "shard_sync_interval_ms",
            "poll_interval_ms",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"LUXFLOW_{name.upper()} must be positive")

    @property
    def owner(self) -> str:
        return self.worker_id or f"{socket.gethostname()}-{os.getpid()}"

    @property
    def at_timestamp_ms(self) -> int | None:
        return parse_time_ms(self.at_timestamp) if self.at_timestamp else None


def _parse_setting(name: str, raw: str, kind: type) -> object:
    try:
        if kind is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None


def parse_time_ms(text: str) -> int:
    from domain.timestamps import parse_ts_ms

    try:
        return parse_ts_ms(text)
    except ValueError:
        raise ConfigError(
            f"{text!r} is not an ISO-8601 UTC time like 2026-11-27T13:00:00.000Z"
        ) from None


# --------------------------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------------------------


class Clients:
    """boto3 clients for one process, built from the settings. Thread-safe to share."""

    def __init__(self, settings: Settings) -> None:
        config = Config(
            retries={"total_max_attempts": 1},  # our Backoff retries exactly what failed
            max_pool_connections=64,
            connect_timeout=5,
            read_timeout=30,
        )
        kwargs: dict[str, Any] = {"region_name": settings.region, "config": config}
        if settings.endpoint_url:
            kwargs["endpoint_url"] = settings.endpoint_url
        session = boto3.session.Session()
        kinesis_kwargs = dict(kwargs)
        if settings.kinesis_endpoint_url:
            kinesis_kwargs["endpoint_url"] = settings.kinesis_endpoint_url
        self.kinesis: Any = session.client("kinesis", **kinesis_kwargs)
        self.dynamodb: Any = session.client("dynamodb", **kwargs)
        self.timestream: Any = session.client("timestream-write", **kwargs)


# --------------------------------------------------------------------------------------------
# The application: agents and tables
# --------------------------------------------------------------------------------------------


def _no_rule_state() -> AssetRuleState:
    raise KeyError("asset_rules has no default: use .get()")


class UsageAcc(msgspec.Struct):
    """Energy of one scope in one window, summed from the intervals between readings."""

    site_id: str = ""
    building_id: str = ""
    room_id: str = ""
    wh: float = 0.0
    covered_ms: int = 0
    assets: int = 0

    def __add__(self, more: UsageAcc) -> UsageAcc:
        """The sum, with the ids of `more` (the latest contribution)."""
        return UsageAcc(
            more.site_id,
            more.building_id,
            more.room_id,
            self.wh + more.wh,
            self.covered_ms + more.covered_ms,
            max(self.assets, more.assets),
        )


class RegistryCache:
    """The asset registry as the agents see it: loaded from the command table and reloaded
    every `refresh_ms`, so a threshold change reaches running workers within that time.
    Unknown assets get their site's defaults (or the fallback defaults) and are counted."""

    def __init__(
        self, load: Callable[[], Registry], refresh_ms: int, now_ms: Callable[[], int]
    ) -> None:
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

    def asset_count(self, scope_key: str) -> int:
        return self._counts.get(scope_key, 0)


def build_app(settings: Settings, registry: RegistryCache) -> App:
    """The lighting application: one agent applies the per-asset rules to every reading and
    feeds the usage and site-demand windows; event time drives roll-ups and offline checks."""
    app = App("lighting")
    telemetry = app.topic(settings.stream, decoder=decode_reading)
    grace_ms = settings.window_grace_ms
    asset_rules = app.Table("asset_rules", default=_no_rule_state, value_type=AssetRuleState)
    site_demand = app.Table("site_demand", default=_no_site_state, value_type=SiteDemandState)
    # Room, building and site sums of the asset windows closed by the current advance.
    rollups = app.Table("usage_rollups", default=UsageAcc, value_type=UsageAcc)
    next_offline_check = app.Table("offline_check", default=int, value_type=int)

    def windowed(
        name: str, size_ms: int, default: Callable[[], V], value_type: type[V]
    ) -> WindowedTable[V]:
        return (
            app.Table(name, default=default, value_type=value_type)
            .tumbling(size_ms, grace_ms=grace_ms)
            .relative_to_field(lambda reading: reading.ts_ms)
        )

    hourly = windowed("usage_hourly", HOUR_MS, UsageAcc, UsageAcc)
    daily = windowed("usage_daily", DAY_MS, UsageAcc, UsageAcc)
    site_minute = windowed("site_minute", MINUTE_MS, float, float)

    def usage_closed(
        window_ms: int,
    ) -> Callable[[Any, tuple[int, int], UsageAcc], Iterable[object]]:
        def close(asset_id: Any, window: tuple[int, int], acc: UsageAcc) -> Iterable[object]:
            scopes = scopes_of(acc.site_id, acc.building_id, acc.room_id, str(asset_id))
            yield usage_report_of(
                scopes[0],
                window_start_ms=window[0],
                window_ms=window_ms,
                wh=acc.wh,
                covered_ms=acc.covered_ms,
            )
            for scope in scopes[1:]:
                key = (scope.key, window_ms, window[0])
                held = rollups[key]
                rollups[key] = UsageAcc(
                    wh=held.wh + acc.wh,
                    covered_ms=held.covered_ms + acc.covered_ms,
                    assets=held.assets + 1,
                )

        return close

    hourly.on_window_close(usage_closed(HOUR_MS))
    daily.on_window_close(usage_closed(DAY_MS))

    @site_minute.on_window_close
    def site_minute_closed(site_id: Any, window: tuple[int, int], wh: float) -> Iterable[object]:
        limits = registry.site_limits(str(site_id))
        if limits is None:
            return
        state, spikes = site_demand_step(
            site_demand.get(str(site_id)),
            site_id=str(site_id),
            minute_start_ms=window[0],
            demand_w=demand_w(wh),
            limits=limits,
        )
        site_demand[str(site_id)] = state
        yield from spikes

    @app.on_advance
    def by_event_time(clock_ms: int) -> Iterable[object]:
        for key, acc in rollups.items():
            scope_key, window_ms, start_ms = cast(tuple[str, int, int], key)
            yield usage_report_of(
                scope_of_key(scope_key),
                window_start_ms=start_ms,
                window_ms=window_ms,
                wh=acc.wh,
                covered_ms=acc.covered_ms,
                asset_count=max(registry.asset_count(scope_key), acc.assets),
            )
            del rollups[key]
        if clock_ms < (next_offline_check.get("next") or 0):
            return
        next_offline_check["next"] = clock_ms - clock_ms % MINUTE_MS + MINUTE_MS
        for asset_id, state in asset_rules.items():
            limits = registry.limits(str(asset_id), state.site_id)
            after, events = offline_check(state, clock_ms, limits)
            if after is not state:
                asset_rules[asset_id] = after
                yield from events

    @app.agent(telemetry)
    async def detect(stream: Stream[Reading]) -> AsyncIterator[object]:
        async for reading in stream:
            asset_id = reading.asset_id
            limits = registry.limits(asset_id, reading.site_id)
            before = asset_rules.get(asset_id)
            for table, window_ms in ((hourly, HOUR_MS), (daily, DAY_MS)):
                for start_ms, wh, covered_ms in usage_since_last(
                    before, reading, limits, window_ms
                ):
                    contribution = UsageAcc(
                        reading.site_id, reading.building_id, reading.room_id, wh, covered_ms, 1
                    )
                    table.add(asset_id, contribution, at_ms=start_ms)
            for start_ms, wh, _ in usage_since_last(before, reading, limits, MINUTE_MS):
                site_minute.add(reading.site_id, wh, at_ms=start_ms)
            after, events = step(before, reading, limits)
            if after is not before:
                asset_rules[asset_id] = after
                for event in events:
                    yield event
                yield asset_state(reading)

    return app


def _no_site_state() -> SiteDemandState:
    raise KeyError("site_demand has no default: use .get()")


# --------------------------------------------------------------------------------------------
# Runtime wiring: one engine per shard
# --------------------------------------------------------------------------------------------


def engine_factory(
    settings: Settings,
    clients: Clients,
    app: App,
    state_store: StateStore,
    lineage: Callable[[str], Lineage] | None = None,
) -> Callable[[str, Checkpointer], ShardEngine]:
    memory_retention_ms = settings.timestream_memory_retention_hours * HOUR_MS

    def build(shard_id: str, checkpointer: Checkpointer) -> ShardEngine:
        dead_letter = DeadLetterSink(clients.dynamodb, settings.dead_letter_table, Backoff())

        def reject_point(point: object, reason: str) -> None:
            data = msgspec.json.encode(point)
            dead_letter.write(
                DeadLetter(
                    shard_id,
                    0,
                    0,
                    "",
                    "timestream",
                    reason,
                    data,
                    wall_clock_ms(),
                    detail_key=_point_key(point),
                )
            )

        sinks: list[Sink] = [
            DynamoDBSink(
                clients.dynamodb,
                settings.command_table,
                views.command_writes,
                Backoff(),
                # Current state: only the newest per asset is turned into a request, at flush.
                coalesce=views.current_state_key,
            ),
            TimestreamSink(
                clients.timestream,
                settings.timestream_database,
                views.time_points,
                Backoff(),
                memory_retention_ms=memory_retention_ms,
                magnetic_store_writes=settings.timestream_magnetic_writes,
                now_ms=wall_clock_ms,
                reject=reject_point,
                common_attributes=settings.timestream_common_attributes,
            ),
        ]
        return ShardEngine(
            app,
            shard_id,
            sinks=sinks,
            dead_letter=dead_letter,
            state_store=state_store,
            checkpointer=checkpointer,
            config=EngineConfig(
                checkpoint_interval_ms=settings.checkpoint_interval_ms,
                idle_timeout_ms=settings.idle_timeout_ms,
            ),
            lineage=lineage(shard_id) if lineage is not None else Lineage(),
        )

    return build


def _point_key(point: object) -> str:
    dims = getattr(point, "dimensions", {})
    name = getattr(point, "measure_name", "")
    return f"{name}#{dims.get('asset', '')}#{getattr(point, 'time_ms', 0)}"


# --------------------------------------------------------------------------------------------
# Provisioning and reading back
# --------------------------------------------------------------------------------------------


def provision(settings: Settings, clients: Clients, *, shards: int | None = None) -> None:
    """Create what a deployment needs, idempotently. The stream only when `shards` is given."""
    if shards is not None:
        with contextlib.suppress(clients.kinesis.exceptions.ResourceInUseException):
            clients.kinesis.create_stream(StreamName=settings.stream, ShardCount=shards)
        clients.kinesis.get_waiter("stream_exists").wait(
            StreamName=settings.stream, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
    LeaseTable(clients.dynamodb, settings.app_name).ensure_table()
    ensure_command_table(clients.dynamodb, settings.command_table)
    ensure_dead_letter_table(clients.dynamodb, settings.dead_letter_table)
    ensure_state_table(clients.dynamodb, settings.state_table)
    ensure_timestream(
        clients.timestream,
        settings.timestream_database,
        [views.EVENTS_TABLE, views.USAGE_TABLE],
        memory_retention_hours=settings.timestream_memory_retention_hours,
        magnetic_retention_days=settings.timestream_magnetic_retention_days,
        enable_magnetic_writes=settings.timestream_magnetic_writes,
    )


def read_command_model(clients: Clients, settings: Settings) -> list[dict[str, Any]]:
    """Every item of the command table as plain Python values."""
    items: list[dict[str, Any]] = []
    paginator = clients.dynamodb.get_paginator("scan")
    for page in paginator.paginate(TableName=settings.command_table, ConsistentRead=True):
        items.extend(from_item(raw) for raw in page["Items"])
    return items


REGISTRY_PK = "REGISTRY"


def load_registry(clients: Clients, settings: Settings) -> Registry:
    """The registry items of the command table (pk REGISTRY, sk ASSET#<id> / SITE#<id>)."""
    assets: list[Asset] = []
    sites: list[SiteDefaults] = []
    paginator = clients.dynamodb.get_paginator("query")
    pages = paginator.paginate(
        TableName=settings.command_table,
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


def store_registry(clients: Clients, settings: Settings, imported: RegistryImport) -> None:
    """Put the imported assets and site defaults (an import replaces items with the same id)."""
    docs = [
        ("ASSET#" + a.asset_id, "registry_asset", msgspec.json.encode(a)) for a in imported.assets
    ]
    docs += [("SITE#" + s.site_id, "registry_site", msgspec.json.encode(s)) for s in imported.sites]
    writer = BatchWriter(clients.dynamodb, settings.command_table, Backoff(), SinkCounters())
    items = [
        {"pk": {"S": REGISTRY_PK}, "sk": {"S": sk}, "type": {"S": kind}, "doc": {"S": doc.decode()}}
        for sk, kind, doc in docs
    ]
    for start in range(0, len(items), 25):
        writer.put_batch(items[start : start + 25])


def registry_cache(clients: Clients, settings: Settings) -> RegistryCache:
    return RegistryCache(
        lambda: load_registry(clients, settings), settings.registry_refresh_ms, wall_clock_ms
    )


def events_of(items: Iterable[dict[str, Any]], kind: type[Any], type_name: str) -> list[Any]:
    return [msgspec.convert(i, kind) for i in items if i.get("type") == type_name]


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def run_local_worker(
    settings: Settings,
    clients: Clients,
    *,
    stop_when_idle_ms: int | None = None,
    on_runner: Callable[[LocalRunner], None] | None = None,
) -> LocalRunner:
    app = build_app(settings, registry_cache(clients, settings))
    store = DynamoDBStateStore(clients.dynamodb, settings.state_table)
    runner = LocalRunner(
        clients.kinesis,
        settings.stream,
        LeaseTable(clients.dynamodb, settings.app_name),
        engine_factory(settings, clients, app, store),
        LocalRunnerConfig(
            worker_id=settings.owner,
            initial_position=settings.initial_position,
            at_timestamp_ms=settings.at_timestamp_ms,
            idle_poll_interval_ms=settings.poll_interval_ms,
            shard_sync_interval_ms=settings.shard_sync_interval_ms,
            failover_ms=settings.failover_ms,
            stop_when_idle_ms=stop_when_idle_ms,
        ),
    )
    if on_runner is not None:
        on_runner(runner)
    _stop_on_signals(runner.stop)
    runner.run()
    return runner


def _stop_on_signals(stop: Callable[[], None]) -> None:
    import signal

    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping after a last checkpoint", signum)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    if args.runner == "kcl":
        return run_kcl_daemon(args, settings)
    stop_when_idle_ms = args.stop_when_idle_s * 1000 if args.stop_when_idle_s else None
    runner = run_local_worker(settings, Clients(settings), stop_when_idle_ms=stop_when_idle_ms)
    counters = [p.counters for p in runner.progress.values()]
    print(
        f"luxflow worker: {sum(c.records for c in counters)} records read, "
        f"{sum(c.bad_records + c.late_records for c in counters)} dead-lettered, "
        f"{sum(c.skipped_already_applied for c in counters)} skipped as already applied, "
        f"{sum(c.outputs for c in counters)} outputs, {len(counters)} shards",
        file=sys.stderr,
    )
    if runner.errors:
        for error in runner.errors:
            log.error("%s", error)
        return 1
    return 0


def run_kcl_daemon(args: argparse.Namespace, settings: Settings) -> int:
    """Write the daemon's properties from the settings and run it; it starts one
    `luxflow kcl-processor` per leased shard."""
    import tempfile

    from streams.kcl import KclSettings, run_daemon

    if settings.initial_position == AT_TIMESTAMP:
        raise ConfigError(
            "the KCL runner starts new leases at TRIM_HORIZON or LATEST; "
            "use `luxflow replay --from <time>` to replay from a timestamp"
        )
    kcl = KclSettings(
        stream_name=settings.stream,
        application_name=settings.app_name,
        region=settings.region,
        executable=[sys.executable, "-m", "app", "kcl-processor"],
        initial_position=settings.initial_position,
        kinesis_endpoint=settings.kinesis_endpoint_url or settings.endpoint_url or None,
        dynamodb_endpoint=settings.endpoint_url or None,
        worker_id=settings.owner,
        failover_time_ms=settings.failover_ms,
        lease_assignment_interval_ms=args.lease_assignment_interval_ms or None,
        worker_metrics_report_interval_ms=args.worker_metrics_interval_ms or None,
    )
    properties = (
        Path(tempfile.gettempdir()) / f"luxflow-{settings.app_name}-{settings.owner}.properties"
    )
    return run_daemon(kcl, jars_dir=args.jars, properties_path=properties)


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from benchmarks import cli as bench_cli

    empty = RegistryCache(lambda: Registry([]), 2**62, wall_clock_ms)
    return bench_cli.run(args, build_app=lambda: build_app(settings, empty))


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    """Every setting: its variable, default, current value and meaning."""
    rows = [
        (
            f"LUXFLOW_{f.name.upper()}",
            repr(f.default),
            repr(getattr(settings, f.name)),
            f.metadata["help"],
        )
        for f in fields(Settings)
    ]
    if args.markdown:
        print("| variable | default | meaning |\n|---|---|---|")
        for name, default, _current, help_text in rows:
            print(f"| `{name}` | `{default}` | {help_text} |")
        return 0
    for name, _default, current, help_text in rows:
        print(f"{name:42} {current:24} {help_text}")
    return 0


def cmd_setup(args: argparse.Namespace, settings: Settings) -> int:
    provision(settings, Clients(settings), shards=args.shards)
    print(f"ready: stream {settings.stream}, tables and Timestream database")
    return 0


def simulation_of(args: argparse.Namespace) -> Any:
    from domain.simulator import SimParams, Simulation

    now_ms = wall_clock_ms()
    # End the simulated period an hour before now, on an hour boundary, so every hourly
    # window can close and no reading is in the future.
    end_ms = now_ms - now_ms % HOUR_MS - HOUR_MS
    duration_ms = int(args.hours * HOUR_MS)
    return Simulation(
        SimParams(
            sites=args.sites,
            buildings_per_site=args.buildings,
            rooms_per_building=args.rooms,
            lamps_per_room=args.lamps,
            sensors_per_room=1,
            start_ms=end_ms - duration_ms,
            duration_ms=duration_ms,
            interval_ms=args.interval_s * 1000,
            seed=args.seed,
            fault_count=args.faults,
            spike_count=args.spikes,
        )
    )


def simulated_registry(simulation: Any) -> RegistryImport:
    return RegistryImport(simulation.registry(), list(simulation.site_defaults().values()), [])


def write_registry(simulation: Any, path: Path) -> None:
    """The simulated fleet and its site thresholds, in the form `luxflow registry import` reads."""
    registry = simulated_registry(simulation)
    path.write_bytes(encode_registry(registry.assets, registry.sites))


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from domain.simulator import encode_ground_truth, with_malformed
    from streams.producer import Producer

    simulation = simulation_of(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ground-truth.json").write_bytes(encode_ground_truth(simulation.ground_truth()))
    write_registry(simulation, out / "registry.json")
    clients = Clients(settings)
    producer = Producer(clients.kinesis, settings.stream, records_per_s=args.rate or None)
    records: Iterable[tuple[str, bytes]] = simulation.records()
    if args.malformed:
        records = with_malformed(records, every=1_000)
    started = time.monotonic()
    producer.send(records)
    elapsed = time.monotonic() - started
    print(
        f"sent {producer.counters.records} records in {elapsed:.1f}s "
        f"({producer.counters.retried_records} retried); ground truth and registry in {out}/"
    )
    return 0


def cmd_registry(args: argparse.Namespace, settings: Settings) -> int:
    clients = Clients(settings)
    if args.action == "show":
        registry = load_registry(clients, settings)
        for asset in sorted(registry.assets.values(), key=lambda a: a.asset_id):
            if args.site and asset.site_id != args.site:
                continue
            print(msgspec.json.encode(asset).decode())
        for site in registry.sites.values():
            if not args.site or site.site_id == args.site:
                print(msgspec.json.encode(site).decode())
        print(f"{len(registry.assets)} assets, {len(registry.sites)} sites", file=sys.stderr)
        return 0
    path = Path(args.file)
    try:
        data = path.read_bytes()
        imported = parse_csv(data.decode()) if path.suffix.lower() == ".csv" else parse_json(data)
    except (OSError, UnicodeDecodeError, RegistryError) as exc:
        raise ConfigError(f"cannot import {path}: {exc}") from exc
    for row in imported.rejected:
        print(f"rejected {path.name}:{row.position}: {row.reason}", file=sys.stderr)
    store_registry(clients, settings, imported)
    print(
        f"imported {len(imported.assets)} assets and {len(imported.sites)} site defaults; "
        f"rejected {len(imported.rejected)} rows"
    )
    return 1 if imported.rejected else 0


def cmd_deadletters(args: argparse.Namespace, settings: Settings) -> int:
    letters = read_dead_letters(Clients(settings).dynamodb, settings.dead_letter_table)
    for letter in letters[: args.limit]:
        print(
            f"{letter.shard_id} {letter.sequence_number}/{letter.sub_sequence_number} "
            f"{letter.origin}: {letter.reason} ({len(letter.data)} bytes)"
        )
    print(f"{len(letters)} dead letters")
    return 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    clients = Clients(settings)
    leases = LeaseTable(clients.dynamodb, settings.app_name)
    if args.from_ == "trim-horizon":
        initial, at_ms = TRIM_HORIZON, None
    else:
        initial, at_ms = AT_TIMESTAMP, parse_time_ms(args.from_)
    current = leases.list()
    if not current:
        raise ReplayRefusedError(f"lease table {settings.app_name} has no leases: nothing to reset")
    owned = {k: v for k, v in current.items() if v.owner is not None}
    if owned:
        wait_s = settings.failover_ms / 1000
        print(f"{len(owned)} leases have an owner; checking for {wait_s:.0f}s that none is alive")
        time.sleep(wait_s)
        later = leases.list()
        alive = sorted(k for k, v in owned.items() if k in later and later[k].counter != v.counter)
        if alive:
            raise ReplayRefusedError(
                f"workers are running (leases renewed: {', '.join(alive)}); stop them first"
            )
        current = later
    if not args.yes:
        raise ReplayRefusedError(
            f"this resets {len(current)} shard checkpoints of {settings.app_name} to "
            f"{args.from_} and deletes the stored state; run again with --yes"
        )
    for lease in current.values():
        unowned = leases.release(lease) if lease.owner is not None else lease
        leases.reset(unowned, initial, at_ms)
    DynamoDBStateStore(clients.dynamodb, settings.state_table).delete_all()
    print(f"reset {len(current)} shards to {args.from_}; state deleted. Start the workers.")
    return 0


def cmd_kcl_processor(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kcl import run_processor

    clients = Clients(settings)
    app = build_app(settings, registry_cache(clients, settings))
    store = DynamoDBStateStore(clients.dynamodb, settings.state_table)
    leases = LeaseTable(clients.dynamodb, settings.app_name)

    def lineage(shard_id: str) -> Lineage:
        # The protocol's initialize names no parents: the lease table does.
        lease = leases.get(shard_id)
        if lease is None:
            return Lineage()
        return Lineage(lease.parent_ids, lambda pk: lease.owns(partition_hash(pk)))

    return run_processor(engine_factory(settings, clients, app, store, lineage))


@dataclass
class EmulatedRun:
    """What one run of the real pipeline on emulated AWS left behind."""

    items: list[dict[str, Any]]
    dead_letters: list[DeadLetter]
    timestream_points: int
    runner_errors: list[str]
    producer_errors: list[str]


def run_on_emulated_aws(
    settings: Settings,
    simulation: Any,
    *,
    shards: int,
    malformed: bool,
    progress: bool,
) -> EmulatedRun:
    """Start moto (DynamoDB, Timestream) and kinesalite (Kinesis) on 127.0.0.1, create
    everything, import the simulated registry, send the simulation (with the malformed samples
    if asked) while a local worker consumes it, stop the worker once all was read and the
    windows closed, and read back what was stored. kinesalite, because moto's PutRecords slows
    down as a shard grows (about 2,000 records/s at 50,000 records in a shard)."""
    import dataclasses

    from domain.simulator import MALFORMED_SAMPLES, with_malformed
    from streams.kinesalite import Kinesalite
    from streams.localaws import MotoServer, emulator_env
    from streams.producer import Producer

    with MotoServer() as moto, Kinesalite() as kinesalite:
        for key, value in emulator_env(moto.endpoint).items():
            os.environ.setdefault(key, value)
        settings = dataclasses.replace(
            settings,
            endpoint_url=moto.endpoint,
            kinesis_endpoint_url=kinesalite.endpoint,
            region="us-east-1",
            timestream_common_attributes=False,
            idle_timeout_ms=3_000,
            checkpoint_interval_ms=2_000,
            poll_interval_ms=250,
        )
        print(
            f"emulated AWS on 127.0.0.1: moto {moto.endpoint}, kinesalite {kinesalite.endpoint}",
            flush=True,
        )
        clients = Clients(settings)
        provision(settings, clients, shards=shards)
        store_registry(clients, settings, simulated_registry(simulation))
        records = sum(simulation.reading_count(a) for a in simulation.assets)
        total = records + (len(MALFORMED_SAMPLES) if malformed else 0)
        producer = Producer(clients.kinesis, settings.stream)
        sent = threading.Event()
        producer_errors: list[str] = []

        def produce() -> None:
            stream: Iterable[tuple[str, bytes]] = simulation.records()
            try:
                producer.send(with_malformed(stream, every=2_000) if malformed else stream)
            except LuxflowError as exc:
                producer_errors.append(str(exc))
            finally:
                sent.set()

        runner_box: list[LocalRunner] = []
        worker = threading.Thread(
            target=run_local_worker,
            args=(settings, clients),
            kwargs={"on_runner": runner_box.append},
            name="worker",
            daemon=True,
        )
        threading.Thread(target=produce, name="producer", daemon=True).start()
        worker.start()
        _watch_demo(producer, runner_box, sent, total, settings, progress=progress)
        worker.join()
        return EmulatedRun(
            items=read_command_model(clients, settings),
            dead_letters=read_dead_letters(clients.dynamodb, settings.dead_letter_table),
            timestream_points=_timestream_point_count(moto.endpoint, settings.timestream_database),
            runner_errors=runner_box[0].errors,
            producer_errors=producer_errors,
        )


def evaluate_run(truth: Any, run: EmulatedRun, settings: Settings, usage_scopes: Any = None) -> Any:
    """Scores of a run; only usage windows that could close by now (end plus grace) count."""
    from domain.evaluation import ASSET_HOURLY, evaluate
    from domain.events import EnergySpike, Fault, UsageReport

    return evaluate(
        truth,
        events_of(run.items, Fault, "fault"),
        events_of(run.items, EnergySpike, "energy_spike"),
        events_of(run.items, UsageReport, "usage_report"),
        usage_scopes=usage_scopes or ASSET_HOURLY,
        closed_by_ms=wall_clock_ms() - settings.window_grace_ms,
    )


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Emulated AWS on 127.0.0.1 -> simulator -> worker -> verdict against the ground truth."""
    from domain.simulator import MALFORMED_SAMPLES

    started = time.monotonic()
    simulation = simulation_of(args)
    truth = simulation.ground_truth()
    print(
        f"simulating {args.sites} sites, {len(simulation.assets)} assets, {args.hours} h: "
        f"{sum(simulation.reading_count(a) for a in simulation.assets)} readings, "
        f"{len(truth.faults)} faults, {len(truth.spikes)} spikes, "
        f"{len(MALFORMED_SAMPLES)} malformed records",
        flush=True,
    )
    run = run_on_emulated_aws(
        settings, simulation, shards=args.shards, malformed=True, progress=True
    )
    if run.producer_errors:
        print(f"producer failed: {run.producer_errors[0]}")
        return 1
    result = evaluate_run(truth, run, settings)
    print()
    print(f"{'':36}{'injected':>10}{'stored':>10}{'matched':>10}")
    for score in result.scores:
        if score.expected or score.detected:
            print(f"{score.kind:36}{score.expected:>10}{score.detected:>10}{score.matched:>10}")
    bad_ok = len(run.dead_letters) == len(MALFORMED_SAMPLES)
    print(f"{'dead letters':36}{len(MALFORMED_SAMPLES):>10}{len(run.dead_letters):>10}")
    offline = sum(1 for i in run.items if i.get("type") == "fault" and i["code"] == "offline")
    print(f"(and {offline} assets reported offline once the simulated data ended)")
    print(f"Timestream points written: {run.timestream_points}")
    elapsed = time.monotonic() - started
    print(f"runner errors: {len(run.runner_errors)}; took {elapsed:.0f}s")
    ok = result.passed and bad_ok and not run.runner_errors
    print("PASS: stored equals injected" if ok else "FAIL: stored differs from injected")
    return 0 if ok else 1


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    """A seeded scenario with every anomaly kind and near-miss through the real pipeline on
    emulated AWS: precision, recall and timing error per event kind."""
    from domain.evaluation import ALL_USAGE_SCOPES
    from domain.simulator import ANOMALY_COUNTS, Simulation, scenario_params

    now_ms = wall_clock_ms()
    duration_ms = int(args.hours * HOUR_MS)
    end_ms = now_ms - now_ms % HOUR_MS - HOUR_MS
    overrides: dict[str, int | float] = {
        "sites": args.sites,
        "duration_ms": duration_ms,
        "start_ms": end_ms - duration_ms,
        "seed": args.seed,
    }
    # The scenario's counts are for 20 sites over 24 h: scale them to the fleet and period.
    scale = args.sites / 20 * args.hours / 24
    defaults = scenario_params()
    for name in ANOMALY_COUNTS:
        overrides[name] = 0 if args.clean else max(1, round(getattr(defaults, name) * scale))
    # Near-misses (blips, single toggles, short gaps, voltage near the band) stay in a clean
    # scenario: they are what must not fire.
    overrides["near_miss_count"] = max(1, round(defaults.near_miss_count * scale))
    try:
        simulation = Simulation(scenario_params(**overrides))
    except ValueError as exc:
        raise ConfigError(f"cannot plan the scenario: {exc}") from exc
    truth = simulation.ground_truth()
    run = run_on_emulated_aws(
        settings, simulation, shards=args.shards, malformed=False, progress=not args.json
    )
    result = evaluate_run(truth, run, settings, ALL_USAGE_SCOPES)
    if args.json:
        print(result.to_json())
    else:
        print(f"{'kind':36}{'expected':>9}{'detected':>9}{'precision':>10}{'recall':>8}")
        for score in result.scores:
            print(
                f"{score.kind:36}{score.expected:>9}{score.detected:>9}"
                f"{score.precision:>10.3f}{score.recall:>8.3f}"
            )
    return 0 if not run.runner_errors and not run.producer_errors else 1


def _watch_demo(
    producer: Any,
    runner_box: list[LocalRunner],
    sent: threading.Event,
    total: int,
    settings: Settings,
    *,
    progress: bool,
) -> None:
    """Print progress; stop the worker once everything was sent, read and windows closed."""
    quiet_needed_s = settings.idle_timeout_ms / 1000 + 2.0
    while True:
        time.sleep(1.0)
        if not runner_box:
            continue
        runner = runner_box[0]
        processed = sum(p.records for p in runner.progress.values())
        if progress:
            print(
                f"  sent {producer.counters.records:>7}/{total}  read {processed:>7}  "
                f"shards {len(runner.progress)}",
                flush=True,
            )
        if not sent.is_set():
            continue
        now = time.monotonic()
        quiet = [
            p.ended or (p.quiet_since_s is not None and now - p.quiet_since_s >= quiet_needed_s)
            for p in runner.progress.values()
        ]
        if processed >= producer.counters.records and quiet and all(quiet):
            runner.stop()
            return


def _timestream_point_count(endpoint: str, database: str) -> int:
    """Records moto holds in `database` (its `/moto-api/data.json`; emulator only)."""
    import urllib.request

    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=10) as response:
        data = msgspec.json.decode(response.read())
    tables = data.get("timestreamwrite", {}).get("TimestreamTable", [])
    return sum(len(t.get("records", [])) for t in tables if t.get("db_name") == database)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _simulation_args(parser: argparse.ArgumentParser, sites: int, hours: float) -> None:
    parser.add_argument("--sites", type=int, default=sites, help="number of sites")
    parser.add_argument("--buildings", type=int, default=2, help="buildings per site")
    parser.add_argument("--rooms", type=int, default=3, help="rooms per building")
    parser.add_argument("--lamps", type=int, default=4, help="luminaires per room")
    parser.add_argument("--hours", type=float, default=hours, help="simulated hours")
    parser.add_argument("--interval-s", type=int, default=60, help="seconds between readings")
    parser.add_argument("--faults", type=int, default=6, help="faults injected in total")
    parser.add_argument("--spikes", type=int, default=6, help="spikes injected in total")
    parser.add_argument("--seed", type=int, default=7, help="random seed")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="luxflow",
        description="Smart-lighting telemetry on Kinesis -> DynamoDB and Timestream. "
        "Settings come from LUXFLOW_* environment variables (see README).",
    )
    sub = root.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run everything on embedded emulated AWS (127.0.0.1)")
    _simulation_args(demo, sites=4, hours=2)
    demo.add_argument("--shards", type=int, default=4, help="Kinesis shards")
    demo.set_defaults(run=cmd_demo)

    worker = sub.add_parser("worker", help="consume the stream (local runner or KCL daemon)")
    worker.add_argument("--runner", choices=["local", "kcl"], default="local")
    worker.add_argument("--jars", default=".jars", help="KCL jars directory (--runner kcl)")
    worker.add_argument(
        "--lease-assignment-interval-ms",
        type=int,
        default=0,
        help="KCL 3: how often the leader assigns leases (default: the KCL's, 2 x failover)",
    )
    worker.add_argument(
        "--worker-metrics-interval-ms",
        type=int,
        default=0,
        help="KCL 3: how often workers report metrics for lease balancing (default 30 s)",
    )
    worker.add_argument(
        "--stop-when-idle-s",
        type=int,
        default=0,
        help="local runner: stop once every shard was caught up and quiet this long",
    )
    worker.set_defaults(run=cmd_worker)

    simulate = sub.add_parser("simulate", help="send simulated telemetry to the stream")
    _simulation_args(simulate, sites=4, hours=2)
    simulate.add_argument("--out", default="simulation", help="ground truth + registry folder")
    simulate.add_argument(
        "--rate", type=float, default=0, help="records/s (0: as fast as possible)"
    )
    simulate.add_argument("--malformed", action="store_true", help="add malformed samples")
    simulate.set_defaults(run=cmd_simulate)

    from benchmarks import cli as bench_cli

    bench = sub.add_parser(
        "bench", help="throughput and memory benchmarks, compared with faust and plain boto3"
    )
    bench_cli.add_arguments(bench)
    bench.set_defaults(run=cmd_bench)

    config = sub.add_parser("config", help="print every setting with its current value")
    config.add_argument("--markdown", action="store_true", help="as the README's table")
    config.set_defaults(run=cmd_config)

    setup = sub.add_parser("setup", help="create the stream, tables and Timestream database")
    setup.add_argument("--shards", type=int, default=None, help="also create the stream")
    setup.set_defaults(run=cmd_setup)

    replay = sub.add_parser("replay", help="reset every checkpoint and the state (workers stopped)")
    replay.add_argument("--from", dest="from_", required=True, help="trim-horizon or ISO time")
    replay.add_argument("--yes", action="store_true", help="do it (otherwise only explain)")
    replay.set_defaults(run=cmd_replay)

    evaluate = sub.add_parser(
        "evaluate", help="precision and recall per event kind on a seeded scenario"
    )
    evaluate.add_argument("--sites", type=int, default=20, help="number of sites")
    evaluate.add_argument("--hours", type=float, default=24, help="simulated hours")
    evaluate.add_argument("--seed", type=int, default=1, help="random seed")
    evaluate.add_argument("--shards", type=int, default=4, help="Kinesis shards")
    evaluate.add_argument(
        "--clean", action="store_true", help="inject no anomalies (near-misses stay)"
    )
    evaluate.add_argument("--json", action="store_true", help="one JSON object keyed by kind")
    evaluate.set_defaults(run=cmd_evaluate)

    registry = sub.add_parser("registry", help="import or show the asset registry")
    registry_sub = registry.add_subparsers(dest="action", required=True)
    registry_import = registry_sub.add_parser(
        "import", help="import assets (and site defaults) from a CSV or JSON file"
    )
    registry_import.add_argument("file", help="*.csv, or JSON as written by `luxflow simulate`")
    registry_show = registry_sub.add_parser("show", help="print the registry as JSON lines")
    registry_show.add_argument("--site", default="", help="only this site")
    registry.set_defaults(run=cmd_registry)

    dead = sub.add_parser("deadletters", help="list dead letters with their reasons")
    dead.add_argument("--limit", type=int, default=50)
    dead.set_defaults(run=cmd_deadletters)

    kcl = sub.add_parser("kcl-processor", help="(run by the KCL daemon) one shard processor")
    kcl.set_defaults(run=cmd_kcl_processor)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s %(threadName)s: %(message)s",
            stream=sys.stderr,
        )
        code: int = args.run(args, settings)
        return code
    except LuxflowError as exc:
        print(f"luxflow: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
