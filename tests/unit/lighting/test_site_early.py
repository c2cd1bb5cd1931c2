"""A site's minute of demand is judged once complete, not after the grace: the real lighting
app, for any arrival order within the grace in which each lamp's readings come in order,
emits the very site spikes (same versions, starts, ends, peaks, excesses) that judging every
minute at its grace gives; a lamp that lags holds its site's minutes back, a silent one makes
them wait for the grace."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import MINUTE_MS
from core.records import Record
from domain.events import EnergySpike
from domain.registry import Asset, Registry, SiteDefaults
from lighting.agents import build_app
from lighting.registry import RegistryCache
from streams.processor import EngineConfig
from streams.testing import AgentTestContext
from tests.unit.lighting.test_current_state import T0_MS, asset_reading
from tests.unit.lighting.test_spike_onset import LAMPS, site_registry

GRACE_MS = 10 * MINUTE_MS
MINUTES = 45
EVERY_MS = 30_000
# A site is judged early once it has been known for the energy gap (5 min), the grace and a
# minute: from minute 16 on here.
WARMUP_MINUTES = 16


def readings(
    powers: Sequence[Sequence[float]],
    lags_ms: Sequence[Sequence[int]],
    silences: Sequence[tuple[int, int]],
) -> list[Record]:
    """Each lamp every 30 s at its minute's power, sent `lag` after its time (never before an
    earlier reading of its own), not at all while silent (minutes [from, to)); in order of
    arrival. Then one reading each an hour later, which closes every window."""
    timed: list[tuple[int, int, int, float]] = []  # (arrival, lamp, ts, power)
    for lamp, (lamp_powers, lamp_lags, silence) in enumerate(
        zip(powers, lags_ms, silences, strict=True)
    ):
        arrival_ms = 0
        for k in range(MINUTES * MINUTE_MS // EVERY_MS):
            ts_ms = T0_MS + k * EVERY_MS + lamp * 7_000
            minute = k * EVERY_MS // MINUTE_MS
            if silence[0] <= minute < silence[1]:
                continue
            arrival_ms = max(arrival_ms, ts_ms + lamp_lags[minute])
            timed.append((arrival_ms, lamp, ts_ms, lamp_powers[minute]))
        end_ms = T0_MS + (MINUTES + 60) * MINUTE_MS + lamp * 7_000
        timed.append((end_ms + GRACE_MS, lamp, end_ms, 60.0))
    records = []
    for seq, (arrival_ms, lamp, ts_ms, power_w) in enumerate(sorted(timed), start=1):
        record = asset_reading(seq, ts_ms, LAMPS[lamp], power_w, True, 100)
        records.append(Record(record.shard_id, seq, 0, "site-1", record.data, arrival_ms))
    return records


def run(
    records: list[Record], *, early: bool, registry: RegistryCache | None = None
) -> tuple[list[EnergySpike], dict[str, int]]:
    """The site spikes emitted, and the record (its index) after which each version was."""
    ctx = AgentTestContext(
        build_app(
            registry or site_registry(), topic="t", grace_ms=GRACE_MS, early_site_minutes=early
        ),
        now_ms=T0_MS,
        config=EngineConfig(checkpoint_interval_ms=10**12),
    )
    emitted_at: dict[str, int] = {}
    for index, record in enumerate(records):
        ctx.clock.now_ms = record.arrival_ms
        ctx.deliver([record])
        for output in ctx.outputs:
            if isinstance(output, EnergySpike) and output.level == "site":
                emitted_at.setdefault(f"{output.event_id}:{output.status}", index)
    spikes = [o for o in ctx.outputs if isinstance(o, EnergySpike) and o.level == "site"]
    return spikes, emitted_at


def versions(spikes: list[EnergySpike]) -> list[tuple[object, ...]]:
    return sorted(
        (s.event_id, s.revision, s.started_at_ms, s.ended_at_ms, s.peak_w, s.excess_wh, s.rule)
        for s in spikes
    )


lamp_powers = st.lists(st.sampled_from([60.0, 100.0]), min_size=MINUTES, max_size=MINUTES)
lamp_lags = st.lists(
    st.sampled_from([0, 10_000, 45_000, 3 * MINUTE_MS, 8 * MINUTE_MS]),
    min_size=MINUTES,
    max_size=MINUTES,
)
silence = st.one_of(
    st.just((0, 0)),
    st.tuples(st.integers(1, MINUTES), st.integers(1, 12)).map(lambda t: (t[0], t[0] + t[1])),
)


@settings(max_examples=40, deadline=None)
@given(
    powers=st.lists(lamp_powers, min_size=3, max_size=3),
    lags=st.lists(lamp_lags, min_size=3, max_size=3),
    silences=st.lists(silence, min_size=3, max_size=3),
)
def test_early_judging_emits_the_spikes_of_judging_at_the_grace_and_never_later(
    powers: list[list[float]], lags: list[list[int]], silences: list[tuple[int, int]]
) -> None:
    records = readings(powers, lags, silences)
    early, early_at = run(records, early=True)
    graced, graced_at = run(records, early=False)
    assert versions(early) == versions(graced)
    assert early_at.keys() == graced_at.keys()
    assert all(early_at[v] <= graced_at[v] for v in early_at)


def test_a_spike_is_raised_as_soon_as_its_minute_is_complete_and_a_lagging_lamp_holds_it() -> None:
    # 300 W from minute 20 to 24 (every lamp at 100 W), 180 W otherwise: minute 24 is still
    # above (its readings' trapezoids end at 60 W), 25 is not.
    powers = [[100.0 if 20 <= m < 25 else 60.0 for m in range(MINUTES)] for _ in LAMPS]
    on_time = [[0] * MINUTES for _ in LAMPS]
    records = readings(powers, on_time, [(0, 0)] * 3)
    spikes, emitted_at = run(records, early=True)
    start_ms = T0_MS + 20 * MINUTE_MS
    assert [(s.status, s.started_at_ms, s.ended_at_ms) for s in spikes] == [
        ("open", start_ms, None),
        ("closed", start_ms, start_ms + 5 * MINUTE_MS),
    ]
    # Raised by lamp-3's first reading past minute 20 (minute 21, + 7 s per lamp), the one
    # that completes it; at the grace, by the first reading that adds past its end plus the
    # grace (lamp-2's at 31:07: lamp-1's at 31:00 adds up to its last millisecond only).
    opened = records[emitted_at[f"{spikes[0].event_id}:open"]]
    assert opened.arrival_ms == T0_MS + 21 * MINUTE_MS + 14_000
    _, graced_at = run(records, early=False)
    graced = records[graced_at[f"{spikes[0].event_id}:open"]]
    assert graced.arrival_ms == T0_MS + 31 * MINUTE_MS + 7_000
    # lamp-2 three minutes behind: minute 20 waits for its reading past it.
    lagging = [on_time[0], [3 * MINUTE_MS] * MINUTES, on_time[2]]
    records = readings(powers, lagging, [(0, 0)] * 3)
    spikes, emitted_at = run(records, early=True)
    opened = records[emitted_at[f"{spikes[0].event_id}:open"]]
    assert opened.arrival_ms == T0_MS + 24 * MINUTE_MS + 7_000
    assert (spikes[0].status, spikes[0].started_at_ms) == ("open", start_ms)


def test_a_silent_lamp_makes_its_site_wait_for_the_grace() -> None:
    # lamp-1 at 250 W from minute 24 to 28; lamp-3 silent from minute 22 on: no energy of its
    # own (a gap), but its buffered readings may still come, so its site's minutes wait.
    powers = [[250.0 if 24 <= m < 29 else 60.0 for m in range(MINUTES)], *[[60.0] * MINUTES] * 2]
    on_time = [[0] * MINUTES for _ in LAMPS]
    records = readings(powers, on_time, [(0, 0), (0, 0), (22, MINUTES)])
    spikes, emitted_at = run(records, early=True)
    _, graced_at = run(records, early=False)
    assert [s.status for s in spikes] == ["open", "closed"]
    assert emitted_at == graced_at


def test_a_site_new_to_the_shard_is_judged_only_once_known_for_the_warmup() -> None:
    # A lamp not seen yet may still bring readings of these minutes: until the site has been
    # known for the warm-up (16 minutes here), its minutes wait although every lamp seen is
    # past them; then every complete one is judged at once.
    powers = [[100.0 if 8 <= m < 12 else 60.0 for m in range(MINUTES)] for _ in LAMPS]
    on_time = [[0] * MINUTES for _ in LAMPS]
    records = readings(powers, on_time, [(0, 0)] * 3)
    spikes, emitted_at = run(records, early=True)
    graced, graced_at = run(records, early=False)
    assert versions(spikes) == versions(graced)
    start_ms = T0_MS + 8 * MINUTE_MS
    assert [(s.status, s.started_at_ms) for s in spikes] == [
        ("open", start_ms),
        ("closed", start_ms),
    ]
    # Raised and closed by lamp-1's reading at 16:00, the first of the site 16 minutes after
    # its first (lamp-1's at 0:00); at the grace, minute 8 would be judged at 19:07.
    opened, closed = (records[emitted_at[f"{spikes[0].event_id}:{s}"]] for s in ("open", "closed"))
    assert opened.arrival_ms == closed.arrival_ms == T0_MS + WARMUP_MINUTES * MINUTE_MS
    graced_open = records[graced_at[f"{spikes[0].event_id}:open"]]
    assert graced_open.arrival_ms == T0_MS + 19 * MINUTE_MS + 7_000


def test_a_snapshot_without_the_sites_sources_restores_and_indexes_them_again() -> None:
    # 300 W from minute 24 to 28. Run to minute 20 by an app that judges at the grace (its
    # snapshot holds no sources, as one taken before they existed), then restart from it.
    powers = [[100.0 if 24 <= m < 29 else 60.0 for m in range(MINUTES)] for _ in LAMPS]
    records = readings(powers, [[0] * MINUTES for _ in LAMPS], [(0, 0)] * 3)
    cut = next(i for i, r in enumerate(records) if r.arrival_ms >= T0_MS + 20 * MINUTE_MS)
    config = EngineConfig(checkpoint_interval_ms=10**12)
    before = AgentTestContext(
        build_app(site_registry(), topic="t", grace_ms=GRACE_MS, early_site_minutes=False),
        now_ms=T0_MS,
        config=config,
    )
    for record in records[:cut]:
        before.clock.now_ms = record.arrival_ms
        before.deliver([record])
    before.checkpoint()
    after = AgentTestContext(
        build_app(site_registry(), topic="t", grace_ms=GRACE_MS),
        now_ms=records[cut].arrival_ms,
        config=config,
        store=before.store,
        checkpointer=before.checkpointer,
    )
    raised_at = None
    for record in records[cut:]:
        after.clock.now_ms = record.arrival_ms
        if any(isinstance(o, EnergySpike) for o in after.deliver([record])) and not raised_at:
            raised_at = record.arrival_ms
    # Indexed again from the lamps' kept state (known all along: no warm-up): minute 24 is
    # judged with lamp-3's first reading past it, as in a run without the restart.
    assert raised_at == T0_MS + 25 * MINUTE_MS + 14_000
    spikes = [o for o in after.outputs if isinstance(o, EnergySpike)]
    straight, _ = run(records, early=True)
    assert versions(spikes) == versions(straight)


def registering(lamps: Sequence[str]) -> RegistryCache:
    """`site_registry`'s site, with `lamps` registered in it."""
    site = SiteDefaults(
        "site-1", demand_threshold_w=250.0, demand_baseline_factor=None, baseline_factor=None
    )
    assets = [Asset("site-1", "b-1", "r-1", lamp, "luminaire", 60.0) for lamp in lamps]
    return RegistryCache(lambda: Registry(assets, [site]), 2**62, lambda: 0, unknown_asset_cap=None)


def test_a_registered_lamp_not_seen_yet_makes_its_site_wait_for_the_grace() -> None:
    # lamp-4 is registered and has not reported (just installed: its first readings may be
    # on their way), so the site's minutes wait for the grace, as for a silent lamp.
    powers = [[100.0 if 20 <= m < 25 else 60.0 for m in range(MINUTES)] for _ in LAMPS]
    records = readings(powers, [[0] * MINUTES for _ in LAMPS], [(0, 0)] * 3)
    waiting = registering([*LAMPS, "lamp-4"])
    spikes, emitted_at = run(records, early=True, registry=waiting)
    _, graced_at = run(records, early=False, registry=waiting)
    assert [s.status for s in spikes] == ["open", "closed"]
    assert emitted_at == graced_at
    # Every registered lamp seen: judged as soon as complete.
    _, early_at = run(records, early=True, registry=registering(LAMPS))
    assert early_at.keys() == graced_at.keys()
    assert all(early_at[v] < graced_at[v] for v in early_at)
