"""The playground (`luxflow demo --keep`, `./dev up`): emulated AWS, a worker, the read API and
a simulated fleet sending live, all on 127.0.0.1 and all in this process until Ctrl-C.

The fleet's simulation starts `hours` before now (that history is sent at once, so the page
has closed hours to chart) and runs `live_hours` past now; a reading is sent when its time
comes, so readings arrive at real time and the faults and spikes the simulation planned for
later happen while one watches. The environment the other commands need to reach this stack
is written to an env file (`export` lines to `source`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cli.base import info
from core.clock import HOUR_MS, wall_clock_ms
from core.errors import LuxflowError
from domain.telemetry import encode_reading
from emulators.influxd import Influxd
from emulators.kinesalite import Kinesalite
from emulators.moto import ChildServer, MotoServer, emulator_env, free_port
from lighting.clients import Clients
from lighting.provision import provision
from lighting.registry import store_registry
from lighting.settings import Settings
from lighting.worker import run_local_worker
from sim.emulated import on_emulators, simulated_registry
from sim.malformed import MALFORMED_SAMPLES
from sim.params import SimParams
from sim.simulation import Simulation
from streams.kinesis.local_runner import LocalRunner
from streams.kinesis.producer import Producer

READER_USER = "luxflow_reader"


def live_simulation(args: Any, now_ms: int, live_hours: float) -> Simulation:
    """The demo's fleet from `args.hours` before now (on an hour boundary) to `live_hours`
    after it, with the demo's fault and spike counts per simulated hour kept."""
    start_ms = now_ms - now_ms % HOUR_MS - int(args.hours * HOUR_MS)
    duration_ms = now_ms - start_ms + int(live_hours * HOUR_MS)
    scale = duration_ms / (args.hours * HOUR_MS)
    return Simulation(
        SimParams(
            sites=args.sites,
            buildings_per_site=args.buildings,
            rooms_per_building=args.rooms,
            lamps_per_room=args.lamps,
            sensors_per_room=1,
            start_ms=start_ms,
            duration_ms=duration_ms,
            interval_ms=args.interval_s * 1000,
            seed=args.seed,
            fault_count=round(args.faults * scale),
            spike_count=round(args.spikes * scale),
        )
    )


