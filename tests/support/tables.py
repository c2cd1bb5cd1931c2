"""A plain DynamoDB table for tests that need somewhere to write: string ``pk`` + ``sk``,
on demand, created on a real (emulated) server."""

from __future__ import annotations

from typing import Any


def create_pk_sk_table(client: Any, name: str) -> None:
    """Create table ``name`` (hash ``pk``, range ``sk``, both strings, on demand) unless it
    exists already."""
    if name in client.list_tables()["TableNames"]:
        return
    client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
