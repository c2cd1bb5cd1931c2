"""`luxflow serve` in a child process on a free loopback port, and small HTTP helpers."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import msgspec

from emulators.moto import free_port
from tests.support.deployment import ROOT, Deployment


@contextlib.contextmanager
def serving(deployment: Deployment) -> Iterator[str]:
    """Run `luxflow serve` for the deployment; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)],
        cwd=ROOT,
        env=deployment.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"luxflow serve exited: {process.stderr.read()[-2000:]}")  # type: ignore[union-attr]
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
                break
            if time.monotonic() > deadline:
                raise AssertionError("luxflow serve did not answer")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def get(url: str, token: str | None, method: str = "GET") -> tuple[int, Any]:
    """(status, decoded JSON or text) of one request."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(url, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            status, body = exc.code, exc.read()
    try:
        return status, msgspec.json.decode(body)
    except msgspec.DecodeError:
        return status, body.decode()
