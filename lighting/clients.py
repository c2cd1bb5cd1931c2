"""The AWS clients of one process, built from the settings on first use."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import botocore.session
from botocore.config import Config

from lighting.settings import Settings


class Clients:
    """botocore clients for one process, built from the settings. Thread-safe to share once
    built; each is made on first use, so a process that never reads Kinesis (the KCL
    processor) never loads Kinesis' service model (a few MB of resident memory each).

    botocore's own retries are off: luxflow's `Backoff` retries exactly what failed
    (whole calls, or only the unprocessed part of a batch), with capped exponential backoff
    and full jitter. botocore directly, not boto3: boto3 adds nothing used here but imports
    s3transfer."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._session = botocore.session.get_session()
        self._config = Config(
            retries={"total_max_attempts": 1},
            max_pool_connections=64,
            connect_timeout=5,
            read_timeout=30,
        )

    def _client(self, service: str, endpoint_url: str) -> Any:
        kwargs: dict[str, Any] = {"region_name": self._settings.region, "config": self._config}
        if endpoint_url:
            kwargs["endpoint_url"] = endpoint_url
        return self._session.create_client(service, **kwargs)

    @cached_property
    def kinesis(self) -> Any:
        settings = self._settings
        return self._client("kinesis", settings.kinesis_endpoint_url or settings.endpoint_url)

    @cached_property
    def dynamodb(self) -> Any:
        return self._client("dynamodb", self._settings.endpoint_url)

    @cached_property
    def timestream(self) -> Any:
        return self._client("timestream-write", self._settings.endpoint_url)
