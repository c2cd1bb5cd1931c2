"""When the current-state item of an asset is worth writing.

Operators read the current state for what they act on: on or off, the dim level, a fault
code, and the power as far as it tells them something. A reading that changes none of these
beyond the deadband is not written; the item is refreshed at least every `refresh_ms` of event
time so it never looks stale. `refresh_ms=0` writes every reading's state.

The refresh keeps a per-asset phase: the asset's phase instants are `phase + k * refresh_ms`,
its phase a stable hash of its id (crc32, the same in every process and run; Python's `hash`
of a str is salted per process). After the asset's first write and after a refresh, the next
refresh falls due at the first phase instant after it; after a change (an operator-visible
field, or power beyond the deadband), a full `refresh_ms` later, as a change already told the
operator the asset is alive. Counted from the last write alone, a fleet whose states were
first written together (a new fleet, a replay, a restart from scratch) would refresh together
every period, for ever: one conditional put per asset in one burst, in front of whatever
alarm the shard has next. With the phase, that fleet's first refreshes are spread over the
following period and stay spread; a fleet-wide change (a schedule switching a building)
refreshes together once, a period later, and then at its phases. The refresh is due at most
`refresh_ms` after any write. The price: the refresh after a refresh that followed a change
comes early (at the phase, less than a period later), one extra put at most per change
followed by a quiet period; a drifting asset writes once a period, as before.
The memory is the asset's rule state (`AssetRuleState.written`), which the shard snapshots
with everything else the rules remember: a shard restored from a snapshot and fed the records
after it makes the same decisions, in the same order, as a run that never stopped, so both
store the same current-state items. Pure: decisions depend on event time only.

What a failover re-processes at the defaults (60 s checkpoint, 15 min refresh): the records a
shard read after its last checkpoint, at most a checkpoint interval of input and one batch.
The new owner restores the snapshot of that checkpoint, whose rule state holds each asset's
last written state, and re-applies those records: it writes again exactly the states and
alarms the lost owner may already have written, with the same keys and values (the state's
put is newer-than on `ts_ms`), and nothing a straight run would not have written.
"""

from __future__ import annotations

import zlib

import msgspec

from domain.events import AssetState
from domain.rules.limits import AssetRuleState, WrittenState


class Deadband(msgspec.Struct, frozen=True):
    """`min_w` and `fraction`: power moves less than `max(min_w, fraction * written power)`
    count as drift. `refresh_ms`: the longest a written state stands (event time), refreshed
    at each asset's own phase (`refresh_due_ms`); 0 writes every state."""

    min_w: float = 2.0
    fraction: float = 0.05
    refresh_ms: int = 900_000


DEFAULT_DEADBAND = Deadband()
"""The deadband at its settings' defaults (`lighting.settings` says why these)."""


def written_of(state: AssetState, *, phased: bool = True) -> WrittenState:
    """What the deadband remembers of a written state; `phased`: its refresh falls due at the
    asset's phase (a first write or a refresh), else a full period after it (a change)."""
    return WrittenState(
        state.ts_ms, state.power_w, state.on, state.dim_level, state.fault_code, phased
    )


FIRST = "first"
CHANGE = "change"
REFRESH = "refresh"


def write_reason(written: WrittenState | None, new: AssetState, band: Deadband) -> str | None:
    """Why `new` should replace `written` (the state last written for this asset), or None:
    `FIRST` (nothing written yet), `CHANGE` (an operator-visible change: on/off, dim level,
    fault code, or power outside the deadband) or `REFRESH` (its refresh is due,
    `refresh_due_ms`). A state at or before `written` never is."""
    if written is None:
        return FIRST
    if new.ts_ms <= written.ts_ms:
        return None
    if (new.on, new.dim_level, new.fault_code) != (
        written.on,
        written.dim_level,
        written.fault_code,
    ):
        return CHANGE
    if abs(new.power_w - written.power_w) > max(band.min_w, band.fraction * written.power_w):
        return CHANGE
    if band.refresh_ms <= 0:
        return REFRESH
    if written.phased:
        due_ms = refresh_due_ms(written.ts_ms, new.asset_id, band.refresh_ms)
    else:
        due_ms = written.ts_ms + band.refresh_ms
    return REFRESH if new.ts_ms >= due_ms else None


def worth_writing(written: WrittenState | None, new: AssetState, band: Deadband) -> bool:
    """True when `new` should replace `written` (`write_reason`)."""
    return write_reason(written, new, band) is not None


def next_written(
    written: WrittenState | None, new: AssetState, band: Deadband
) -> WrittenState | None:
    """What the deadband remembers once `new` is written, or None when it is not worth it."""
    reason = write_reason(written, new, band)
    if reason is None:
        return None
    return written_of(new, phased=reason != CHANGE)


def refresh_phase_ms(asset_id: str, refresh_ms: int) -> int:
    """The asset's offset in `[0, refresh_ms)`: its refreshes fall due at `phase + k *
    refresh_ms` (event time). Stable across processes, runs and versions of Python."""
    if refresh_ms <= 0:
        return 0
    # crc32 is linear in its input, so ids that differ in a counter land in patterned values;
    # the murmur3 finaliser mixes every bit into every other before the modulo.
    h = zlib.crc32(asset_id.encode())
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h % refresh_ms


def refresh_due_ms(written_ts_ms: int, asset_id: str, refresh_ms: int) -> int:
    """When a state written at `written_ts_ms` is refreshed: the asset's first phase instant
    after it, so in `(written_ts_ms, written_ts_ms + refresh_ms]`. `refresh_ms <= 0`: at once."""
    if refresh_ms <= 0:
        return written_ts_ms
    phase = refresh_phase_ms(asset_id, refresh_ms)
    return written_ts_ms + (phase - written_ts_ms - 1) % refresh_ms + 1


def remember(
    rules: AssetRuleState, new: AssetState, band: Deadband
) -> tuple[AssetRuleState, AssetState | None]:
    """The asset's rule state and the current state to write after `new`: `new` and a rule
    state that remembers it when it is worth writing (`next_written` against
    `rules.written`), else `rules` unchanged and None."""
    written = next_written(rules.written, new, band)
    if written is None:
        return rules, None
    return msgspec.structs.replace(rules, written=written), new
