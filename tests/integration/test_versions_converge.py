"""Both models converge after a replay: through the worker's own sink wiring
(`lighting.wiring.shard_sinks`) against real stores (DynamoDB and Timestream on moto, with the
service's version rule on Timestream; InfluxDB on influxd), a run that re-processes part of the
data (a replay with a later start, a takeover that saw part of a window, a crash between the
two models' writes) leaves every store holding exactly what a straight run leaves, and no
dead letter."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.retry import Backoff
from domain.events import AssetState, EnergySpike, Fault, UsageReport
from emulators.influxd import Influxd
from lighting.clients import Clients
from lighting.provision import provision, read_command_model
from lighting.regions import home_gate
from lighting.settings import Settings
from lighting.wiring import shard_sinks
from sinks.base import Sink
from sinks.deadletter import DeadLetterSink, read_dead_letters
from tests.support.deployment import Deployment
from tests.support.influx import influx_client, influx_deployment, stored_points
from tests.support.timestream import TimestreamVersions, latest_by_identity, stored_records

pytestmark = [pytest.mark.integration]

H = 3_600_000
T0 = 1_795_737_600_000
"""An hour boundary; the sinks' clock is set to a few hours later (memory-store retention)."""
SHARD = "shardId-000000000000"
IDS = ("s1", "b1", "r1")


def usage(asset: str, hour: int, covered_ms: int) -> UsageReport:
    """An asset's report of hour `hour`, `covered_ms` of it backed by readings (1 kW lamp)."""
    start = T0 + hour * H
    return UsageReport(*IDS, asset, start, start + H, covered_ms / H, covered_ms, covered_ms / H)


def room(hour: int, covered_ms: int) -> UsageReport:
    start = T0 + hour * H
    kwh, coverage = 2 * covered_ms / H, covered_ms / (2 * H)
    return UsageReport(*IDS, "", start, start + H, kwh, 2 * covered_ms, coverage, "room")


FAULT = Fault(*IDS, "a1", "E7", T0 + H + 600_000)
CLEARED = Fault(*IDS, "a1", "E7", FAULT.opened_at_ms, "cleared", T0 + H + 900_000)
REOPENED = Fault(*IDS, "a1", "E7", FAULT.opened_at_ms, "open", None, occurrences=2)
SPIKE = EnergySpike(*IDS, "a2", T0 + 2 * H, T0 + 2 * H + 60_000, 1900.0, 1200.0, 11.6, "rated")


def state(ts_ms: int) -> AssetState:
    return AssetState(*IDS, "a1", ts_ms, 1000.0, True, 100)


STRAIGHT: list[list[object]] = [
    [usage("a1", 0, H), usage("a2", 0, H), room(0, H), state(T0 + H - 1)],
    [FAULT, CLEARED, usage("a1", 1, H), usage("a2", 1, H), room(1, H)],
    [REOPENED, SPIKE, state(T0 + 3 * H - 1)],
]
"""A straight run's outputs, one list per checkpoint."""

