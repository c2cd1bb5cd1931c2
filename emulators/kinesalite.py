"""kinesalite (npm) on 127.0.0.1: a Kinesis emulator whose SplitShard and MergeShards behave
like Kinesis. moto's do not: after a split or merge moto keeps routing records to the closed
parent shard (its `get_shard_for_key` picks the first shard whose range holds the key, open or
closed), so resharding is tested against kinesalite. Installed by `./dev setup` into
deploy/emulators/node_modules.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from core.errors import ConfigError
from emulators.moto import LOOPBACK, ChildServer

_BIN = Path(__file__).resolve().parents[1] / "deploy/emulators/node_modules/kinesalite/cli.js"


class Kinesalite(ChildServer):
    """kinesalite with immediate stream state changes."""

    name = "kinesalite"

    def command(self) -> tuple[list[str], dict[str, str]]:
        node = shutil.which("node")
        if node is None or not _BIN.exists():
            raise ConfigError(
                f"kinesalite needs node and {_BIN} (run ./dev setup, which installs it with npm)"
            )
        return [
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
        ], dict(os.environ)

    def ready(self) -> bool:
        socket.create_connection((LOOPBACK, self.port), 1).close()
        return True
