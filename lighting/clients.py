"""The boto3 clients of one process, built from the settings."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from lighting.settings import Settings


class Clients:
    """boto3 clients for one process, built from the settings. Thread-safe to share.

    botocore's own retries are off: luxflow's `Backoff` retries exactly what failed
    (whole calls, or only the unprocessed part of a batch), with capped exponential backoff
    and full jitter."""

    def __init__(self, settings: Settings) -> None:
        config = Config(
            retries={"total_max_attempts": 1},
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
        # The InfluxDB and read-API tokens may live in Secrets Manager (issue 14).
        self.secretsmanager: Any = session.client("secretsmanager", **kwargs)
