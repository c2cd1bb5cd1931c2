"""Shared fixtures: emulated AWS on 127.0.0.1 (a moto server child process) and unique names.

A missing or broken emulator fails the tests that need it; nothing here skips.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    # The project is not installed into the venv; make its packages importable.
    sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from hypothesis import settings  # noqa: E402

from core.errors import ConfigError  # noqa: E402
from emulators.kinesalite import Kinesalite  # noqa: E402
from emulators.moto import MotoServer  # noqa: E402

REGION = "us-east-1"

# Hypothesis fails an example that runs longer than 200 ms by default: a timed assertion, which
# on a loaded two-core CI machine fails a property for the load, not for a defect. Time goals
# live in benchmarks/.
settings.register_profile("luxflow", deadline=None)
settings.load_profile("luxflow")

AwsFactory = Callable[[str], Any]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """URL of a moto server on a free loopback port, shared by the whole session."""
    server = MotoServer()
    try:
        server.start()
    except ConfigError as exc:
        pytest.fail(f"emulated AWS did not start: {exc}", pytrace=False)
    try:
        yield server.endpoint
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kinesalite_endpoint() -> Iterator[str]:
    """URL of kinesalite on a free loopback port: Kinesis with faithful split and merge."""
    server = Kinesalite()
    try:
        server.start()
    except ConfigError as exc:
        pytest.fail(f"kinesalite did not start: {exc}", pytrace=False)
    try:
        yield server.endpoint
    finally:
        server.stop()


@pytest.fixture(scope="session")
def aws(moto_endpoint: str) -> AwsFactory:
    """`aws("dynamodb")` -> a real boto3 client talking HTTP to the moto server.

    botocore's own retries are off: our Backoff is the only retry layer under test.
    """
    config = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30)

    def make(service_name: str) -> Any:
        return boto3.client(
            service_name,  # type: ignore[call-overload]
            endpoint_url=moto_endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=config,
        )

    return make


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """`unique_name("cmd")` -> "cmd-<hex>": tables and streams never shared between tests."""

    def make(prefix: str = "t") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    return make


# --- InfluxDB query model ------------------------------------------------------------
@pytest.fixture(scope="session")
def influxd() -> Iterator[Any]:
    """A real InfluxDB OSS 1.8.10 (auth on) on a free loopback port, for the whole session.
    Built by `./dev influxd`; missing, it fails the tests that need it."""
    from emulators.influxd import Influxd

    server = Influxd()
    try:
        server.start()
    except ConfigError as exc:
        pytest.fail(f"influxd did not start: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def influx_run(
    moto_endpoint: str, aws: AwsFactory, influxd: Any, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """One simulated run (3 sites, 2 h, with malformed records) through `luxflow worker` into
    DynamoDB (moto) and InfluxDB (influxd), shared by the read-side tests."""
    from sim.malformed import with_malformed
    from tests.support.deployment import recent_params
    from tests.support.influx import SimulatedRun, influx_deployment

    name = f"q{uuid.uuid4().hex[:10]}"
    deployment = influx_deployment(
        moto_endpoint, aws, name, tmp_path_factory.mktemp("influx-run"), influxd
    )
    deployment.setup(shards=2)
    simulation, truth = deployment.simulation(recent_params())
    deployment.send(with_malformed(simulation.records()))
    deployment.run_worker_until_idle()
    return SimulatedRun(deployment, simulation, truth)
