"""`luxflow serve` in a child process (or an app in a thread) on a free loopback port, and small
HTTP helpers."""

from __future__ import annotations

import contextlib
import http.client
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from emulators.moto import free_port
from tests.support.deployment import ROOT, Deployment


@contextlib.contextmanager
def serving_process(
    deployment: Deployment, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Run `luxflow serve` for the deployment (with `env` over its settings); yields its base
    URL and the server's process."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)],
        cwd=ROOT,
        env={**deployment.env, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(base, process)
        yield base, process
    finally:
        process.terminate()
        process.wait(timeout=10)


def wait_for(base: str, process: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + 30
    while True:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"luxflow serve exited: {process.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
            return
        if time.monotonic() > deadline:
            raise AssertionError("luxflow serve did not answer")
        time.sleep(0.1)


@contextlib.contextmanager
def serving(deployment: Deployment) -> Iterator[str]:
    """Run `luxflow serve` for the deployment; yields its base URL."""
    with serving_process(deployment) as (base, _):
        yield base


@contextlib.contextmanager
def serving_app(app: Any) -> Iterator[str]:
    """Serve an ASGI app built in this process (the test chooses its limits) with uvicorn on
    a free loopback port, in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(base)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: Any


def request(
    base: str,
    path: str,
    *,
    token: str | None = None,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    source: str | None = None,
    timeout_s: float = 60,
) -> Reply:
    """One request from the loopback address `source` (127.0.0.x: another client to the
    server's rate limit), with its status, headers and decoded JSON (or text) body."""
    parts = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1",
        parts.port,
        timeout=timeout_s,
        source_address=(source, 0) if source else None,
    )
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    try:
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    try:
        decoded: Any = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        decoded = raw.decode("utf-8", "replace")
    return Reply(response.status, response.headers, decoded)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


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
