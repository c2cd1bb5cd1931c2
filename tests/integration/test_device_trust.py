"""A device may speak only for itself: one registered lamp, compromised, tries to speak for
others, through the real `luxflow worker` (the CLI, in a child process) on kinesalite (Kinesis)
and the moto server (DynamoDB, Timestream).

Every record carries what the IoT rule adds: the topic's site and asset ids and the client id
(the thing name, which is the asset id). moto does not run IoT rules, so the test adds them as
the rule would, from the topic each record was published on. The attacker publishes on its
own topic, and, as if the IoT policy let it choose the site of its topic, on other sites'
topics too; it claims another registered lamp (an "all clear" during that lamp's fault), its
own id at another site, at a new site, in another room, floods ghost asset ids through its
own connection; besides, 40 ghost things (each its own client id, as a flood of provisioned
devices would be) appear at an invented site. An honest new lamp, not yet registered, joins
the other site during the flood.

Every forged claim is refused with a stable reason or contained (the ghost things that fit the
site's allowance are processed at their invented site, nowhere else), and every honest
device's state, faults, spikes and usage, in both models, are exactly those of the same run
without the attacker.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from core.clock import MINUTE_MS
from domain.telemetry import Reading, encode_telemetry, telemetry_of
from sim.simulation import Simulation
from tests.support.deployment import Deployment, recent_params

pytestmark = pytest.mark.integration

GHOST_SITE = "site-ghost"
NEW_SITE = "site-new"
SITE_CAP, FLEET_CAP = 5, 8
GHOST_THINGS = 40
GHOST_IDS = 200


def published(reading: Reading, topic_site: str, thing: str) -> tuple[str, int, bytes]:
    """A record as the IoT rule writes it: partition key the topic's site, the payload with
    the topic's ids and the client id added. Returns (partition key, ts_ms, data)."""
    wire = msgspec.structs.replace(
        telemetry_of(reading), topic_site_id=topic_site, topic_asset_id=thing, client_id=thing
    )
    return topic_site, reading.ts_ms, encode_telemetry(wire)


def lamp(site: str, building: str, room: str, asset: str, ts_ms: int) -> Reading:
    """An "all is well" reading: on, 40 W, no fault."""
    return Reading(site, building, room, asset, ts_ms, 40.0, 230.0, 0.17, 300.0, True, 80)


def honestly(reading: Reading) -> tuple[str, int, bytes]:
    return published(reading, reading.site_id, reading.asset_id)


def deploy(
    moto_endpoint: str,
    kinesalite_endpoint: str,
    aws: Callable[[str], Any],
    name: str,
    tmp_path: Path,
    simulation: Simulation,
) -> Deployment:
    (tmp_path / name).mkdir()
    deployment = Deployment(
        moto_endpoint, aws, name, tmp_path / name, kinesis_endpoint=kinesalite_endpoint
    )
    deployment.env["LUXFLOW_UNKNOWN_ASSET_CAP"] = str(FLEET_CAP)
    deployment.env["LUXFLOW_UNKNOWN_ASSET_SITE_CAP"] = str(SITE_CAP)
    # One shard: the records are read in the order they are sent (their time order).
    deployment.setup(shards=1)
    deployment.simulation(simulation.params)
    return deployment


def run(deployment: Deployment, records: Iterable[tuple[str, int, bytes]]) -> None:
    ordered = sorted(records, key=lambda r: r[1])
    assert deployment.send((key, data) for key, _, data in ordered) == len(ordered)
    assert deployment.run_worker_until_idle() == len(ordered)


def site_of(item: dict[str, Any]) -> str | None:
    return item.get("site_id")


def timestream_site(record: dict[str, Any]) -> str | None:
    return next((d["Value"] for d in record.get("Dimensions", []) if d["Name"] == "site"), None)


