"""Every setting of luxflow, with its default and meaning.

This module only defines and validates settings; reading them from the environment happens
once, in the composition root (`app.py` calls `Settings.from_env(os.environ)`), and the
resulting object is passed down.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final

from core.errors import ConfigError
from core.records import AT_TIMESTAMP, TRIM_HORIZON
from domain.deadband import Deadband
from domain.series import check_interval_ms
from domain.timestamps import parse_ts_ms
from tables.snapshot import SNAPSHOT_FORMATS

LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
QUERY_MODELS: Final = ("timestream", "influxdb")


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
        60_000,
        "How often a shard saves its state and checkpoints (also at once when a window closes "
        "with outputs, so reports are not held back). Faults, spikes and current-state changes "
        "do not wait for it: they are written with the batch that made them. A failover "
        "re-processes at most this much (outputs are idempotent).",
    )
    snapshot_format: int = _setting(
        3,
        "State snapshot format: 3 (a delta stores only the windows that changed) or 2 (all of "
        "a changed key's windows). Both are read; 2 before rolling back to a build reading 2 only.",
    )
    idle_close: str = _setting(
        "lag",
        "How a quiet shard (caught up, no records for LUXFLOW_IDLE_TIMEOUT_MS) moves its event "
        "clock: lag (keep the lag between event time and arrival the shard showed: a paused "
        "backfill is not cut short) or wall (to the wall clock: the input is over, close every "
        "window; what --stop-when-idle-s runs use).",
    )
    state_deadband_w: float = _setting(
        2.0,
        "An asset's current-state item is rewritten for a power change only beyond the larger "
        "of this and LUXFLOW_STATE_DEADBAND_FRACTION of the written power (on/off, dim level "
        "and fault code changes are always written).",
    )
    state_deadband_fraction: float = _setting(
        0.05, "The relative part of the current-state power deadband (0.05: 5 %)."
    )
    state_refresh_ms: int = _setting(
        900_000,
        "The longest an asset's current-state item stands (event time) when nothing an "
        "operator sees changed (on/off, dim level, fault code, power beyond the deadband): "
        "at a reading a minute, 15 minutes writes about 4 items an hour instead of 60, which "
        "is most of the DynamoDB bill, and still shows within a quarter hour that an asset "
        "is alive. 0: every reading rewrites the item. What was written is part of the "
        "shard's snapshotted state, so a restart or lease move stores the same items.",
    )
    idle_timeout_ms: int = _setting(
        60_000, "After this long without records, a shard closes its windows by processing time."
    )
    max_clock_skew_ms: int = _setting(
        120_000,
        "How far ahead of its arrival at the stream a reading may be stamped; a faster device "
        "clock is dead-lettered as clock_skew and never moves the event clock. A reading "
        "moves the clock at most 5 s past its arrival less the shard's typical lag.",
    )
    window_grace_ms: int = _setting(
        600_000, "How late (event time) a reading may arrive and still count in its hourly window."
    )
    series_interval_ms: int = _setting(
        60_000,
        "Interval of the per-asset telemetry series in the query model (whole seconds dividing "
        "the hour; 0: no series). Each interval's rollup is written when its window closes "
        "(after the grace), beside an hourly downsample kept longer.",
    )
    series_hot_days: int = _setting(
        7,
        "How long the fine series is kept: InfluxDB retention policy series_hot; the Timestream "
        "series table's memory store (in hours: days x 24).",
    )
    series_cold_days: int = _setting(
        400,
        "How long the hourly downsample is kept: InfluxDB retention policy series_cold; the "
        "Timestream series table's magnetic store.",
    )
    registry_refresh_ms: int = _setting(
        30_000,
        "How often workers reload the asset registry: a threshold change applies within this.",
    )
    worker_id: str = _setting(
        "", "Lease owner name of this worker; default host name and process id."
    )
    poll_interval_ms: int = _setting(
        500,
        "Local runner: pause between GetRecords calls once a shard is caught up (two reads a "
        "second of Kinesis' five per shard).",
    )
    shard_sync_interval_ms: int = _setting(
        10_000,
        "Local runner: how often the shard list is read (new shards after a split or merge).",
    )
    failover_ms: int = _setting(
        10_000, "A lease whose counter stood still this long is taken over (both runners)."
    )
    log_level: str = _setting("INFO", "Log level of the luxflow loggers.")
    # -- input faults --
    unknown_asset_cap: int = _setting(
        10_000,
        "Unknown assets (not in the registry) a worker processes with site defaults; readings "
        "of further unknown assets are dead-lettered as unknown_asset.",
    )
    unknown_asset_site_cap: int = _setting(
        1_000,
        "Unknown assets one site may have among them (every site the registry does not know "
        "shares one such allowance), so one site cannot use up unknown_asset_cap; readings of "
        "further unknown assets of that site are dead-lettered as unknown_asset_site_cap.",
    )
    # --- query model on InfluxDB, and the read side ---
    query_model: str = _setting(
        "timestream",
        "Query-model store: timestream (LiveAnalytics) or influxdb (Timestream for InfluxDB).",
    )
    influxdb_url: str = _setting(
        "", "InfluxDB base URL (e.g. https://<id>.timestream-influxdb.<region>.on.aws:8086)."
    )
    influxdb_bucket: str = _setting(
        "luxflow", "InfluxDB bucket of the query model: `db[/rp]` on 1.8, a bucket on v2/v3."
    )
    influxdb_token: str = _setting(
        "",
        "InfluxDB writer token of the worker (`user:password` on 1.8); empty: read "
        "influxdb_token_secret.",
    )
    influxdb_token_secret: str = _setting(
        "", "Secrets Manager secret (name or ARN) holding the InfluxDB token, when no token set."
    )
    influxdb_read_token: str = _setting(
        "",
        "InfluxDB reader token of `query` and `serve`; empty: influxdb_read_token_secret, and "
        "if that is empty too, the writer's (influxdb_token / _secret).",
    )
    influxdb_read_token_secret: str = _setting(
        "", "Secrets Manager secret (name or ARN) holding the InfluxDB reader token."
    )
    influxdb_batch_points: int = _setting(5_000, "Most lines per InfluxDB write call.")
    influxdb_batch_bytes: int = _setting(
        1_000_000, "Most uncompressed bytes per InfluxDB write call (a longer line goes alone)."
    )
    influxdb_timeout_ms: int = _setting(10_000, "Timeout of one InfluxDB HTTP call.")
    api_token: str = _setting(
        "",
        "Bearer token the read API (`luxflow serve`) requires (16+ characters; `new,old` "
        "during a rotation); empty: read api_token_secret.",
    )
    api_token_secret: str = _setting(
        "", "Secrets Manager secret (name or ARN) holding the read API's bearer token."
    )
    api_secure_cookies: bool = _setting(
        False,
        "Mark the read API's session cookie Secure on every response (else only on https, "
        "directly or per a proxy's X-Forwarded-Proto).",
    )

    # -- observability: metrics, health endpoints, logs ---------------------------
    metrics_emf: str = _setting(
        "stdout",
        "Where `luxflow worker` writes CloudWatch EMF metric lines: stdout, stderr or off "
        "(KCL runner: the worker process, never a shard processor's protocol stdout).",
    )
    metrics_flush_interval_ms: int = _setting(
        60_000, "How often metrics are aggregated and written (one EMF line per series)."
    )
    health_port: int = _setting(
        8080, "Port of /healthz, /readyz (and /metrics if prometheus_port is the same); 0: off."
    )
    health_host: str = _setting(
        "0.0.0.0", "Address the health and metrics server binds (127.0.0.1: this host only)."
    )
    prometheus_port: int = _setting(
        0, "Port of the Prometheus /metrics endpoint (may equal health_port); 0: off."
    )
    readiness_checkpoint_intervals: int = _setting(
        3,
        "/readyz fails once a shard with work pending has not checkpointed for this many "
        "checkpoint intervals.",
    )
    log_format: str = _setting("text", "Log lines as text or json (one object per line).")
    log_payloads: bool = _setting(
        False, "Debug only: let log lines carry record payloads (never on in production)."
    )
    log_repeat_window_ms: int = _setting(
        60_000,
        "A repeated warning or error (same logger and message) is logged once per window, "
        "then once more with the count of those suppressed.",
    )
    # Multi-region DR (luxflow dr; docs/dr.md)
    takeover_hold_ms: int = _setting(
        300_000,
        "DR: how long a fault or spike of a taken-over site may wait for the lookup of the "
        "episodes the old region stored (done in the background) while its shard's checkpoint "
        "waits; then it is dead-lettered as takeover_lookup_unavailable.",
    )
    takeover_grace_ms: int = _setting(
        5_100_000,
        "DR: how late the readings of a site that moved here may arrive: the failover's archive "
        "tail (from the loss minus an hour, the window grace and the replication delay) and "
        "the devices' resend of their buffer. For that long in event time after a move, this "
        "region's windows accept readings that late, then the window grace returns by itself. "
        "0: no boost.",
    )
    dr_regions: str = _setting(
        "",
        "DR: the regions of the deployment, comma-separated, each `name` or `name=endpoint` "
        "(emulators); `luxflow dr` reaches every one. This worker's region is `region`.",
    )
    fence_table: str = _setting(
        "",
        "DR: the quorum table of the region fence (an MRSC global table; empty: no fence). A "
        "worker writes the command table only while its region's lease there is renewed.",
    )
    fence_ttl_ms: int = _setting(
        60_000, "DR: how long one renewal of the region's fence lease lasts."
    )
    fence_renew_ms: int = _setting(
        10_000, "DR: how often each worker process renews its region's fence lease."
    )
    fence_margin_ms: int = _setting(
        40_000,
        "DR: a command-table write starts only while the lease has this long left; at least "
        "the longest one write call can take (connect 5 s + read 30 s timeouts).",
    )
    fence_clock_skew_ms: int = _setting(
        5_000,
        "DR: the clock difference between regions a failover allows for: it revokes the lost "
        "region's lease only this long after the lease ended.",
    )
    # Replay and savepoints (luxflow savepoint, luxflow replay)
    savepoint_interval_ms: int = _setting(
        3_600_000,
        "How often `luxflow savepoint run` records every shard's state and position.",
    )
    savepoint_retention_ms: int = _setting(
        7 * 86_400_000,
        "How long a savepoint is kept; older ones are deleted when a savepoint is taken or "
        "by `luxflow savepoint prune`.",
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """The settings named in `env` (the composition root passes `os.environ`); the rest
        keep their defaults. Raises `ConfigError` naming the first bad variable."""
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
            "takeover_hold_ms",
            "savepoint_interval_ms",
            "savepoint_retention_ms",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"LUXFLOW_{name.upper()} must be positive")
        for name in ("unknown_asset_cap", "unknown_asset_site_cap", "takeover_grace_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"LUXFLOW_{name.upper()} must not be negative")
        if not (
            math.isfinite(self.state_deadband_w)
            and self.state_deadband_w >= 0
            and 0 <= self.state_deadband_fraction <= 1
            and self.state_refresh_ms >= 0
        ):
            raise ConfigError(
                "LUXFLOW_STATE_DEADBAND_W must be >= 0, LUXFLOW_STATE_DEADBAND_FRACTION in "
                "0..1 and LUXFLOW_STATE_REFRESH_MS at least 0"
            )
        if not 0 <= self.max_clock_skew_ms < self.window_grace_ms:
            # A device allowed to run a whole grace ahead could make every other device's
            # readings late.
            raise ConfigError(
                "LUXFLOW_MAX_CLOCK_SKEW_MS must be at least 0 and less than "
                f"LUXFLOW_WINDOW_GRACE_MS ({self.window_grace_ms})"
            )
        if self.fence_table and not (
            0 < self.fence_renew_ms < self.fence_ttl_ms - self.fence_margin_ms
            and self.fence_margin_ms >= 0
            and self.fence_clock_skew_ms >= 0
        ):
            raise ConfigError(
                "the fence needs 0 < LUXFLOW_FENCE_RENEW_MS < LUXFLOW_FENCE_TTL_MS - "
                "LUXFLOW_FENCE_MARGIN_MS (else it lapses between renewals), and a margin and "
                "clock skew of at least 0"
            )
        if self.series_interval_ms:
            try:
                check_interval_ms(self.series_interval_ms)
            except ValueError as exc:
                raise ConfigError(f"LUXFLOW_SERIES_INTERVAL_MS: {exc}") from None
        if not 1 <= self.series_hot_days <= min(self.series_cold_days, 365):
            # Timestream's memory store keeps at most 8,766 hours (a year).
            raise ConfigError(
                "LUXFLOW_SERIES_HOT_DAYS must be 1..365 and at most LUXFLOW_SERIES_COLD_DAYS"
            )
        if self.snapshot_format not in SNAPSHOT_FORMATS:
            raise ConfigError(f"LUXFLOW_SNAPSHOT_FORMAT must be 2 or 3, not {self.snapshot_format}")
        if self.idle_close not in ("lag", "wall"):
            raise ConfigError(f"LUXFLOW_IDLE_CLOSE must be lag or wall, not {self.idle_close!r}")
        if self.query_model not in QUERY_MODELS:
            raise ConfigError(
                f"LUXFLOW_QUERY_MODEL must be one of {', '.join(QUERY_MODELS)}, "
                f"not {self.query_model!r}"
            )
        if self.influxdb_batch_points <= 0 or self.influxdb_batch_bytes <= 0:
            raise ConfigError("LUXFLOW_INFLUXDB_BATCH_POINTS and _BATCH_BYTES must be positive")
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(
                f"LUXFLOW_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}"
            )

    @property
    def deadband(self) -> Deadband:
        """When an asset's current state is worth writing (the three LUXFLOW_STATE_* settings)."""
        return Deadband(
            min_w=self.state_deadband_w,
            fraction=self.state_deadband_fraction,
            refresh_ms=self.state_refresh_ms,
        )

    @property
    def owner(self) -> str:
        return self.worker_id or f"{socket.gethostname()}-{os.getpid()}"

    @property
    def at_timestamp_ms(self) -> int | None:
        return parse_time_ms(self.at_timestamp) if self.at_timestamp else None


def settings_table() -> str:
    """Every setting as a markdown table (variable, default, meaning): the README's table,
    written from the same declarations `from_env` reads."""
    rows = [
        f"| `LUXFLOW_{f.name.upper()}` | `{f.default!r}` | {f.metadata['help']} |"
        for f in fields(Settings)
    ]
    return "\n".join(["| variable | default | meaning |", "|---|---|---|", *rows]) + "\n"


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
    """An ISO-8601 UTC time as ms since the epoch, or `ConfigError`."""
    try:
        return parse_ts_ms(text)
    except ValueError:
        raise ConfigError(
            f"{text!r} is not an ISO-8601 UTC time like 2026-11-27T13:00:00.000Z"
        ) from None
