"""The bytes of a shard's table state (msgpack via msgspec): a base, or a delta over it.

Layout: one `_Blob` with a section per table name, each section encoded on its own so it is
decoded with that table's `value_type`. Every entry carries the partition key of the record
that wrote it, which is what lets a split child keep exactly the keys of its hash range.

- A base (`full`) holds every key. A delta holds the keys changed since the previous
  snapshot of the chain: for each, its whole current content (plain: the value; windowed:
  every window it is in), which replaces what the chain had; `deleted` lists keys that are
  gone. A windowed delta also carries the table's event clock. So a delta's size follows the
  keys changed, and applying base, then deltas in order, gives the state of the last one.
- Format 3 changes only windowed deltas: a changed key carries only its windows that changed
  (`updates`: each replaces that one window of the key), the windows gone whole are listed
  once (`dropped`), and a key that lost a window some other way is carried whole, as in
  format 2 (`tables.keys.WindowChanges`). A key reporting every minute into one-minute
  windows with a ten-minute grace holds about eleven open windows and changes one. Format 3
  readers read format 2 (a chain may hold both); format 2 readers refuse 3 (`SNAPSHOT_FORMATS`).
- Windowed sections list their window ranges once (`ranges`: start, end, closed) and entries
  refer to them by index.
- Tables missing from a blob start empty; sections of tables the app no longer has (or whose
  kind changed, plain <-> windowed) are ignored.
- A value is stored as msgspec encodes its `value_type`, or, for a type msgspec does not
  know, as its `snapshot_form()`, read back by the type's `from_snapshot_form(form)`
  (`StoredForm`): how a value kept compact in memory (an `array` of doubles) keeps the stored
  form it had as a msgspec Struct, so snapshots written before and after read the same.
- A value type with `shared_copy()` (`SharedCopy`) has each value read back passed through
  it: a section decodes its own copy of every string, where a running shard shares its ids.

Depends only on the partition types: `tables.shard` calls it, never the other way.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Generic, NamedTuple, Protocol, TypeVar

import msgspec

from core.errors import StateStoreError
from tables.keys import Key, SharedKeys, in_key_order
from tables.partition import WindowedPartition
from tables.plain import PlainPartition

FORMAT_VERSION = 3
"""3: windowed deltas carry the windows that changed. 2: base + deltas, windows as (start,
end) ranges, a changed key with all its windows. Version 1 (one full blob, windows by start)
is not read: replay, or let the shard start from empty state."""
SNAPSHOT_FORMATS: Final = (2, 3)
"""The formats read, and the ones a shard may write: 2 keeps every blob readable by a version
of luxflow that reads only 2 (a rollback to it), at the cost of the larger deltas."""

V = TypeVar("V")


class _Plain(msgspec.Struct, Generic[V], array_like=True):
    entries: list[tuple[str, Key, V]]
    deleted: list[Key]


class _Windowed(msgspec.Struct, Generic[V], array_like=True, omit_defaults=True):
    max_event_ms: int | None
    ranges: list[tuple[int, int, bool]]
    """(start_ms, end_ms, closed) of every window the entries refer to."""
    entries: list[tuple[str, Key, list[tuple[int, V]]]]
    """(partition key, key, [(index in ranges, value)]): in a delta, all of the key's windows."""
    deleted: list[Key]
    updates: list[tuple[str, Key, list[tuple[int, V]]]] = msgspec.field(default_factory=list)
    """Format 3 deltas: like `entries`, each window replacing only that window of the key."""
    dropped: list[tuple[int, int]] = msgspec.field(default_factory=list)
    """Format 3 deltas: (start_ms, end_ms) of windows gone whole, every key's."""


class _Blob(msgspec.Struct, array_like=True):
    version: int
    shard_id: str
    full: bool
    plain: dict[str, msgspec.Raw]
    windowed: dict[str, msgspec.Raw]
    lags: list[tuple[int, int]] = msgspec.field(default_factory=list)
    """The shard's sources' latest lags, (source id, s) least recently seen first
    (`tables.lag.TypicalLag`): every blob carries them all, so the last blob of a chain has
    them. Blobs written before they were kept have none."""
    lag_arrivals: list[int | None] = msgspec.field(default_factory=list)
    """The arrival (ms) of each of `lags`' latest record, in the same order (None: not known
    yet). Blobs written before they were kept have none: their sources count as seen by the
    next record."""


class StoredForm(Protocol):
    """A table value type msgspec does not encode itself: stored as `snapshot_form()`, any
    msgspec-encodable value, and read back by `from_snapshot_form`, which raises `ValueError`
    or `TypeError` for a form it cannot read (the snapshot is then refused as unreadable)."""

    def snapshot_form(self) -> Any: ...

    @classmethod
    def from_snapshot_form(cls, form: Any) -> Any: ...


