"""kinesalite (npm) on 127.0.0.1: a Kinesis emulator whose SplitShard and MergeShards behave
like Kinesis. moto's do not: after a split or merge moto keeps routing records to the closed
parent shard (its `get_shard_for_key` picks the first shard whose range holds the key, open or
closed), so resharding is tested against kinesalite. Installed by `./dev setup` into
deploy/emulators/node_modules.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from streams.errors import ConfigError
from streams.localaws import LOOPBACK, free_port

_BIN = Path(__file__).resolve().parents[1] / "deploy/emulators/node_modules/kinesalite/cli.js"


class Kinesalite:
    """A kinesalite child process with immediate stream state changes; a context manager."""

    def __init__(self, port: int | None = None, start_timeout_s: float = 30.0) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://{LOOPBACK}:{self.port}"
        self._start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Kinesalite:
        node = shutil.which("node")
        if node is None or not _BIN.exists():
            raise ConfigError(
                f"kinesalite needs node and {_BIN} (run ./dev setup, which installs it with npm)"
            )
        self._process = subprocess.Popen(
            [
                node,
                str(_BIN),
                "--host",
                LOOPBACK,
                "--port",
                str(self.port),
                "--createStreamMs",
                "0",
                "--deleteStreamMs",
                "0",
                "--updateStreamMs",
                "0",
                "--shardLimit",
                "1000",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ConfigError(f"kinesalite exited with code {self._process.returncode}")
            with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, self.port), 1):
                return self
            time.sleep(0.1)
        self.stop()
        raise ConfigError(f"kinesalite did not listen on {self.endpoint} within the timeout")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> Kinesalite:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
