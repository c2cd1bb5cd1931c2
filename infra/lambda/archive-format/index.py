"""Firehose data transformation of the raw-record archive: one JSON line per Kinesis record.

Firehose hands each record of the source stream to this function with `kinesisRecordMetadata`
(shard id, sequence and sub-sequence number, partition key, arrival time); the archive keeps
them, because a replay needs them: the arrival time (what "--from TIME" means), the shard and
the sequence number (each shard's records in their order: the shard's event clock is shared by
every site on it), the partition key (the state's keys after a reshard). The payload stays as
it arrived, base64-encoded, so no byte of it is interpreted here.

    {"v":1,"shard":"shardId-000000000001","seq":"4962...","sub":0,"pk":"site-1",
     "arrival_ms":1764770400123,"data":"<base64 of the original bytes>"}

The format's reference is luxflow's `streams/kinesis/archive.py` (a unit test runs this file
and decodes its output with it). Standard library only: no layer, no package to deploy.

Cost (eu-west-1, 2026 list prices, 1 KB records): Lambda arm64 128 MB, Firehose invokes it
with up to 3 MB / 1 minute buffers of about 3,000 records, ~60 ms each: $0.0000000017 per ms
x 60 ms + $0.20/M requests / 3,000 = about $0.04 per million records; Firehose's data
transformation is not charged separately for a Kinesis source (the GB ingested is). The
output is about 1.4x the input before GZIP (base64 and metadata), about 1.1x after it.
"""

import base64
import json
from typing import Any

FORMAT_VERSION = 1


def archive_line(metadata: dict[str, Any], data_b64: str) -> str:
    """The archive line of one record: `metadata` is Firehose's kinesisRecordMetadata,
    `data_b64` the record's data as Firehose passes it (base64)."""
    line = {
        "v": FORMAT_VERSION,
        "shard": metadata["shardId"],
        "seq": str(metadata["sequenceNumber"]),
        "sub": int(metadata.get("subsequenceNumber") or 0),
        "pk": metadata["partitionKey"],
        "arrival_ms": int(metadata["approximateArrivalTimestamp"]),
        "data": data_b64,
    }
    return json.dumps(line, separators=(",", ":"), sort_keys=True) + "\n"


def handler(event: dict[str, Any], _context: object = None) -> dict[str, Any]:
    """Every record becomes Ok with its archive line. A record without Kinesis metadata (a
    source that is not a Kinesis stream) is ProcessingFailed: Firehose writes it under the
    error prefix, whole, rather than archive a record that cannot be replayed in order."""
    out = []
    for record in event["records"]:
        metadata = record.get("kinesisRecordMetadata")
        if not metadata:
            failed = {"recordId": record["recordId"], "result": "ProcessingFailed"}
            out.append({**failed, "data": record["data"]})
            continue
        line = archive_line(metadata, record["data"])
        out.append(
            {
                "recordId": record["recordId"],
                "result": "Ok",
                "data": base64.b64encode(line.encode("utf-8")).decode("ascii"),
            }
        )
    return {"records": out}