def test_a_device_claiming_other_assets_and_sites_is_refused_or_contained(
    moto_endpoint: str,
    kinesalite_endpoint: str,
    aws: Callable[[str], Any],
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    simulation = Simulation(recent_params(sites=2, hours=1, fault_count=2, spike_count=2))
    truth = simulation.ground_truth()
    readings = list(simulation.readings())
    site_a, site_b = sorted({a.site_id for a in simulation.assets})
    faulty = {f.asset_id for f in truth.faults if f.site_id == site_a}
    lamps_a = [a for a in simulation.assets if a.site_id == site_a and a.kind == "luminaire"]
    victim = next(a for a in lamps_a if a.asset_id in faulty) if faulty else lamps_a[0]
    attacker = next(a for a in lamps_a if a.asset_id != victim.asset_id)
    other_room = next(
        a.room_id
        for a in simulation.assets
        if a.building_id == attacker.building_id and a.room_id != attacker.room_id
    )
    b_asset = next(a for a in simulation.assets if a.site_id == site_b)
    start_ms = simulation.params.start_ms
    minutes = range(simulation.params.duration_ms // MINUTE_MS)

    # The honest fleet, as the rule delivers it, and a new lamp of site B not yet registered.
    b_place = (site_b, b_asset.building_id, b_asset.room_id)
    newcomer = [lamp(*b_place, "lamp-newcomer", start_ms + m * MINUTE_MS + 7) for m in minutes]
    honest = [honestly(r) for r in readings + newcomer]

    atk = attacker.asset_id
    own = (attacker.site_id, attacker.building_id, attacker.room_id)
    there = b_place
    victim_ids = (victim.site_id, victim.building_id, victim.room_id, victim.asset_id)
    attack: list[tuple[str, int, bytes]] = []
    expected: Counter[str] = Counter()
    for m in minutes:
        ts = start_ms + m * MINUTE_MS + 3
        # Another registered lamp, "all clear", from the attacker's own connection.
        attack.append(published(lamp(*victim_ids, ts), site_a, atk))
        # Its own id at another site: on its own topic, then on that site's topic.
        attack.append(published(lamp(*there, atk, ts + 1), site_a, atk))
        attack.append(published(lamp(*there, atk, ts + 2), site_b, atk))
        # Its own id at a new site, on that site's topic; in another room of its own site.
        attack.append(published(lamp(NEW_SITE, "b-new", "r-new", atk, ts + 3), NEW_SITE, atk))
        attack.append(published(lamp(own[0], own[1], other_room, atk, ts + 4), site_a, atk))
        expected["topic_mismatch: asset_id"] += 1
        expected["topic_mismatch: site_id"] += 1
        expected["identity_mismatch: site_id"] += 2
        expected["identity_mismatch: room_id"] += 1
    for n in range(GHOST_IDS):  # ghost ids through its own connection
        ts = start_ms + (n % len(minutes)) * MINUTE_MS + 5
        attack.append(published(lamp(*own, f"ghost-id-{n}", ts), site_a, atk))
        expected["topic_mismatch: asset_id"] += 1
    for n in range(GHOST_THINGS):  # ghost things at an invented site, before the newcomer
        ts = start_ms - GHOST_THINGS + n
        ghost = lamp(GHOST_SITE, "b-ghost", "r-ghost", f"ghost-thing-{n}", ts)
        attack.append(honestly(ghost))
    expected["unknown_asset_site_cap"] += GHOST_THINGS - SITE_CAP

    # The reference: the honest fleet alone.
    clean = deploy(
        moto_endpoint, kinesalite_endpoint, aws, unique_name("trust-ref"), tmp_path, simulation
    )
    run(clean, honest)
    assert clean.dead_letters() == []
    clean_items = clean.items()
    assert {i["type"] for i in clean_items} >= {"fault", "usage_report", "asset_state"}
    assert any(i.get("asset_id") == "lamp-newcomer" for i in clean_items)

    # The same fleet with the attacker among it.
    attacked = deploy(
        moto_endpoint, kinesalite_endpoint, aws, unique_name("trust-atk"), tmp_path, simulation
    )
    run(attacked, honest + attack)

    letters = attacked.dead_letters()
    assert Counter(letter.reason for letter in letters) == expected
    assert {letter.origin for letter in letters} == {"decode"}
    attack_data = Counter(data for _, _, data in attack)
    assert Counter(letter.data for letter in letters) <= attack_data

    # Contained: the ghost things that fit the site's allowance exist at their site only.
    items = attacked.items()
    ghost_states = {
        i["asset_id"] for i in items if i.get("type") == "asset_state" and site_of(i) == GHOST_SITE
    }
    assert ghost_states == {f"ghost-thing-{n}" for n in range(SITE_CAP)}
    assert not any(site_of(i) == NEW_SITE for i in items)
    assert not any(str(i.get("asset_id", "")).startswith("ghost-id-") for i in items)

    # Everything else, the honest devices' state, faults, spikes and usage at every level, is
    # exactly the run without the attacker, in both models.
    assert [i for i in items if site_of(i) != GHOST_SITE] == clean_items
    ours = {k: v for k, v in attacked.timestream_view().items() if timestream_site(v) != GHOST_SITE}
    assert ours == clean.timestream_view()
