"""Emulated AWS on 127.0.0.1 for `luxflow demo` and the integration tests.

A moto server (Kinesis, DynamoDB, Timestream) runs as a child process on a free loopback port,
so the worker, the simulator and the tests reach it over real HTTP with real boto3 clients.
Nothing here is used against real AWS.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from types import TracebackType

from streams.errors import ConfigError

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


class MotoServer:
    """A `moto_server` child process on 127.0.0.1; a context manager.

    `endpoint` is the URL to give boto3 as `endpoint_url` for every service.
    """

    def __init__(self, port: int | None = None, start_timeout_s: float = 30.0) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://{LOOPBACK}:{self.port}"
        self._start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> MotoServer:
        try:
            import moto.server  # noqa: F401  (fail here, clearly, when the extra is missing)
        except ImportError as exc:
            raise ConfigError(
                "emulated AWS needs the 'emulators' extra: pip install 'luxflow[emulators]'"
            ) from exc
        env = dict(os.environ, MOTO_ALLOW_NONEXISTENT_REGION="true")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ConfigError(f"moto server exited with code {self._process.returncode}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1).close()
                return self
            time.sleep(0.1)
        self.stop()
        raise ConfigError(f"moto server did not answer on {self.endpoint} within the timeout")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def emulator_env(endpoint: str) -> dict[str, str]:
    """Environment for a luxflow process that should talk to the emulator at `endpoint`."""
    return {
        "LUXFLOW_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
