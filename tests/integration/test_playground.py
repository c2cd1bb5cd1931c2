"""`luxflow demo --keep` as a user runs it: it prints the page's URL, a token that opens the
API and an env file with which the other commands reach the stack, and `kill` (as Ctrl-C)
stops everything: the command exits 0 and no server is left listening."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from emulators.moto import free_port
from tests.support.deployment import ROOT

pytestmark = [pytest.mark.integration]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_the_playground_says_how_to_use_it_and_stops_cleanly(tmp_path: Path) -> None:
    port, env_file = free_port(), tmp_path / "playground.env"
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "demo", "--keep", "--sites", "1", "--buildings", "1",
         "--rooms", "1", "--lamps", "2", "--hours", "1", "--shards", "1",
         "--port", str(port), "--env-file", str(env_file)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith(("LUXFLOW_", "AWS_"))},
    )  # fmt: skip
    assert process.stdout is not None
    printed = []
    for line in process.stdout:
        printed.append(line)
        if line.startswith("Ctrl-C stops everything"):
            break
    text = "".join(printed)
    assert f"operator page  http://127.0.0.1:{port}/" in text
    (token,) = re.findall(r"API token +(\S+)", text)
    env = dict(re.findall(r"^export (\w+)='([^']*)'$", env_file.read_text(), re.MULTILINE))
    assert env["LUXFLOW_API_TOKEN"] == token
    endpoints = [int(env[k].rsplit(":", 1)[1].rstrip("/"))
                 for k in ("LUXFLOW_ENDPOINT_URL", "LUXFLOW_KINESIS_ENDPOINT_URL")]  # fmt: skip
    fleet = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/fleet", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(fleet, timeout=30) as reply:
        assert reply.status == 200
    status = subprocess.run(
        [sys.executable, "-m", "app", "status"], cwd=ROOT, capture_output=True, text=True,
        check=False,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("LUXFLOW_")}, **env},
        timeout=60,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("shard")

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert [p for p in [port, *endpoints] if listening(p)] == []