class SharedCopy(Protocol):
    """A table value type whose values hold strings a running shard shares (ids): a snapshot
    section decodes its own copy of each, so a restore passes every value it reads through
    `shared_copy()`, which returns an equal value holding the shared copies."""

    def shared_copy(self) -> Any: ...


def _to_form(value: Any) -> Any:
    to_form = getattr(value, "snapshot_form", None)
    if to_form is None:
        raise NotImplementedError(f"a table value of type {type(value).__name__} is not storable")
    return to_form()


def _from_form(value_type: type[Any], form: Any) -> Any:
    from_form = getattr(value_type, "from_snapshot_form", None)
    if from_form is None:
        raise NotImplementedError(f"a table value of type {value_type.__name__} is not readable")
    return from_form(form)


_encoder = msgspec.msgpack.Encoder(enc_hook=_to_form)
_blob_decoder = msgspec.msgpack.Decoder(_Blob)
_decoders: dict[tuple[str, type[Any]], msgspec.msgpack.Decoder[Any]] = {}


def _decoder(kind: str, value_type: type[Any]) -> msgspec.msgpack.Decoder[Any]:
    decoder = _decoders.get((kind, value_type))
    if decoder is None:
        struct: Any = _Plain if kind == "plain" else _Windowed
        decoder = _decoders[(kind, value_type)] = msgspec.msgpack.Decoder(
            struct[value_type], dec_hook=_from_form
        )
    return decoder


def _encode_plain(part: PlainPartition, keys: set[Key] | None) -> bytes:
    data, pks = part.data, part.pks
    if keys is None:
        return _encoder.encode(_Plain([(pks.get(k, ""), k, v) for k, v in data.items()], []))
    entries = [(pks.get(k, ""), k, data[k]) for k in keys if k in data]
    return _encoder.encode(_Plain(entries, [k for k in keys if k not in data]))


def _encode_windowed(part: WindowedPartition, keys: set[Key] | None) -> bytes:
    ranges: list[tuple[int, int, bool]] = []
    per_key: dict[Key, list[tuple[int, Any]]] = {}
    for closed, buckets in ((False, part.open), (True, part.closed)):
        for rng in sorted(buckets):
            bucket = buckets[rng]
            index = -1
            for key, value in bucket.items():
                if keys is not None and key not in keys:
                    continue
                if index < 0:
                    index = len(ranges)
                    ranges.append((rng[0], rng[1], closed))
                per_key.setdefault(key, []).append((index, value))
    pks = part.pks
    entries = [(pks.get(key, ""), key, windows) for key, windows in per_key.items()]
    deleted = [] if keys is None else [k for k in keys if k not in per_key]
    return _encoder.encode(_Windowed(part.max_event_ms, ranges, entries, deleted))


def _encode_window_delta(part: WindowedPartition, keys: set[Key]) -> bytes:
    """A format-3 windowed delta of `keys`: of each, its values in the windows changed since
    the last saved snapshot (`part.unsaved_windows`), in the order of range then first write;
    a replaced key with all its windows; the windows gone whole; the keys gone."""
    changes = part.unsaved_windows
    replaced = changes.replaced & keys
    ranges: list[tuple[int, int, bool]] = []
    index_of: dict[tuple[int, int, bool], int] = {}

    def index(rng: tuple[int, int], closed: bool) -> int:
        at = index_of.get((*rng, closed))
        if at is None:
            at = index_of[(*rng, closed)] = len(ranges)
            ranges.append((*rng, closed))
        return at

    whole: dict[Key, list[tuple[int, Any]]] = {key: [] for key in in_key_order(replaced)}
    touched: dict[Key, list[tuple[int, Any]]] = {}
    for closed, buckets in ((False, part.open), (True, part.closed)):
        for rng in sorted(buckets):
            bucket = buckets[rng]
            if rng in changes.touched:
                at = -1
                for key, value in bucket.items():
                    if key in keys and key not in replaced:
                        at = index(rng, closed) if at < 0 else at
                        touched.setdefault(key, []).append((at, value))
            for key, windows in whole.items():
                if key in bucket:
                    windows.append((index(rng, closed), bucket[key]))
    pks = part.pks
    deleted = [k for k in keys if k not in touched and not whole.get(k) and not part.holds(k)]
    return _encoder.encode(
        _Windowed(
            part.max_event_ms,
            ranges,
            [(pks.get(key, ""), key, windows) for key, windows in whole.items() if windows],
            deleted,
            [(pks.get(key, ""), key, windows) for key, windows in touched.items()],
            sorted(changes.dropped),
        )
    )


