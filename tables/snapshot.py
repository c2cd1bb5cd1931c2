"""The bytes of a shard's table state (msgpack via msgspec), and loading them back.

Layout: one `_Blob` with a section per table name, each section encoded on its own so it is
decoded with that table's `value_type`. Every entry carries the partition key of the record
that wrote it: `(partition_key, key, value)`, which is what lets a split child keep exactly
the keys of its hash range. Tables missing from a blob start empty; sections of tables the
app no longer has (or whose kind changed, plain <-> windowed) are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec

from core.errors import StateStoreError

if TYPE_CHECKING:
    from tables.shard import ShardState, WindowedPartition

Key = str | int | tuple[str | int, ...]
"""A table key: a str, an int, or a tuple of str/int."""

FORMAT_VERSION = 1

V = TypeVar("V")


class _Plain(msgspec.Struct, Generic[V], array_like=True):
    entries: list[tuple[str, Key, V]]


class _Bucket(msgspec.Struct, Generic[V], array_like=True):
    start_ms: int
    entries: list[tuple[str, Key, V]]


class _Windowed(msgspec.Struct, Generic[V], array_like=True):
    max_event_ms: int | None
    open: list[_Bucket[V]]
    closed: list[_Bucket[V]]


class _Blob(msgspec.Struct, array_like=True):
    version: int
    shard_id: str
    plain: dict[str, msgspec.Raw]
    windowed: dict[str, msgspec.Raw]


_encoder = msgspec.msgpack.Encoder()
_blob_decoder = msgspec.msgpack.Decoder(_Blob)
_decoders: dict[tuple[str, type[Any]], msgspec.msgpack.Decoder[Any]] = {}


def _decoder(kind: str, value_type: type[Any]) -> msgspec.msgpack.Decoder[Any]:
    decoder = _decoders.get((kind, value_type))
    if decoder is None:
        struct: Any = _Plain if kind == "plain" else _Windowed
        decoder = _decoders[(kind, value_type)] = msgspec.msgpack.Decoder(struct[value_type])
    return decoder


def _buckets(part_buckets: dict[int, dict[Key, Any]], pks: dict[Key, str]) -> list[_Bucket[Any]]:
    return [
        _Bucket(start, [(pks.get(key, ""), key, value) for key, value in bucket.items()])
        for start, bucket in sorted(part_buckets.items())
    ]


def _encode_windowed(part: WindowedPartition) -> bytes:
    return _encoder.encode(
        _Windowed(part.max_event_ms, _buckets(part.open, part.pks), _buckets(part.closed, part.pks))
    )


def encode_state(state: ShardState) -> bytes:
    """All table partitions of `state` as one blob."""
    plain = {
        table.name: msgspec.Raw(
            _encoder.encode(_Plain([(part.pks.get(k, ""), k, v) for k, v in part.data.items()]))
        )
        for table, part in state.plain.items()
    }
    windowed = {
        table.name: msgspec.Raw(_encode_windowed(part)) for table, part in state.windowed.items()
    }
    return _encoder.encode(_Blob(FORMAT_VERSION, state.shard_id, plain, windowed))


def decode_into(state: ShardState, blob: bytes, keep: Callable[[str], bool]) -> None:
    """Add the entries of `blob` whose partition key passes `keep` to `state`'s partitions."""
    try:
        decoded = _blob_decoder.decode(blob)
    except msgspec.DecodeError as exc:
        raise StateStoreError(f"shard {state.shard_id}: unreadable state snapshot: {exc}") from exc
    if decoded.version != FORMAT_VERSION:
        raise StateStoreError(
            f"shard {state.shard_id}: snapshot format {decoded.version}, expected {FORMAT_VERSION}"
        )
    try:
        for name, raw in decoded.plain.items():
            table = state.tables.get(name)
            if table is None or table not in state.plain:
                continue
            section: _Plain[Any] = _decoder("plain", table.value_type).decode(raw)
            part = state.plain[table]
            for pk, key, value in section.entries:
                if keep(pk):
                    part.data[key] = value
                    part.pks[key] = state.intern_pk(pk)
        for name, raw in decoded.windowed.items():
            table = state.tables.get(name)
            if table is None or table not in state.windowed:
                continue
            wsection: _Windowed[Any] = _decoder("windowed", table.value_type).decode(raw)
            wpart = state.windowed[table]
            if wsection.max_event_ms is not None and (
                wpart.max_event_ms is None or wsection.max_event_ms > wpart.max_event_ms
            ):
                wpart.max_event_ms = wsection.max_event_ms
            for buckets, target in ((wsection.open, wpart.open), (wsection.closed, wpart.closed)):
                for bucket in buckets:
                    for pk, key, value in bucket.entries:
                        if keep(pk):
                            target.setdefault(bucket.start_ms, {})[key] = value
                            wpart.pks[key] = state.intern_pk(pk)
    except msgspec.DecodeError as exc:
        raise StateStoreError(f"shard {state.shard_id}: bad table section: {exc}") from exc
