"""Reading back what a TimestreamSink stored in moto, the way the real service would keep it.

moto 5.x keeps each WriteRecords record exactly as sent: it drops `CommonAttributes` (so
hoisted dimensions vanish) and appends duplicates where Timestream upserts. Wrap the real
client in `InlineCommonAttributes` so stored records are complete, then use
`latest_by_identity` to get Timestream's view: one record per (table, dimensions, measure
name, time), the highest version winning.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

Identity = tuple[str, tuple[tuple[str, str], ...], str, str]


class InlineCommonAttributes:
    """Wraps a real timestream-write client; copies CommonAttributes into every record."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def write_records(self, **kwargs: Any) -> Any:
        common = kwargs.pop("CommonAttributes", {})
        records = [{**common, **record} for record in kwargs["Records"]]
        return self._client.write_records(**{**kwargs, "Records": records})


def stored_records(endpoint: str, database: str, table: str) -> list[dict[str, Any]]:
    """Every record moto holds for one table, as sent (duplicates included). moto serializes
    its whole state for this, which grows over a test session: hence the long timeout."""
    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=180) as response:
        data = json.load(response)
    tables = [
        t
        for t in data["timestreamwrite"]["TimestreamTable"]
        if t["db_name"] == database and t["name"] == table
    ]
    if len(tables) != 1:
        raise AssertionError(f"expected one table {database}.{table} in moto, found {len(tables)}")
    records: list[dict[str, Any]] = tables[0]["records"]
    return records


def identity(table: str, record: dict[str, Any]) -> Identity:
    dimensions = tuple(sorted((d["Name"], d["Value"]) for d in record.get("Dimensions", [])))
    return (table, dimensions, record.get("MeasureName", ""), record["Time"])


def latest_by_identity(table: str, records: list[dict[str, Any]]) -> dict[Identity, dict[str, Any]]:
    """Timestream's upsert semantics over moto's append-only list: highest version wins."""
    latest: dict[Identity, dict[str, Any]] = {}
    for record in records:
        key = identity(table, record)
        held = latest.get(key)
        if held is None or record.get("Version", 1) >= held.get("Version", 1):
            latest[key] = record
    return latest


class TimestreamVersions:
    """Wraps a real timestream-write client (moto) with the service's version rule, which moto
    does not enforce, and inlines CommonAttributes (which moto drops).

    Timestream keeps one record per (table, dimensions, measure name, time). A record with
    equal measure values is accepted (idempotent); one with different values replaces the
    stored record only with a higher `Version`, else the call raises
    `RejectedRecordsException` naming it with the stored record's `ExistingVersion`, and the
    other records of the call are stored (sent on to moto)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._stored: dict[tuple[str, Identity], tuple[int, Any]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def write_records(self, **kwargs: Any) -> Any:
        from tests.support.faulty import client_error

        common = kwargs.pop("CommonAttributes", {})
        table = kwargs["TableName"]
        accepted: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        for index, record in enumerate({**common, **r} for r in kwargs["Records"]):
            key = (kwargs["DatabaseName"], identity(table, record))
            version, values = int(record.get("Version", 1)), record["MeasureValues"]
            held = self._stored.get(key)
            if held is not None and held[1] != values and version <= held[0]:
                rejected.append(
                    {
                        "RecordIndex": index,
                        "Reason": "A record with a higher or equal version exists",
                        "ExistingVersion": held[0],
                    }
                )
                continue
            accepted.append(record)
            if held is None or version > held[0]:
                self._stored[key] = (version, values)
        response: Any = {}
        if accepted:
            response = self._client.write_records(**{**kwargs, "Records": accepted})
        if rejected:
            raise client_error(
                "write_records",
                "RejectedRecordsException",
                "One or more records have been rejected.",
                RejectedRecords=rejected,
            )
        return response