def encode_state(
    shard_id: str,
    plain: Mapping[str, PlainPartition],
    windowed: Mapping[str, WindowedPartition],
    *,
    changed: Mapping[str, set[Key]] | None,
    lags: Sequence[tuple[int, int, int | None]] = (),
    version: int = FORMAT_VERSION,
) -> bytes:
    """A base of every partition (`changed=None`), or a delta of the keys in `changed`; either
    carries the shard's sources' `lags`. `version` is one of `SNAPSHOT_FORMATS`: a format-3
    delta carries the windows each windowed partition's `unsaved_windows` names."""
    if version not in SNAPSHOT_FORMATS:
        raise ValueError(f"snapshot format {version} is not one of {SNAPSHOT_FORMATS}")
    window_delta = _encode_window_delta if version >= 3 else _encode_windowed
    full = changed is None
    plain_sections = {
        name: msgspec.Raw(_encode_plain(part, None if changed is None else changed[name]))
        for name, part in plain.items()
        if changed is None or name in changed
    }
    windowed_sections = {
        name: msgspec.Raw(
            _encode_windowed(part, None)
            if changed is None
            else window_delta(part, changed.get(name, set()))
        )
        for name, part in windowed.items()
    }
    encoded = _encoder.encode(
        _Blob(
            version,
            shard_id,
            full,
            plain_sections,
            windowed_sections,
            [(source, lag_s) for source, lag_s, _ in lags],
            [arrival_ms for _, _, arrival_ms in lags],
        )
    )
    return compress(encoded)


COMPRESSED: Final = b"\xc1"
"""The first byte of a compressed blob: msgpack never emits 0xc1, so a blob that starts with
it cannot be a plain one (which all snapshots written before compression are)."""
COMPRESS_FROM_BYTES: Final = 1_024
"""Smaller blobs are stored as they are: they fit one DynamoDB write unit anyway."""


def compress(blob: bytes) -> bytes:
    """`blob` deflated behind `COMPRESSED` when that is smaller and the blob is at least
    `COMPRESS_FROM_BYTES`, else as it is. The state store pays per KB written, and a
    snapshot's msgpack repeats ids, window ranges and partition keys: deflate at its fastest
    level takes it to a fraction for a few milliseconds a checkpoint."""
    if len(blob) < COMPRESS_FROM_BYTES:
        return blob
    deflated = COMPRESSED + zlib.compress(blob, 1)
    return deflated if len(deflated) < len(blob) else blob


def decompress(shard_id: str, blob: bytes) -> bytes:
    """The msgpack of a blob written by `compress` (or by an older version, as it is)."""
    if not blob.startswith(COMPRESSED):
        return blob
    try:
        return zlib.decompress(blob[1:])
    except zlib.error as exc:
        raise StateStoreError(f"shard {shard_id}: unreadable state snapshot: {exc}") from exc


class Applied(NamedTuple):
    full: bool
    """The blob was a base."""
    lags: list[tuple[int, int, int | None]]
    """The shard's sources' latest lags it carried, with their arrivals (`TypicalLag.samples`)."""


def apply_blob(
    shard_id: str,
    blob: bytes,
    plain: Mapping[str, PlainPartition],
    windowed: Mapping[str, WindowedPartition],
    value_types: Mapping[str, type[Any]],
) -> Applied:
    """Apply a base or a delta to the partitions (a base first clears them). Raises
    StateStoreError on bytes it cannot read."""
    try:
        decoded = _blob_decoder.decode(decompress(shard_id, blob))
    except msgspec.DecodeError as exc:
        raise StateStoreError(f"shard {shard_id}: unreadable state snapshot: {exc}") from exc
    if decoded.version not in SNAPSHOT_FORMATS:
        raise StateStoreError(
            f"shard {shard_id}: snapshot format {decoded.version}, expected one of "
            f"{', '.join(map(str, SNAPSHOT_FORMATS))}"
        )
    if decoded.full:
        for part in plain.values():
            part.clear()
        for wpart in windowed.values():
            wpart.clear()
    try:
        for name, raw in decoded.plain.items():
            if name not in plain:
                continue
            section: _Plain[Any] = _decoder("plain", value_types[name]).decode(raw)
            part = plain[name]
            share = getattr(value_types[name], "shared_copy", None)  # `SharedCopy`
            for key in section.deleted:
                part.discard(key)
            for pk, key, value in section.entries:
                part.data[key] = value if share is None else share(value)
                part.pks[key] = pk
        for name, raw in decoded.windowed.items():
            if name not in windowed:
                continue
            wsection: _Windowed[Any] = _decoder("windowed", value_types[name]).decode(raw)
            wpart = windowed[name]
            share = getattr(value_types[name], "shared_copy", None)  # `SharedCopy`
            if wsection.max_event_ms is not None:
                wpart.max_event_ms = wsection.max_event_ms
            for key in wsection.deleted:
                wpart.remove_key(key)
            for start, end in wsection.dropped:
                wpart.drop_window((start, end))
            ranges = wsection.ranges
            for pk, key, windows in wsection.entries:
                if not decoded.full:
                    wpart.remove_key(key)
                for index, value in windows:
                    start, end, closed = ranges[index]
                    target = wpart.closed if closed else wpart.open
                    target.setdefault((start, end), {})[key] = (
                        value if share is None else share(value)
                    )
                wpart.pks[key] = pk
            for pk, key, windows in wsection.updates:
                for index, value in windows:
                    start, end, closed = ranges[index]
                    wpart.put_window(
                        (start, end), key, value if share is None else share(value), closed=closed
                    )
                wpart.pks[key] = pk
    except (msgspec.DecodeError, IndexError) as exc:
        raise StateStoreError(f"shard {shard_id}: bad table section: {exc}") from exc
    # A blob written before arrivals were kept has none: None for each of its lags.
    arrivals: list[int | None] = list(decoded.lag_arrivals[: len(decoded.lags)])
    arrivals += [None] * (len(decoded.lags) - len(arrivals))
    return Applied(
        decoded.full,
        [
            (source, lag_s, arrival_ms)
            for (source, lag_s), arrival_ms in zip(decoded.lags, arrivals, strict=True)
        ],
    )


