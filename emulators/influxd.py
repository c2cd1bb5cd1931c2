"""InfluxDB OSS 1.8.10 on 127.0.0.1: the stand-in for Amazon Timestream for InfluxDB.

`./dev influxd` builds it once from the Go module proxy into `.tools/bin/influxd` (stamped by
version); the launcher never builds. It serves `/api/v2/write` (line protocol, `Authorization:
Token user:password`) and InfluxQL on `/query`, like the managed service. Each instance gets
its own data directory, an admin user (`ADMIN_USER`/`ADMIN_PASSWORD`) and auth enabled, so a
bad token is refused as it would be in production. `stop()` then `start()` again keeps the
data (same directory, same port): that is how tests take the server down and bring it back.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from core.errors import ConfigError
from emulators.moto import LOOPBACK, ChildServer, free_port

INFLUXD_VERSION = "1.8.10"
REPO_ROOT = Path(__file__).resolve().parents[1]
INFLUXD_BIN = REPO_ROOT / ".tools" / "bin" / "influxd"
ADMIN_USER = "luxflow"
ADMIN_PASSWORD = "luxflow-local-only"


def influxd_binary() -> Path:
    """The influxd `./dev influxd` built, else one on the PATH."""
    path = INFLUXD_BIN
    if not path.exists():
        found = shutil.which("influxd")
        if found is None:
            raise ConfigError(
                f"influxd {INFLUXD_VERSION} is missing at {path}: run `./dev influxd` "
                "(go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10)"
            )
        path = Path(found)
    return path


def _config(data_dir: Path, http_port: int, rpc_port: int) -> str:
    return f"""reporting-disabled = true
bind-address = "{LOOPBACK}:{rpc_port}"

[meta]
  dir = "{data_dir}/meta"

[data]
  dir = "{data_dir}/data"
  wal-dir = "{data_dir}/wal"
  query-log-enabled = false
  trace-logging-enabled = false

[http]
  enabled = true
  bind-address = "{LOOPBACK}:{http_port}"
  auth-enabled = true
  log-enabled = false
  flux-enabled = false

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false
"""


class Influxd(ChildServer):
    """influxd with auth on, its own data directory and an admin user.

    `token` is the `Token user:password` credential of the admin; `endpoint` the base URL.
    """

    name = "influxd"

    def __init__(
        self,
        port: int | None = None,
        start_timeout_s: float = 30.0,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(port, start_timeout_s, log_path=log_path)
        self._owns_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="luxflow-influxd-"))
        self._rpc_port = free_port()
        self.token = f"{ADMIN_USER}:{ADMIN_PASSWORD}"
        self._admin_ready = False

    def command(self) -> tuple[list[str], dict[str, str]]:
        binary = influxd_binary()
        config = self.data_dir / "influxdb.conf"
        config.write_text(_config(self.data_dir, self.port, self._rpc_port))
        return [str(binary), "-config", str(config)], dict(os.environ)

    def ready(self) -> bool:
        urllib.request.urlopen(f"{self.endpoint}/ping", timeout=1).close()
        return True

    def start(self) -> Influxd:
        super().start()
        if not self._admin_ready:
            self._create_admin()
            self._admin_ready = True
        return self

    def _create_admin(self) -> None:
        """With auth on and no user yet, InfluxDB 1.8 accepts exactly this statement."""
        statement = f"CREATE USER {ADMIN_USER} WITH PASSWORD '{ADMIN_PASSWORD}' WITH ALL PRIVILEGES"
        data = urllib.parse.urlencode({"q": statement}).encode()
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/query", data=data, timeout=5).close()
                return
            except urllib.error.HTTPError as exc:
                if time.monotonic() > deadline:
                    raise ConfigError(f"influxd refused to create its admin user: {exc}") from exc
                time.sleep(0.1)

    def cleanup(self) -> None:
        """Stop and remove the data directory if this instance created it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
