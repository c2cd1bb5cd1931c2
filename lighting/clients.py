"""The AWS clients of one process, built from the settings on first use."""

from __future__ import annotations

import threading
from typing import Any

import botocore.session
from botocore.config import Config

from lighting.settings import Settings


class Clients:
    """botocore clients for one process, built from the settings. Thread-safe to share; each
    is made on first use (under a lock: a botocore session is not safe to create clients from
    in several threads at once), so a process that never reads Kinesis (the KCL processor)
    never loads Kinesis' service model (a few MB of resident memory each). Assigning a
    client (`clients.dynamodb = wrapper`) replaces it: tests wrap real clients to inject
    faults.

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
        self._lock = threading.Lock()
        self._made: dict[str, Any] = {}

    def _client(self, service: str, endpoint_url: str) -> Any:
        with self._lock:
            client = self._made.get(service)
            if client is None:
                kwargs: dict[str, Any] = {
                    "region_name": self._settings.region,
                    "config": self._config,
                }
                if endpoint_url:
                    kwargs["endpoint_url"] = endpoint_url
                client = self._made[service] = self._session.create_client(service, **kwargs)
            return client

    @property
    def s3(self) -> Any:
        """Read by a replay from the raw-record archive only."""
        return self._client("s3", self._settings.endpoint_url)

    @property
    def kinesis(self) -> Any:
        settings = self._settings
        return self._client("kinesis", settings.kinesis_endpoint_url or settings.endpoint_url)

    @kinesis.setter
    def kinesis(self, client: Any) -> None:
        with self._lock:
            self._made["kinesis"] = client

    @property
    def dynamodb(self) -> Any:
        return self._client("dynamodb", self._settings.endpoint_url)

    @dynamodb.setter
    def dynamodb(self, client: Any) -> None:
        with self._lock:
            self._made["dynamodb"] = client

    def with_dynamodb(self, client: Any) -> Clients:
        """A copy that uses `client` for DynamoDB and shares every other client made so far."""
        copy = Clients(self._settings)
        with self._lock:
            copy._made = {**self._made, "dynamodb": client}
        return copy

    @property
    def timestream(self) -> Any:
        return self._client("timestream-write", self._settings.endpoint_url)

    @timestream.setter
    def timestream(self, client: Any) -> None:
        with self._lock:
            self._made["timestream-write"] = client

    @property
    def secretsmanager(self) -> Any:
        """For the InfluxDB and read-API tokens kept in Secrets Manager."""
        return self._client("secretsmanager", self._settings.endpoint_url)

    @secretsmanager.setter
    def secretsmanager(self, client: Any) -> None:
        with self._lock:
            self._made["secretsmanager"] = client
