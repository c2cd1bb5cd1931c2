"""The InfluxDB query model of this deployment: its client, token and database.

The worker writes with `influxdb_token`, else the Secrets Manager secret
`influxdb_token_secret` (its SecretString is the token, or JSON with a `token` field); `query`
and `serve` read with `influxdb_read_token` / `influxdb_read_token_secret`, falling back to the
writer's. Each is read once when the client is built and parsed strictly (`lighting.secrets`).
"""

from __future__ import annotations

import logging

from core.errors import ConfigError
from lighting.clients import Clients
from lighting.secrets import MIN_INFLUX_TOKEN_CHARS, secret_token, strict_token
from lighting.settings import Settings
from sinks.influxdb import BatchLimits
from sinks.influxhttp import InfluxAuthError, InfluxError, InfluxHTTP

log = logging.getLogger(__name__)


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


def influx_client(settings: Settings, clients: Clients, token: str | None = None) -> InfluxHTTP:
    """The InfluxDB client of the query model (`ConfigError` if it is not configured)."""
    if not settings.influxdb_url:
        raise ConfigError("the InfluxDB query model needs LUXFLOW_INFLUXDB_URL")
    return InfluxHTTP(
        settings.influxdb_url,
        settings.influxdb_bucket,
        token if token is not None else influx_token(settings, clients),
        timeout_ms=settings.influxdb_timeout_ms,
    )


def batch_limits(settings: Settings) -> BatchLimits:
    return BatchLimits(settings.influxdb_batch_points, settings.influxdb_batch_bytes)


def ensure_influxdb(client: InfluxHTTP) -> None:
    """Create the database (InfluxDB 1.8: `CREATE DATABASE`, idempotent). InfluxDB v2/v3
    (Timestream for InfluxDB) refuse it over InfluxQL: there the bucket is created with the
    instance (CDK), and a refusal is logged, not fatal. A refused token is fatal."""
    try:
        client.create_database()
    except InfluxAuthError:
        raise
    except InfluxError as exc:
        log.warning(
            "could not create InfluxDB database %s (%s); create it out of band", client.bucket, exc
        )
