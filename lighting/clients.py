"""The AWS clients of one process, built from the settings on first use."""

from __future__ import annotations

import threading
from typing import Any

from lighting.settings import Settings

# The services the light client speaks (`lighting.aws`), by botocore service name.
_LIGHT_SERVICES = ("dynamodb", "timestream-write", "secretsmanager")


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
    s3transfer.

    `light=True` (the KCL shard processor, one process per leased shard): DynamoDB,
    Timestream and Secrets Manager are `lighting.aws` clients, the same methods, responses
    and exceptions without botocore's client machinery and service models (about 30 MB
    resident less a process); botocore is imported only if another service is asked for."""

    def __init__(self, settings: Settings, *, light: bool = False) -> None:
        self._settings = settings
        self._light = light
        self._lock = threading.Lock()
        self._made: dict[str, Any] = {}
        self._botocore: tuple[Any, Any] | None = None
        self._aws: tuple[Any, Any] | None = None

    def _client(self, service: str, endpoint_url: str) -> Any:
        with self._lock:
            client = self._made.get(service)
            if client is None:
                if self._light and service in _LIGHT_SERVICES:
                    client = self._light_client(service, endpoint_url)
                else:
                    client = self._botocore_client(service, endpoint_url)
                self._made[service] = client
            return client

    def _botocore_client(self, service: str, endpoint_url: str) -> Any:
        if self._botocore is None:
            import botocore.session
            from botocore.config import Config

            config = Config(
                retries={"total_max_attempts": 1},
                max_pool_connections=64,
                connect_timeout=5,
                read_timeout=30,
            )
            self._botocore = (botocore.session.get_session(), config)
        session, config = self._botocore
        kwargs: dict[str, Any] = {"region_name": self._settings.region, "config": config}
        if endpoint_url:
            kwargs["endpoint_url"] = endpoint_url
        return session.create_client(service, **kwargs)

    def _light_client(self, service: str, endpoint_url: str) -> Any:
        from lighting.aws import jsonclient

        if self._aws is None:
            from lighting.aws.credentials import default_credentials
            from lighting.aws.http import ConnectionPool

            # The same limits as the botocore clients' Config.
            pool = ConnectionPool(connect_timeout_s=5, read_timeout_s=30, max_idle=64)
            self._aws = (default_credentials(), pool)
        credentials, pool = self._aws
        spec = {
            "dynamodb": jsonclient.DYNAMODB,
            "timestream-write": jsonclient.TIMESTREAM_WRITE,
            "secretsmanager": jsonclient.SECRETS_MANAGER,
        }[service]
        return jsonclient.JsonClient(
            spec,
            region=self._settings.region,
            credentials=credentials,
            pool=pool,
            endpoint_url=endpoint_url or None,
        )

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
        copy = Clients(self._settings, light=self._light)
        with self._lock:
            copy._made = {**self._made, "dynamodb": client}
            copy._botocore, copy._aws = self._botocore, self._aws
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