class LiveFeed:
    """Sends a simulation's readings once their time has come: all past ones at once, then
    every second those that fell due, with one malformed record (cycling through
    `MALFORMED_SAMPLES`, so the dead letters have every reason) after each
    `malformed_every`-th reading. `sent` counts the records; `stop()` ends the feed."""

    def __init__(
        self,
        simulation: Simulation,
        send: Callable[[list[tuple[str, bytes]]], None],
        malformed_every: int = 1_000,
        now_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._simulation = simulation
        self._send_records = send
        self._now_ms = now_ms
        self._malformed_every = malformed_every
        self._malformed = itertools.cycle(MALFORMED_SAMPLES.values())
        self._stop = threading.Event()
        self.sent = 0
        self.errors: list[str] = []

    def run(self) -> None:
        due: list[tuple[str, bytes]] = []
        try:
            for count, reading in enumerate(self._simulation.readings(), start=1):
                while reading.ts_ms > self._now_ms():
                    self._send(due)
                    due = []
                    if self._stop.wait(1.0):
                        return
                due.append((reading.site_id, encode_reading(reading)))
                if count % self._malformed_every == 0:
                    due.append((reading.site_id, next(self._malformed)))
                if len(due) >= 500:
                    self._send(due)
                    due = []
            self._send(due)
        except LuxflowError as exc:
            self.errors.append(str(exc))
            info(f"the live feed stopped: {exc}")

    def _send(self, records: list[tuple[str, bytes]]) -> None:
        if records:
            self._send_records(records)
            self.sent += len(records)

    def stop(self) -> None:
        self._stop.set()


@dataclass
class Playground:
    settings: Settings
    env: dict[str, str]
    """The environment a `luxflow` command needs to reach this stack."""
    url: str
    token: str
    simulation: Simulation
    feed: LiveFeed
    runner: list[LocalRunner]


def _grant_reader(influxd: Influxd, database: str, password: str) -> None:
    """A read-only InfluxDB user for `query` and `serve`, as a deployment has."""
    import urllib.error
    import urllib.parse
    import urllib.request

    def run(statement: str, token: str) -> int:
        request = urllib.request.Request(
            f"{influxd.endpoint}/query?db={urllib.parse.quote(database)}",
            data=urllib.parse.urlencode({"q": statement}).encode(),
            headers={"Authorization": f"Token {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, TimeoutError):
            return 0  # no answer in time: the loop below asks again

    # The page's first request must not meet a reader InfluxDB does not yet let read (seen
    # under load as a 403 right after the grant, and as a reader never created when the
    # server answered its creation slowly): every step again until the reader can read.
    # Each is idempotent (the same user and password again is no error).
    statements = (
        f"CREATE DATABASE {database}",
        f"CREATE USER {READER_USER} WITH PASSWORD '{password}'",
        f"GRANT READ ON {database} TO {READER_USER}",
    )
    deadline = time.monotonic() + 60
    while True:
        answers = [run(statement, influxd.token) for statement in statements]
        read = run("SHOW MEASUREMENTS", f"{READER_USER}:{password}")
        if read == 200:
            return
        if time.monotonic() > deadline:
            raise LuxflowError(
                f"InfluxDB did not let {READER_USER} read {database} in 60 s "
                f"(create database, create user, grant: HTTP {answers}; read: HTTP {read})"
            )
        time.sleep(0.2)


def env_lines(env: dict[str, str]) -> str:
    return "".join(f"export {key}='{value}'\n" for key, value in sorted(env.items()))


Server = TypeVar("Server", bound=ChildServer)


def _own_session(server: Server) -> Server:
    """The terminal's Ctrl-C must reach only this process, which stops the fleet and the
    worker (its last checkpoint, its leases released) before the servers they write to."""
    server.own_session = True
    return server


@contextlib.contextmanager
def playground(
    settings: Settings,
    args: Any,
    *,
    live_hours: float = 24,
    port: int | None = None,
    query_model: str = "timestream",
    malformed_every: int = 1_000,
) -> Iterator[Playground]:
    """Start everything (see the module docstring); stop it all when the block ends."""
    import uvicorn

    from api.app import api_cursors, create_app
    from api.page_ops import operations_reader
    from lighting.read.model import read_model

    with contextlib.ExitStack() as stack:
        moto = stack.enter_context(_own_session(MotoServer()))
        kinesalite = stack.enter_context(_own_session(Kinesalite()))
        aws = emulator_env(moto.endpoint)
        for key, value in aws.items():
            os.environ.setdefault(key, value)
        token = secrets.token_urlsafe(24)
        env = {
            **aws,
            "LUXFLOW_KINESIS_ENDPOINT_URL": kinesalite.endpoint,
            "LUXFLOW_REGION": "us-east-1",
            "LUXFLOW_TIMESTREAM_COMMON_ATTRIBUTES": "false",
            "LUXFLOW_API_TOKEN": token,
            "LUXFLOW_QUERY_MODEL": query_model,
        }
        overrides: dict[str, Any] = {}
        if query_model == "influxdb":
            influxd = stack.enter_context(_own_session(Influxd()))
            reader_password = secrets.token_urlsafe(12)
            _grant_reader(influxd, settings.influxdb_bucket.split("/")[0], reader_password)
            overrides = {
                "query_model": "influxdb",
                "influxdb_url": influxd.endpoint,
                "influxdb_token": influxd.token,
                "influxdb_read_token": f"{READER_USER}:{reader_password}",
            }
            env.update(
                LUXFLOW_INFLUXDB_URL=influxd.endpoint,
                LUXFLOW_INFLUXDB_TOKEN=influxd.token,
                LUXFLOW_INFLUXDB_READ_TOKEN=overrides["influxdb_read_token"],
            )
        settings = on_emulators(
            settings, moto.endpoint, kinesalite.endpoint, api_token=token, **overrides
        )
        clients = Clients(settings)
        provision(settings, clients, shards=args.shards)
        simulation = live_simulation(args, wall_clock_ms(), live_hours)
        store_registry(clients.dynamodb, settings.command_table, simulated_registry(simulation))
        feed = LiveFeed(
            simulation, Producer(clients.kinesis, settings.stream).send, malformed_every
        )
        runner_box: list[LocalRunner] = []
        worker = threading.Thread(
            target=run_local_worker,
            args=(settings, clients),
            kwargs={"on_runner": runner_box.append},
            name="worker",
            daemon=True,
        )
        worker.start()
        feeder = threading.Thread(target=feed.run, name="live-feed", daemon=True)
        feeder.start()
        tokens = [token]
        # The read API gets clients of its own, as `luxflow serve` in its own process would:
        # the worker's are wrapped by its own admission and retry policy.
        api_clients = Clients(settings)
        app = create_app(
            read_model(settings, api_clients, api_cursors(tokens)),
            tokens,
            wall_clock_ms,
            operations=operations_reader(settings, api_clients),
        )
        port = port or free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        serving = threading.Thread(target=server.run, name="read-api", daemon=True)
        serving.start()
        while not server.started:
            if not serving.is_alive():
                raise LuxflowError(f"the read API could not listen on 127.0.0.1:{port}")
            time.sleep(0.05)
        try:
            yield Playground(
                settings, env, f"http://127.0.0.1:{port}/", token, simulation, feed, runner_box
            )
        finally:
            feed.stop()
            server.should_exit = True
            feeder.join(timeout=10)
            if runner_box:
                runner_box[0].stop()
            worker.join(timeout=30)
            serving.join(timeout=10)


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """The playground's environment as `export` lines (mode 600: it holds the API token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(env_lines(env))
    path.chmod(0o600)
