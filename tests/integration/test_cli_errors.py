"""What a user sees when the deployment is not there: one line naming the cause, exit 2."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.deployment import Deployment

pytestmark = pytest.mark.integration


@pytest.fixture
def deployment(
    moto_endpoint: str, aws: Callable[[str], Any], unique_name: Callable[[str], str], tmp_path: Path
) -> Deployment:
    return Deployment(moto_endpoint, aws, unique_name("lx"), tmp_path)


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_an_endpoint_that_refuses_connections(deployment: Deployment) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    deployment.env["LUXFLOW_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    result = deployment.luxflow("deadletters", check=False)
    assert result.returncode == 2
    assert one_line(result.stderr).startswith(f"luxflow: cannot reach http://127.0.0.1:{port}")


def test_a_missing_table_says_to_run_setup(deployment: Deployment) -> None:
    result = deployment.luxflow("deadletters", check=False)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "run `luxflow setup`" in line


def test_debug_shows_the_traceback_too(deployment: Deployment) -> None:
    result = deployment.luxflow("--debug", "deadletters", check=False)
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert "run `luxflow setup`" in result.stderr.splitlines()[-1]


def test_setup_without_shards_says_it_created_no_stream(deployment: Deployment) -> None:
    result = deployment.luxflow("setup", check=False)
    assert result.returncode == 1
    assert "NO stream" in result.stdout
    result = deployment.luxflow("setup", "--shards", "1")
    assert "(1 shard)" in result.stdout
    result = deployment.luxflow("setup")
    assert result.returncode == 0
    assert "existing; not changed" in result.stdout


def test_a_missing_stream_is_one_line_for_the_worker(deployment: Deployment) -> None:
    deployment.luxflow("setup", check=False)  # tables only: no stream
    result = deployment.luxflow("worker", "--stop-when-idle-s", "5", check=False, timeout_s=60)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert deployment.env["LUXFLOW_STREAM"] in line
