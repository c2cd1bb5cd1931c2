"""The InfluxDB query model of this deployment: its client, token, database and the tiers of
the telemetry series.

Tiers: events and usage go to the configured bucket; the fine telemetry series to the retention
policy `series_hot` (kept `series_hot_days`) and its hourly downsample to `series_cold` (kept
`series_cold_days`), both in the same database (bucket `<database>/<rp>`, how InfluxDB 1.8's v2
write API and Timestream for InfluxDB's DBRP mappings name a retention policy). luxflow writes the
downsample itself, from the same rollups as the fine series, rather than by a continuous query:
InfluxDB v2 and v3 (what Timestream for InfluxDB runs) have no continuous queries, a CQ runs on
wall-clock time and would miss late readings that luxflow's grace still counts, and the
Timestream LiveAnalytics model gets the same points.

The worker writes with `influxdb_token`, else the Secrets Manager secret
`influxdb_token_secret` (its SecretString is the token, or JSON with a `token` field); `query`
and `serve` read with `influxdb_read_token` / `influxdb_read_token_secret`, falling back to the
writer's. Each is read once when the client is built and parsed strictly (`lighting.secrets`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Final

from core.errors import ConfigError
from core.retry import Backoff
from domain.series import SERIES_COLD, SERIES_HOT, Tier, point_tier
from lighting.clients import Clients
from lighting.secrets import MIN_INFLUX_TOKEN_CHARS, secret_token, strict_token
from lighting.settings import Settings
from sinks.base import Sink
from sinks.influxdb import BatchLimits, InfluxDBSink
from sinks.influxhttp import InfluxAuthError, InfluxError, InfluxHTTP
from sinks.provision import ensure_retention_policy
from sinks.rejects import Reject
from sinks.routed import RoutedSink
from sinks.versions import Superseded

log = logging.getLogger(__name__)

SERIES_RPS: Final[dict[Tier, str]] = {SERIES_HOT: "series_hot", SERIES_COLD: "series_cold"}
"""The retention policy of each tier of the telemetry series."""
MAIN: Final = "main"


def influx_token(settings: Settings, clients: Clients) -> str:
    """The InfluxDB token: `LUXFLOW_INFLUXDB_TOKEN`, else the secret it names, checked
    strictly (`lighting.secrets`): a null, non-string, empty or short token stops the start
    with one line naming the setting."""
    if settings.influxdb_token:
        return strict_token(
            settings.influxdb_token, "LUXFLOW_INFLUXDB_TOKEN", MIN_INFLUX_TOKEN_CHARS
        )
    if settings.influxdb_token_secret:
        return secret_token(
            clients.secretsmanager,
            settings.influxdb_token_secret,
            "LUXFLOW_INFLUXDB_TOKEN_SECRET",
            MIN_INFLUX_TOKEN_CHARS,
        )
    raise ConfigError(
        "LUXFLOW_QUERY_MODEL=influxdb needs LUXFLOW_INFLUXDB_TOKEN or LUXFLOW_INFLUXDB_TOKEN_SECRET"
    )


def influx_read_token(settings: Settings, clients: Clients) -> str:
    """The token `query` and `serve` read with: `LUXFLOW_INFLUXDB_READ_TOKEN`, else the secret
    `LUXFLOW_INFLUXDB_READ_TOKEN_SECRET` names, else the writer's (`influx_token`), so a
    deployment with one read-write token keeps working. A read-only token here means the read
    side cannot write into the query model even if it is compromised."""
    if settings.influxdb_read_token:
        return strict_token(
            settings.influxdb_read_token, "LUXFLOW_INFLUXDB_READ_TOKEN", MIN_INFLUX_TOKEN_CHARS
        )
    if settings.influxdb_read_token_secret:
        return secret_token(
            clients.secretsmanager,
            settings.influxdb_read_token_secret,
            "LUXFLOW_INFLUXDB_READ_TOKEN_SECRET",
            MIN_INFLUX_TOKEN_CHARS,
        )
    return influx_token(settings, clients)


def influx_client(
    settings: Settings, clients: Clients, token: str | None = None, *, tier: Tier | None = None
) -> InfluxHTTP:
    """The InfluxDB client of the query model (`ConfigError` if it is not configured); with a
    `tier`, the client of that tier's retention policy in the same database."""
    if not settings.influxdb_url:
        raise ConfigError("the InfluxDB query model needs LUXFLOW_INFLUXDB_URL")
    bucket = settings.influxdb_bucket
    if tier is not None:
        bucket = f"{bucket.split('/', 1)[0]}/{SERIES_RPS[tier]}"
    return InfluxHTTP(
        settings.influxdb_url,
        bucket,
        token if token is not None else influx_token(settings, clients),
        timeout_ms=settings.influxdb_timeout_ms,
    )


def series_route(point: Any) -> str:
    """The part of the routed sink a point goes to: its tier's, or `main`."""
    tier = point_tier(point.table, point.measure_name)
    return MAIN if tier is None else tier


def _itself(point: object) -> Iterable[Any]:
    return (point,)


def influx_sink(
    settings: Settings,
    clients: Clients,
    select: Callable[[object], Iterable[Any]],
    backoff: Callable[[], Backoff],
    reject: Reject[Any],
    *,
    superseded: Superseded | None = None,
) -> Sink:
    """The InfluxDB query-model sink of one shard: one `InfluxDBSink` per bucket (the
    configured one, and the two tiers of the series unless the series is off), routed by
    `series_route`. `superseded` (event versions the command model holds newer) filters the
    configured bucket's points; the series is not in the command model and has no versions."""
    token = influx_token(settings, clients)
    limits = batch_limits(settings)
    if not settings.series_interval_ms:
        return InfluxDBSink(
            influx_client(settings, clients, token),
            select,
            backoff(),
            reject=reject,
            limits=limits,
            superseded=superseded,
        )
    tiers: tuple[Tier | None, ...] = (None, SERIES_HOT, SERIES_COLD)
    parts = {
        MAIN if tier is None else tier: InfluxDBSink(
            influx_client(settings, clients, token, tier=tier),
            _itself,
            backoff(),
            reject=reject,
            limits=limits,
            superseded=superseded if tier is None else None,
        )
        for tier in tiers
    }
    return RoutedSink(select, series_route, parts)


def batch_limits(settings: Settings) -> BatchLimits:
    return BatchLimits(settings.influxdb_batch_points, settings.influxdb_batch_bytes)


def ensure_influxdb(client: InfluxHTTP, *, hot_days: int = 0, cold_days: int = 0) -> None:
    """Create the database (InfluxDB 1.8: `CREATE DATABASE`, idempotent) and, with
    `hot_days`/`cold_days`, the series' retention policies (`SERIES_RPS`) with those durations
    (an existing one is altered to them). InfluxDB v2/v3 (Timestream for InfluxDB) refuse these
    over InfluxQL: there the buckets and their DBRP mappings are created out of band, and a
    refusal is logged, not fatal. A refused token is fatal."""
    try:
        client.create_database()
        if hot_days and cold_days:
            ensure_retention_policy(client, SERIES_RPS[SERIES_HOT], hot_days)
            ensure_retention_policy(client, SERIES_RPS[SERIES_COLD], cold_days)
    except InfluxAuthError:
        raise
    except InfluxError as exc:
        log.warning(
            "could not create InfluxDB database %s or its retention policies (%s); create them "
            "out of band",
            client.bucket,
            exc,
        )
