"""Progress of a long read (a replay): per shard, records read, rate and an estimate of the time
left, from what the runner already knows (records counted, the last `MillisBehindLatest`).

The estimate: between two samples a shard read `records` and its distance to the tip went from
`behind_a` to `behind_b` ms; it catches up at `(behind_a - behind_b) / elapsed` ms per ms, so
the tip is `behind_b / that` away. A shard that did not gain on the tip has no estimate
("?"); one at the tip has none left ("0s"). Pure: the caller samples and prints.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ShardSample:
    records: int
    millis_behind: int | None


@dataclass(frozen=True)
class ShardRate:
    shard_id: str
    records: int
    records_per_s: float
    millis_behind: int | None
    left_s: float | None
    """None: not known (no gain on the tip, or no `MillisBehindLatest` yet)."""


def rates(
    before: dict[str, ShardSample], after: dict[str, ShardSample], elapsed_s: float
) -> list[ShardRate]:
    """Per shard of `after`, in shard order: its rate and time left since `before`."""
    out = []
    for shard_id in sorted(after):
        now = after[shard_id]
        then = before.get(shard_id, ShardSample(0, None))
        per_s = (now.records - then.records) / elapsed_s if elapsed_s > 0 else 0.0
        left: float | None = None
        if now.millis_behind == 0:
            left = 0.0
        elif now.millis_behind is not None and then.millis_behind is not None and elapsed_s > 0:
            gained_ms = then.millis_behind - now.millis_behind
            if gained_ms > 0:
                left = now.millis_behind / (gained_ms / elapsed_s)
        out.append(ShardRate(shard_id, now.records, per_s, now.millis_behind, left))
    return out


def duration(seconds: float | None) -> str:
    """`?`, `45s`, `12m05s`, `3h02m`: short and fixed in form."""
    if seconds is None:
        return "?"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def progress_line(rate: ShardRate) -> str:
    behind = "?" if rate.millis_behind is None else duration(rate.millis_behind / 1000)
    return (
        f"{rate.shard_id}: {rate.records:,} records read, {rate.records_per_s:,.0f} records/s, "
        f"{behind} behind the tip, about {duration(rate.left_s)} left"
    )
