"""Emulated AWS on 127.0.0.1 for `luxflow demo` and the integration tests.

A moto server (Kinesis, DynamoDB, Timestream) runs as a child process on a free loopback port,
so the worker, the simulator and the tests reach it over real HTTP with real boto3 clients.
Nothing here is used against real AWS.

`MotoServer(http2=True)` serves the same moto application through hypercorn instead of
Werkzeug, so one process (one set of moto backends) answers HTTP/1.1 for boto3 and cleartext
HTTP/2 with prior knowledge (h2c) for the KCL MultiLangDaemon, whose Kinesis client speaks
HTTP/2 only. Run it by hand with `python -m emulators.moto --port 4566`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

from core.errors import ConfigError

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


_REPO_ROOT = Path(__file__).resolve().parents[1]


class ChildServer:
    """An emulator in a child process on a free 127.0.0.1 port; a context manager.

    Subclasses say how to start it (`command`) and how to tell it is ready (`ready`).
    `endpoint` is the URL to give boto3 as `endpoint_url`.
    """

    name = "emulator"
    own_session = False
    """True: the server gets a session of its own, so a Ctrl-C in the terminal reaches only
    the process that started it, which then stops its users before the server (the
    playground). False (tests): a signal to the whole process group ends the server too."""

    def __init__(
        self,
        port: int | None = None,
        start_timeout_s: float = 30.0,
        *,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://{LOOPBACK}:{self.port}"
        self._log_path = log_path
        self._start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    def command(self) -> tuple[list[str], dict[str, str]]:
        """The command line and environment of the child process."""
        raise NotImplementedError

    def ready(self) -> bool:
        """True once the server answers; may raise OSError while it does not."""
        raise NotImplementedError

    def start(self) -> Self:
        command, env = self.command()
        log = open(self._log_path, "ab") if self._log_path else None  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                command,
                stdout=log or subprocess.DEVNULL,
                stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
                env=env,
                start_new_session=self.own_session,
            )
        finally:
            if log is not None:
                log.close()
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ConfigError(f"{self.name} exited with code {self._process.returncode}")
            with contextlib.suppress(OSError):
                if self.ready():
                    return self
            time.sleep(0.1)
        self.stop()
        raise ConfigError(f"{self.name} did not answer on {self.endpoint} within the timeout")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class MotoServer(ChildServer):
    """moto server (Kinesis, DynamoDB, Timestream, ...) in a child process.

    With `http2=True` the server is hypercorn (HTTP/1.1 and h2c on the same port), which the
    KCL daemon needs; `log_path` keeps the server's output there instead of discarding it.
    """

    name = "moto server"

    def __init__(
        self,
        port: int | None = None,
        start_timeout_s: float = 30.0,
        *,
        http2: bool = False,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(port, start_timeout_s, log_path=log_path)
        self.http2 = http2

    def command(self) -> tuple[list[str], dict[str, str]]:
        try:
            import moto.server  # noqa: F401  (fail here, clearly, when the extra is missing)
        except ImportError as exc:
            raise ConfigError(
                "emulated AWS needs the 'emulators' extra: pip install 'luxflow[emulators]'"
            ) from exc
        env = dict(os.environ, MOTO_ALLOW_NONEXISTENT_REGION="true")
        if not self.http2:
            return [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self.port)], env
        import hypercorn  # noqa: F401  (same reason as above)

        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_REPO_ROOT), env.get("PYTHONPATH")) if p
        )
        return [sys.executable, "-m", "emulators.moto", "--port", str(self.port)], env

    def ready(self) -> bool:
        urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1).close()
        return True


def emulator_env(endpoint: str) -> dict[str, str]:
    """Environment for a luxflow process that should talk to the emulator at `endpoint`."""
    return {
        "LUXFLOW_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def serve_http2(port: int, host: str = LOOPBACK) -> None:
    """Serve moto's WSGI app through hypercorn: HTTP/1.1 and cleartext HTTP/2 on one port.

    hypercorn switches a connection to HTTP/2 when it opens with the HTTP/2 preface (prior
    knowledge, what the AWS SDK's Netty client sends to an `http://` endpoint) or asks for an
    `Upgrade: h2c`; every other connection stays HTTP/1.1. Blocks until interrupted.
    """
    # Imported here: only the emulator extra has them, and only this child process needs them.
    from hypercorn.asyncio import serve
    from hypercorn.config import Config
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        create_backend_app,
    )

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = "-"
    config.loglevel = "WARNING"
    # The daemon keeps long-lived HTTP/2 connections and many concurrent streams.
    config.keep_alive_timeout = 300
    config.h2_max_concurrent_streams = 1000
    config.wsgi_max_body_size = 64 * 1024 * 1024
    app = DomainDispatcherApplication(create_backend_app)
    asyncio.run(serve(app, config, mode="wsgi"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto on 127.0.0.1, HTTP/1.1 + h2c (hypercorn)")
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=4566)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")
    with contextlib.suppress(KeyboardInterrupt):
        serve_http2(args.port, args.host)


if __name__ == "__main__":
    main()
