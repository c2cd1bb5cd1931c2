"""KPL de-aggregation: round trip against an encoder written here, and the KCL's fallbacks."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from streams.kinesis.kpl import MAGIC, deaggregate


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def encode(records: list[tuple[str, bytes]], *, with_ehk: bool = False) -> bytes:
    """A KPL aggregate as the KPL writes it (partition key table, records, tags skipped)."""
    keys = sorted({pk for pk, _ in records})
    body = b"".join(field(1, k.encode()) for k in keys)
    if with_ehk:
        body += field(2, b"340282366920938463463374607431768211455")
    for pk, data in records:
        inner = varint(1 << 3) + varint(keys.index(pk))
        if with_ehk:
            inner += varint(2 << 3) + varint(0)
        inner += field(3, data) + field(4, field(1, b"tag") + field(2, b"v"))
        body += field(3, inner)
    return MAGIC + body + hashlib.md5(body).digest()


user_records = st.lists(
    st.tuples(st.text(min_size=1, max_size=20), st.binary(max_size=300)), min_size=1, max_size=30
)


@given(user_records, st.booleans())
def test_round_trip(records: list[tuple[str, bytes]], with_ehk: bool) -> None:
    assert deaggregate(encode(records, with_ehk=with_ehk)) == records


@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_never_an_error(data: bytes) -> None:
    result = deaggregate(data)
    assert result is None or isinstance(result, list)
    # With the magic in front but no valid MD5, it is a plain record.
    assert deaggregate(MAGIC + data + b"\0" * 16) in (None, [])


def test_a_wrong_md5_makes_it_a_plain_record() -> None:
    data = bytearray(encode([("pk", b"x")]))
    data[-1] ^= 1
    assert deaggregate(bytes(data)) is None


def test_without_the_magic_it_is_a_plain_record() -> None:
    assert deaggregate(b'{"asset_id":"a"}') is None


def test_a_truncated_body_with_a_matching_md5_is_a_plain_record() -> None:
    body = field(1, b"pk") + field(3, varint(1 << 3) + varint(0))[:-1]
    assert deaggregate(MAGIC + body + hashlib.md5(body).digest()) is None


def test_an_aggregate_of_no_user_records_is_a_plain_record_not_nothing() -> None:
    # Zero user records would make the Kinesis record vanish: no dead letter, no count. As a
    # plain record its bytes reach the decoder and are dead-lettered with a reason.
    assert deaggregate(encode([])) is None


@given(st.sampled_from(["", "k" * 257, "é" * 300, "k" * 100_000]), st.binary(max_size=50))
def test_a_partition_key_kinesis_would_refuse_makes_it_a_plain_record(
    partition_key: str, data: bytes
) -> None:
    # Kinesis (and the KPL) take 1 to 256 characters. A longer key is not from a KPL: as a
    # record's partition key it would be kept with every table key the record writes.
    assert deaggregate(encode([("pk", b"ok"), (partition_key, data)])) is None


def test_partition_keys_of_1_and_256_characters_are_kept() -> None:
    records = [("k", b"a"), ("é" * 256, b"b")]
    assert deaggregate(encode(records)) == records
