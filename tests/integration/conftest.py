"""Integration-test hygiene: the session's moto server is shared by every module, and its
`/moto-api/data.json` (how the tests read back Timestream records) serializes its whole state.
So each module, when it ends, deletes the Kinesis streams and Timestream databases it left in
that server. DynamoDB tables stay: session fixtures (the InfluxDB run) still read theirs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError


@pytest.fixture(autouse=True, scope="module")
def _forget_streams_and_timestream(aws: Callable[[str], Any]) -> Iterator[None]:
    yield
    kinesis, timestream = aws("kinesis"), aws("timestream-write")
    with contextlib.suppress(ClientError, BotoCoreError):
        for name in kinesis.list_streams().get("StreamNames", []):
            with contextlib.suppress(ClientError, BotoCoreError):
                kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
    with contextlib.suppress(ClientError, BotoCoreError):
        for database in timestream.list_databases().get("Databases", []):
            name = database["DatabaseName"]
            with contextlib.suppress(ClientError, BotoCoreError):
                for table in timestream.list_tables(DatabaseName=name).get("Tables", []):
                    timestream.delete_table(DatabaseName=name, TableName=table["TableName"])
                timestream.delete_database(DatabaseName=name)
