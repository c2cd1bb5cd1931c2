"""The lighting application: `App("lighting")`, its decoder, tables, the `detect` agent and the
window and advance callbacks, all built by `build_app`; runners drive it per shard (see
`lighting.wiring`), tests drive it in-process with `streams.testing.AgentTestContext(app)`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Final, TypeVar, cast

import msgspec

from core.clock import DAY_MS, HOUR_MS, MINUTE_MS
from domain.deadband import DEFAULT_DEADBAND, Deadband, remember
from domain.energy import DEFAULT_REFINE_MS, energy_step
from domain.events import AssetState, DomainEvent, EnergySpike, Fault
from domain.rules import (
    AssetRuleState,
    Limits,
    asset_state,
    expire,
    mark_suppressed,
    offline_check,
    step,
)
from domain.rules.flood import FloodState, flood_check, flood_guard, is_new
from domain.rules.spikes import clock_confirm, spike_due_ms
from domain.series import DEFAULT_INTERVAL_MS
from domain.telemetry import DEFAULT_MAX_SKEW_MS, Reading, decode_reading, shared_id
from domain.usage import scope_of_key, scopes_of, usage_report_of
from lighting.regions import HomeGate
from lighting.registry import RegistryCache
from lighting.series import add_series
from lighting.site_demand import SiteDemand
from streams.app import App, Decoder
from streams.stream import Stream
from tables.shard import active_state
from tables.table import WindowedTable

V = TypeVar("V")

CLOCK_LEAD_MS: Final = 5_000
"""How far past what most devices have reached (a record's arrival less the shard's typical
lag) one reading may move the event clock: the spread of honest delivery delays, so the
clock still follows the freshest honest stamps. Not the skew allowance: the offline sweep
and the spike and site-minute checks take the clock for "now", and a clock that a device
within the allowance took 2 minutes ahead of the others found them silent that much early
(a lamp quiet for 14.5 of its 15 minutes got an offline fault, cleared before it opened)."""


def _no_rule_state() -> AssetRuleState:
    raise KeyError("asset_rules has no default: use .get()")


class UsageAcc(msgspec.Struct, gc=False):
    """Energy of one scope in one window, summed from the intervals between readings."""

    site_id: str = ""
    building_id: str = ""
    room_id: str = ""
    wh: float = 0.0
    covered_ms: int = 0
    assets: int = 0

    def shared_copy(self) -> UsageAcc:
        """This sum with the readings' shared copies of its ids (`shared_id`): read back from
        a snapshot it holds its own copies, a running shard's the readings' ones."""
        return UsageAcc(
            shared_id(self.site_id),
            shared_id(self.building_id),
            shared_id(self.room_id),
            self.wh,
            self.covered_ms,
            self.assets,
        )

    def __add__(self, more: UsageAcc) -> UsageAcc:
        """The sum, with the ids of `more` (the latest contribution)."""
        return UsageAcc(
            more.site_id,
            more.building_id,
            more.room_id,
            self.wh + more.wh,
            self.covered_ms + more.covered_ms,
            max(self.assets, more.assets),
        )


def reading_decoder(
    registry: RegistryCache,
    gate: HomeGate | None = None,
    *,
    max_skew_ms: int = DEFAULT_MAX_SKEW_MS,
) -> Decoder[Reading]:
    """What a record goes through before any agent sees it, in this order, each step refusing
    with a `ValueError` whose message is the dead letter's reason:

    1. decode: `domain.telemetry.decode_reading` (schema, values, timestamp bounds, the ids
       the IoT rule added from the topic and the client id, and the device's clock against
       the record's arrival: more than `max_skew_ms` ahead is `clock_skew`);
    2. DR gate: the reading's site must be homed in this region (`HomeGate.refusal`; no
       gate: every site is);
    3. admission: `RegistryCache.admit` (a registered asset at its registered place, unknown
       assets within their caps; `lighting.admission`).

    The gate comes before admission so that a site homed elsewhere never takes a place
    among the unknown assets."""
    admit = registry.admit
    if gate is None:

        def decode_and_admit(data: bytes, arrival_ms: int) -> Reading:
            return admit(decode_reading(data, arrival_ms, max_skew_ms=max_skew_ms))

        return decode_and_admit
    refusal = gate.refusal

    def decode_gate_admit(data: bytes, arrival_ms: int) -> Reading:
        reading = decode_reading(data, arrival_ms, max_skew_ms=max_skew_ms)
        refused = refusal(reading.site_id)
        if refused is not None:
            raise ValueError(refused)
        return admit(reading)

    return decode_gate_admit


def build_app(
    registry: RegistryCache,
    *,
    topic: str,
    grace_ms: int,
    gate: HomeGate | None = None,
    max_skew_ms: int = DEFAULT_MAX_SKEW_MS,
    series_interval_ms: int = DEFAULT_INTERVAL_MS,
    deadband: Deadband = DEFAULT_DEADBAND,
    early_site_minutes: bool = True,
) -> App:
    """The lighting application: its topic's decoder (`reading_decoder`: decode, then the DR
    `gate`, then the registry's admission), one agent (`detect`) that applies the per-asset
    rules to every reading and feeds the usage and site-demand windows, and one advance
    callback per job driven by event time (roll-ups, the offline sweep, the flood check).
    `topic` names the Kinesis stream; `grace_ms` is how late a reading may arrive and still
    count in its window; `gate` is the worker's DR home gate (None: every site is processed);
    a reading stamped more than `max_skew_ms` after its arrival is dead-lettered `clock_skew`.
    The `series` agent (`lighting.series`) rolls telemetry up per `series_interval_ms` (0: off).
    An asset's current state is yielded only when `deadband` finds it worth writing; what was
    last written is part of the asset's snapshotted rule state (`domain.deadband`).
    Energy splits at hour bounds are refined for half the grace (at most
    ``DEFAULT_REFINE_MS``), so every correction lands before its window closes. A site's
    minute of demand is judged once complete (`lighting.site_demand`), or with
    `early_site_minutes` False only when its grace has passed."""
    refine_ms = min(DEFAULT_REFINE_MS, grace_ms // 2)
    app = App("lighting")
    # What an operator acts on reaches the command model with the batch that made it; the
    # state snapshot and the checkpoint keep their own, slower cadence.
    app.prompt(Fault, EnergySpike, AssetState)
    telemetry = app.topic(
        topic,
        decoder=reading_decoder(registry, gate, max_skew_ms=max_skew_ms),
        event_time=_reading_time,
        max_lead_ms=CLOCK_LEAD_MS,
        source=_reading_source,
    )
    # Keyed by asset id, as the hourly and daily windows are: one partition-key map for all.
    asset_rules = app.Table(
        "asset_rules", default=_no_rule_state, value_type=AssetRuleState
    ).share_keys()
    # Room, building and site sums of the asset windows closed by the current advance.
    rollups = app.Table("usage_rollups", default=UsageAcc, value_type=UsageAcc)
    # The event time (ms) at which each minute-cadence job runs next: key "next" for the
    # offline sweep (its name in existing snapshots), "floods" for the flood check.
    next_check = app.Table("offline_check", default=int, value_type=int)
    # New faults per (site, code) and the flood in progress (domain.rules.flood).
    site_floods = app.Table("site_floods", default=_no_flood_state, value_type=FloodState)
    # The due time of each asset whose open spike the event clock may confirm before its next
    # reading (`domain.rules.spikes.spike_due_ms`): only those assets, so the check after each
    # batch costs nothing on a quiet fleet. Written by the agent with each reading, so a snapshot
    # holds it with the rule state it follows; a snapshot from before it existed restores it
    # empty, and each asset's next reading puts its entry back (that reading confirms as before).
    spike_due = app.Table("spike_due", default=int, value_type=int)

    def windowed(
        name: str, size_ms: int, default: Callable[[], V], value_type: type[V]
    ) -> WindowedTable[V]:
        return (
            app.Table(name, default=default, value_type=value_type)
            .tumbling(size_ms, grace_ms=grace_ms)
            .relative_to_field(lambda reading: reading.ts_ms)
        )

    hourly = windowed("usage_hourly", HOUR_MS, UsageAcc, UsageAcc)
    daily = windowed("usage_daily", DAY_MS, UsageAcc, UsageAcc)
    site = SiteDemand(app, registry, asset_rules, grace_ms=grace_ms, early=early_site_minutes)

    def usage_closed(
        window_ms: int,
    ) -> Callable[[Any, tuple[int, int], UsageAcc], Iterable[object]]:
        def close(asset_id: Any, window: tuple[int, int], acc: UsageAcc) -> Iterable[object]:
            scopes = scopes_of(acc.site_id, acc.building_id, acc.room_id, str(asset_id))
            yield usage_report_of(
                scopes[0],
                window_start_ms=window[0],
                window_ms=window_ms,
                wh=acc.wh,
                covered_ms=acc.covered_ms,
            )
            for scope in scopes[1:]:
                key = (scope.key, window_ms, window[0])
                held = rollups[key]
                rollups[key] = UsageAcc(
                    wh=held.wh + acc.wh,
                    covered_ms=held.covered_ms + acc.covered_ms,
                    assets=held.assets + 1,
                )

        return close

    hourly.on_window_close(usage_closed(HOUR_MS))
    daily.on_window_close(usage_closed(DAY_MS))

    def limits_for(asset_id: str, site_id: str) -> Limits | None:
        """The one place the agent asks the registry for an asset's limits (None: the
        registry refuses the asset, e.g. past its cap of unknown assets: no rule applies)."""
        limits: Limits | None = registry.limits(asset_id, site_id)
        return limits

    def guarded(
        events: Iterable[DomainEvent], state: AssetRuleState | None
    ) -> tuple[list[DomainEvent], AssetRuleState | None]:
        """Events through the site's flood guard: a new fault past the flood limit is kept
        but marked suppressed (in its event and in the asset's state, for later versions)."""
        out: list[DomainEvent] = []
        for event in events:
            if not (isinstance(event, Fault) and is_new(event)):
                out.append(event)
                continue
            key = (event.site_id, event.code)
            flood, suppressed, site_events = flood_guard(
                site_floods.get(key), event, registry.flood_limits(event.site_id)
            )
            site_floods[key] = flood
            fault = msgspec.structs.replace(event, suppressed=True) if suppressed else event
            if suppressed and state is not None:
                state = mark_suppressed(state, fault)
            out.append(fault)
            out.extend(site_events)
        return out, state

    def minute_due(job: str, clock_ms: int) -> bool:
        """True once a minute of event time for `job`; then its next minute is set."""
        if clock_ms < (next_check.get(job) or 0):
            return False
        next_check[job] = clock_ms - clock_ms % MINUTE_MS + MINUTE_MS
        return True

    # The advance callbacks run in this order after every batch and tick; their outputs go
    # to the sinks in the same order.
    @app.on_advance
    def report_rollups(clock_ms: int) -> Iterable[object]:
        """The room, building and site reports summed from the asset windows just closed."""
        for key, acc in rollups.items():
            scope_key, window_ms, start_ms = cast(tuple[str, int, int], key)
            yield usage_report_of(
                scope_of_key(scope_key),
                window_start_ms=start_ms,
                window_ms=window_ms,
                wh=acc.wh,
                covered_ms=acc.covered_ms,
                asset_count=max(registry.asset_count(scope_key), acc.assets),
            )
            del rollups[key]

    @app.on_advance
    def sweep_offline(clock_ms: int) -> Iterable[object]:
        """Once a minute: retire assets past their retention, open offline faults."""
        if not minute_due("next", clock_ms):
            return
        # While the grace is boosted (a takeover: the moved sites' readings arrive late, from
        # the archive replica and then from the devices' resend), an asset is offline only as
        # late as a window would take its readings: its readings between the archive's end and
        # the resend are on their way, not missing. The fault's time does not depend on when
        # it is found (`offline_check`), so this only delays it.
        boost = app.grace_boost() if app.grace_boost is not None else (0, 0)
        offline_clock_ms = clock_ms - boost[0] if clock_ms < boost[1] else clock_ms
        for asset_id, state in asset_rules.items():
            limits = limits_for(str(asset_id), state.site_id)
            if limits is None:
                continue
            kept, expired = expire(state, clock_ms, limits)
            if kept is None:
                del asset_rules[asset_id]
                site.retired(state)
                events, _ = guarded(expired, None)
                yield from events
                continue
            after, events = offline_check(state, offline_clock_ms, limits)
            if after is not state:
                events, guarded_state = guarded(events, after)
                asset_rules[asset_id] = guarded_state or after
                yield from events

    @app.on_advance
    def check_floods(clock_ms: int) -> Iterable[object]:
        """Once a minute, after the sweep: end the site floods whose window has passed."""
        if not minute_due("floods", clock_ms):
            return
        for flood_key, flood in site_floods.items():
            site_id, code = cast(tuple[str, str], flood_key)
            left, site_events = flood_check(
                flood, site_id, code, clock_ms, registry.flood_limits(site_id)
            )
            if left is None:
                del site_floods[flood_key]
            yield from site_events

    @app.on_advance
    def confirm_spikes(clock_ms: int) -> Iterable[object]:
        """The open spikes whose due time the event clock has reached, before their asset's
        next reading (which would confirm or end them otherwise). The agent confirms them too,
        before applying the asset's next reading if the clock had passed the due time by then,
        so the outcome is that of the record that took the clock past it, not of where a batch
        ends: a replay cut into other batches stores the same items."""
        for asset_id, due_ms in spike_due.items():
            if clock_ms < due_ms:
                continue
            del spike_due[asset_id]
            state = asset_rules.get(asset_id)
            limits = limits_for(str(asset_id), state.site_id) if state is not None else None
            if state is None or limits is None:
                continue
            after, events = clock_confirm(state, clock_ms, limits)
            if events:
                asset_rules[asset_id] = after
                yield from events

    @app.agent(telemetry)
    async def detect(stream: Stream[Reading]) -> AsyncIterator[object]:
        async for reading in stream:
            asset_id = reading.asset_id
            limits = limits_for(asset_id, reading.site_id)
            if limits is None:
                continue
            before = asset_rules.get(asset_id)
            if before is not None and reading.ts_ms <= before.last_ts_ms:
                continue  # duplicate or out of order: the rules ignore it, so does usage
            due_ms = spike_due.get(asset_id) if before is not None and before.spike else None
            if before is not None and due_ms is not None:
                # The clock passed the due time before this reading: the spike was confirmed
                # then (`confirm_spikes` would have, had the batch ended there), so this
                # reading is applied to the confirmed state whatever the batches.
                clock_ms = active_state().event_clock_ms()
                if clock_ms is not None and clock_ms >= due_ms:
                    del spike_due[asset_id]
                    before, confirmed = clock_confirm(before, clock_ms, limits)
                    for event in confirmed:
                        yield event
            ts_ms = reading.ts_ms
            # Every table's clock follows the readings' event time: each contribution is
            # added at the last millisecond it covers (the last one at ts - 1), and a reading
            # that closes no interval still moves the clock (without writing: never late).
            usage = energy_step(before, reading, limits, refine_ms=refine_ms)
            interval = usage.interval
            hour_ms = interval.t1_ms - interval.t1_ms % HOUR_MS if interval is not None else 0
            if (
                interval is not None
                and not usage.corrections
                and interval.t2_ms <= hour_ms + HOUR_MS
            ):
                # Within one hour, hence one day: each table's one contribution is the whole
                # interval (what `contributions` gives), made once for both (a table stores
                # sums, never the amount it is given).
                contribution = UsageAcc(
                    reading.site_id,
                    reading.building_id,
                    reading.room_id,
                    interval.total_wh,
                    interval.t2_ms - interval.t1_ms if interval.observed else 0,
                    1,
                )
                hourly.add(asset_id, contribution, at_ms=min(hour_ms + HOUR_MS, ts_ms) - 1)
                day_ms = interval.t1_ms - interval.t1_ms % DAY_MS
                daily.add(asset_id, contribution, at_ms=min(day_ms + DAY_MS, ts_ms) - 1)
            else:
                for table, window_ms in ((hourly, HOUR_MS), (daily, DAY_MS)):
                    parts = usage.contributions(window_ms)
                    for start_ms, wh, covered_ms in parts:
                        contribution = UsageAcc(
                            reading.site_id,
                            reading.building_id,
                            reading.room_id,
                            wh,
                            covered_ms,
                            1,
                        )
                        table.add(
                            asset_id, contribution, at_ms=min(start_ms + window_ms, ts_ms) - 1
                        )
                    if not parts:
                        table.advance_to(ts_ms)
            for judged in site.add(before, reading, limits, interval):
                yield judged
            after, events = step(before, reading, limits, energy=usage.track)
            if events:
                events, guarded_state = guarded(events, after)
                after = guarded_state or after
            after, current = remember(after, asset_state(reading), deadband)
            asset_rules[asset_id] = after
            if after.spike is not None or (before is not None and before.spike is not None):
                context = stream.current_event
                lag_ms = context.arrival_ms - ts_ms if context is not None else 0
                due_ms = spike_due_ms(after, limits, lag_ms=lag_ms)
                if due_ms is None:
                    if asset_id in spike_due:
                        del spike_due[asset_id]
                elif spike_due.get(asset_id) != due_ms:
                    spike_due[asset_id] = due_ms
            for event in events:
                yield event
            if current is not None:
                yield current

    add_series(app, telemetry, registry, interval_ms=series_interval_ms, grace_ms=grace_ms)
    return app


def _reading_time(reading: Reading) -> int:
    return reading.ts_ms


def _reading_source(reading: Reading) -> str:
    return reading.asset_id


def _no_flood_state() -> FloodState:
    raise KeyError("site_floods has no default: use .get()")