LATER_START: list[list[object]] = [
    # Started half-way through hour 0: its reports of hour 0 are partial.
    [usage("a1", 0, H // 2), usage("a2", 0, H // 2), room(0, H // 2), state(T0 + H - 1)],
    [FAULT, CLEARED, usage("a1", 1, H), usage("a2", 1, H), room(1, H)],
    [SPIKE, state(T0 + 3 * H - 1)],
]
"""The outputs of a run that started reading half-way through hour 0 (a replay from a time
or a stream trimmed there; a DR takeover that saw the window's second half)."""


@dataclass
class Stores:
    """One deployment's stores and the production sinks of one shard writing to them."""

    deployment: Deployment
    settings: Settings
    clients: Clients

    def run(self, checkpoints: list[list[object]]) -> None:
        """Each checkpoint as the engine's checkpoint step does it: every output to every
        sink, then the sinks flushed in order, then the dead letters."""
        dead_letter = DeadLetterSink(
            self.clients.dynamodb, self.settings.dead_letter_table, Backoff()
        )
        sinks = self.sinks(dead_letter)
        for outputs in checkpoints:
            for sink in sinks:
                for output in outputs:
                    sink.write(output)
            for sink in sinks:
                sink.flush()
            dead_letter.flush()

    def crash_after_command_model(self, checkpoints: list[list[object]]) -> None:
        """Each checkpoint written to the command model only: the worker dies before the
        query-model write (so no checkpoint is written and all of it is read again)."""
        dead_letter = DeadLetterSink(
            self.clients.dynamodb, self.settings.dead_letter_table, Backoff()
        )
        command, *_ = self.sinks(dead_letter)
        for outputs in checkpoints:
            for output in outputs:
                command.write(output)
            command.flush()

    def sinks(self, dead_letter: Sink) -> list[Sink]:
        gate = home_gate(self.settings, self.clients, background=False)
        return shard_sinks(
            self.settings,
            self.clients,
            dead_letter,
            SHARD,
            gate,
            backoff=lambda: Backoff(sleep=lambda _s: None),
            now_ms=lambda: T0 + 6 * H,
        )

    def command_model(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {(i["pk"], i["sk"]): i for i in read_command_model(self.clients, self.settings)}

    def query_model(self) -> dict[Any, Any]:
        if self.settings.query_model == "influxdb":
            return stored_points(influx_client(self.deployment))
        database = self.settings.timestream_database
        return {
            table: latest_by_identity(
                table, stored_records(self.deployment.endpoint, database, table)
            )
            for table in ("events", "usage")
        }

    def dead_letters(self) -> list[object]:
        return list(read_dead_letters(self.clients.dynamodb, self.settings.dead_letter_table))


@pytest.fixture(params=["influxdb", "timestream"])
def stores(
    request: pytest.FixtureRequest,
    moto_endpoint: str,
    aws: Callable[[str], Any],
    influxd: Influxd,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[], Stores]]:
    """Makes a fresh deployment (its own tables, database or bucket) whose query model is
    the parameter's store."""

    def make() -> Stores:
        name = f"v{uuid.uuid4().hex[:10]}"
        tmp = tmp_path_factory.mktemp(name)
        if request.param == "influxdb":
            deployment = influx_deployment(moto_endpoint, aws, name, tmp, influxd)
        else:
            deployment = Deployment(moto_endpoint, aws, name, tmp)
            deployment.env["LUXFLOW_QUERY_MODEL"] = "timestream"
        env = {k: v for k, v in deployment.env.items() if k.startswith("LUXFLOW_")}
        config = Settings.from_env({**env, "LUXFLOW_REGION": "us-east-1"})
        os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
        clients = Clients(config)
        provision(config, clients)
        # moto keeps every record sent; the wrapper refuses what Timestream would refuse.
        clients.timestream = TimestreamVersions(clients.timestream)
        return Stores(deployment, config, clients)

    yield make


def assert_same_stores(replayed: Stores, straight: Stores) -> None:
    assert replayed.command_model() == straight.command_model()
    assert replayed.query_model() == straight.query_model()
    assert replayed.dead_letters() == straight.dead_letters() == []


def test_a_replay_with_a_later_start_after_a_straight_run_changes_no_store(
    stores: Callable[[], Stores],
) -> None:
    straight = stores()
    straight.run(STRAIGHT)
    replayed = stores()
    replayed.run(STRAIGHT)
    replayed.run(LATER_START)
    assert_same_stores(replayed, straight)
    # The partial hour-0 reports are in no store: each holds the full one.
    a1 = replayed.command_model()[("USAGE#s1#b1#r1", f"asset#1h#{T0:013d}#a1")]
    assert (a1["covered_ms"], a1["kwh"]) == (H, 1.0)


def test_a_partial_run_then_the_full_data_ends_as_the_straight_run(
    stores: Callable[[], Stores],
) -> None:
    """A takeover that saw only the second half of hour 0, then a replay of everything."""
    straight = stores()
    straight.run(STRAIGHT)
    replayed = stores()
    replayed.run(LATER_START)
    replayed.run(STRAIGHT)
    assert_same_stores(replayed, straight)


def test_both_versions_in_one_checkpoint_keep_the_fuller_report(
    stores: Callable[[], Stores],
) -> None:
    """A takeover's partial report and the full one reach the sinks in one checkpoint, the
    partial one last."""
    straight = stores()
    straight.run(STRAIGHT)
    replayed = stores()
    replayed.run([[*STRAIGHT[0], *LATER_START[0]], *STRAIGHT[1:]])
    assert_same_stores(replayed, straight)


def test_a_crash_between_the_command_and_the_query_write_still_writes_the_query_model(
    stores: Callable[[], Stores],
) -> None:
    """Re-processing finds the command model's items equal, not newer: the query points of
    the checkpoints that were lost are written all the same."""
    straight = stores()
    straight.run(STRAIGHT)
    replayed = stores()
    replayed.crash_after_command_model(STRAIGHT)
    replayed.run(STRAIGHT)
    assert_same_stores(replayed, straight)


def test_a_query_store_that_lost_reports_gets_the_command_models_on_a_later_replay(
    stores: Callable[[], Stores],
) -> None:
    """The query model never got the straight run's reports (a query store restored from an
    older backup; a region whose fuller reports were replicated to it); a replay with a later
    start writes the command model's full hour-0 reports into it, not its own partial ones."""
    straight = stores()
    straight.run(STRAIGHT)
    replayed = stores()
    replayed.crash_after_command_model(STRAIGHT)
    replayed.run(LATER_START)
    assert_same_stores(replayed, straight)


def of_asset(view: dict[Any, Any], asset: str) -> dict[Any, Any]:
    """The part of a store's view (command model, InfluxDB points or Timestream tables) that
    belongs to `asset`."""
    if all(key in ("events", "usage") for key in view):  # Timestream: per table
        return {table: of_asset(records, asset) for table, records in view.items()}
    return {key: value for key, value in view.items() if ("asset", asset) in _tags(key, value)}


def _tags(key: Any, value: Any) -> set[tuple[str, str]]:
    if isinstance(value, dict) and "asset_id" in value:  # a command-model item
        return {("asset", value["asset_id"])}
    return {tag for part in key if isinstance(part, tuple) for tag in part}


@pytest.fixture
def pair(stores: Callable[[], Stores]) -> list[Stores]:
    """A target and a reference deployment, shared by a property test's examples."""
    return [stores(), stores()]


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    covered=st.lists(st.integers(0, H), min_size=1, max_size=5),
    cuts=st.lists(st.integers(1, 4), max_size=4),
)
def test_any_order_of_a_reports_versions_leaves_the_highest_in_every_store(
    pair: list[Stores], covered: list[int], cuts: list[int]
) -> None:
    """Versions of one report (by coverage) in any order, split into checkpoints anywhere:
    each store holds what writing the highest alone stores."""
    target, reference = pair
    asset = f"a{uuid.uuid4().hex[:8]}"
    reports = [usage(asset, 0, c) for c in covered]
    checkpoints: list[list[object]] = []
    rest = list(reports)
    for cut in cuts:
        checkpoints.append(rest[:cut])
        rest = rest[cut:]
    checkpoints.append(rest)
    target.run(checkpoints)
    reference.run([[usage(asset, 0, max(covered))]])
    assert of_asset(target.command_model(), asset) == of_asset(reference.command_model(), asset)
    assert of_asset(target.query_model(), asset) == of_asset(reference.query_model(), asset)
    assert len(of_asset(target.command_model(), asset)) == 1
    assert target.dead_letters() == []