def merge_into(
    *,
    plain: Mapping[str, PlainPartition],
    windowed: Mapping[str, WindowedPartition],
    into_plain: Mapping[str, PlainPartition],
    into_windowed: Mapping[str, WindowedPartition],
    keep: Callable[[str], bool],
    intern: Callable[[str], str],
) -> None:
    """Add the entries whose partition key passes `keep` to the `into_*` partitions; the
    event clock becomes the later of the two. Keys equal across tables become one object:
    each table's section decodes its own copy of a key, where a running shard's tables share
    the one its records carried."""
    same: dict[Key, Key] = {}
    one_key = same.setdefault
    for name, part in plain.items():
        target = into_plain[name]
        for read, value in part.data.items():
            pk = part.pks.get(read, "")
            if keep(pk):
                key = one_key(read, read)
                target.data[key] = value
                target.pks[key] = intern(pk)
    for name, wpart in windowed.items():
        wtarget = into_windowed[name]
        if wpart.max_event_ms is not None and (
            wtarget.max_event_ms is None or wpart.max_event_ms > wtarget.max_event_ms
        ):
            wtarget.max_event_ms = wpart.max_event_ms
        for buckets, target_buckets in (
            (wpart.open, wtarget.open),
            (wpart.closed, wtarget.closed),
        ):
            for rng in sorted(buckets):
                for read, value in buckets[rng].items():
                    pk = wpart.pks.get(read, "")
                    if keep(pk):
                        key = one_key(read, read)
                        target_buckets.setdefault(rng, {})[key] = value
                        wtarget.pks[key] = intern(pk)


def add_chain(
    shard_id: str,
    chain: Sequence[bytes],
    into_plain: Mapping[str, PlainPartition],
    into_windowed: Mapping[str, WindowedPartition],
    value_types: Mapping[str, type[Any]],
    *,
    keep: Callable[[str], bool],
    intern: Callable[[str], str],
) -> list[tuple[int, int, int | None]]:
    """Rebuild one shard's stored snapshot (`chain`: a base, then its deltas in order) on its
    own, then add its entries whose partition key passes `keep` to the `into_*` partitions
    (`merge_into`): a deletion in one chain never touches another chain's keys. Returns the
    shard's sources' latest lags, as its last snapshot kept them."""
    windowed_keys = SharedKeys()
    plain = {name: PlainPartition() for name in into_plain}
    windowed = {name: WindowedPartition(windowed_keys) for name in into_windowed}
    lags: list[tuple[int, int, int | None]] = []
    for index, blob in enumerate(chain):
        full, lags = apply_blob(shard_id, blob, plain, windowed, value_types)
        if full != (index == 0):
            raise StateStoreError(
                f"shard {shard_id}: snapshot {index} of a chain is "
                f"{'a base' if full else 'a delta'}; a chain is one base, then deltas"
            )
    memo: dict[str, bool] = {}

    def keep_pk(pk: str) -> bool:
        kept = memo.get(pk)
        if kept is None:
            kept = memo[pk] = keep(pk)
        return kept

    merge_into(
        plain=plain,
        windowed=windowed,
        into_plain=into_plain,
        into_windowed=into_windowed,
        keep=keep_pk,
        intern=intern,
    )
    return lags
