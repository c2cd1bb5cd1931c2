"""An HTTP/2 front for kinesalite on 127.0.0.1: the Kinesis the KCL daemon can follow through a
split, a merge and a doubling of the shard count.

Why a front, and why kinesalite behind it (each found by running the daemon and reading its
log, KCL 3.1.3):

- The MultiLangDaemon builds its Kinesis client with `KinesisClientUtil.adjustKinesisClientBuilder`,
  which forces Netty with `Protocol.HTTP2`; no key of the properties file changes that (the
  properties can set the endpoint, not the protocol). kinesalite speaks HTTP/1.1 only, so the
  daemon cannot talk to it directly. hypercorn serves cleartext HTTP/2 with prior knowledge
  (what the daemon sends to an `http://` endpoint) and HTTP/1.1 (what boto3 sends) on one port.
- moto's resharding is not Kinesis's: after a split or merge it keeps routing records to the
  closed parent and never ends a closed shard (no null `NextShardIterator`), so no processor
  would ever reach SHARD_END. kinesalite closes parents and ends them like Kinesis.
- kinesalite 3.3.3 predates `ChildShards`. Since KCL 2.3 the daemon takes a GetRecords answer
  without `NextShardIterator` as the end of the shard only if it names the children, and
  creates the children's leases from them; without them it retries the same read forever. The
  front adds `ChildShards` to such answers, read from kinesalite's own ListShards (a child is a
  shard whose `ParentShardId` or `AdjacentParentShardId` is the ended shard).
- kinesalite has no UpdateShardCount. The front answers it for the one case on-demand scaling
  produces in a test, doubling: every open shard is split at the middle of its hash range.
  Any other target is refused with `InvalidArgumentException`.

Everything else is passed through unchanged. The front learns which shard a GetRecords reads
from the iterators it has seen (GetShardIterator and every `NextShardIterator`), as kinesalite's
iterators are opaque. Run it by hand with `python -m emulators.kinesis_front --upstream URL`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from emulators.moto import LOOPBACK, ChildServer

_TARGET_PREFIX = "Kinesis_20131202."
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "upgrade", "http2-settings", "te", "host"}
)
_ITERATORS_KEPT = 200_000
_REPO_ROOT = Path(__file__).resolve().parents[1]

Answer = tuple[int, list[tuple[str, str]], bytes]
"""An HTTP answer: status, headers, body."""
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class Upstream:
    """HTTP/1.1 to kinesalite: one keep-alive connection per thread."""

    def __init__(self, endpoint: str) -> None:
        parsed = urllib.parse.urlsplit(endpoint)
        self._host = parsed.hostname or LOOPBACK
        self._port = parsed.port or 80
        self._local = threading.local()

    def call(self, headers: dict[str, str], body: bytes) -> Answer:
        for attempt in (0, 1):
            connection = self._connection()
            try:
                connection.request("POST", "/", body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.getheaders(), response.read()
            except (http.client.HTTPException, OSError):
                # A keep-alive connection kinesalite closed: open a new one, once.
                connection.close()
                self._local.connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def target(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Call one Kinesis action on kinesalite; its JSON answer (an error raises)."""
        headers = {
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": _TARGET_PREFIX + action,
            # kinesalite wants a signature to be there; it does not check it.
            "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/kinesis/"
            "aws4_request, SignedHeaders=host, Signature=0",
            "X-Amz-Date": "20260101T000000Z",
        }
        status, _, body = self.call(headers, json.dumps(payload).encode())
        answer: dict[str, Any] = json.loads(body) if body else {}
        if status != 200:
            raise FrontError(status, answer)
        return answer

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=30)
            self._local.connection = connection
        return connection


class FrontError(Exception):
    """An error answer, passed to the client as kinesalite (or Kinesis) would give it."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


class KinesisFront:
    """The ASGI application: kinesalite's answers, plus `ChildShards` and UpdateShardCount."""

    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream
        self._shard_of: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._resharding = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = (await receive())["type"]
                await send({"type": f"{event}.complete"})
                if event == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1")
            for k, v in scope["headers"]
            if k.decode("latin-1").lower() not in _HOP_BY_HOP
        }
        loop = asyncio.get_running_loop()
        status, out_headers, out = await loop.run_in_executor(
            None, self.handle, headers, bytes(body)
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in out_headers
                    if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"
                ]
                + [(b"content-length", str(len(out)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": out})

    def handle(self, headers: dict[str, str], body: bytes) -> Answer:
        action = headers.get("x-amz-target", "").removeprefix(_TARGET_PREFIX)
        json_type = [("Content-Type", "application/x-amz-json-1.1")]
        if action == "UpdateShardCount":
            try:
                answer = self._update_shard_count(json.loads(body))
                return 200, json_type, json.dumps(answer).encode()
            except FrontError as exc:
                return exc.status, json_type, json.dumps(exc.body).encode()
        status, out_headers, out = self._upstream.call(headers, body)
        if status != 200 or action not in ("GetShardIterator", "GetRecords"):
            return status, out_headers, out
        request, answer = json.loads(body), json.loads(out)
        if action == "GetShardIterator":
            self._remember(answer.get("ShardIterator"), (request["StreamName"], request["ShardId"]))
            return status, out_headers, out
        with self._lock:
            shard = self._shard_of.get(request.get("ShardIterator", ""))
        if shard is None:
            return status, out_headers, out
        if answer.get("NextShardIterator"):
            self._remember(answer["NextShardIterator"], shard)
            return status, out_headers, out
        answer["ChildShards"] = self._children(*shard)
        return status, out_headers, json.dumps(answer).encode()

    def _remember(self, iterator: str | None, shard: tuple[str, str]) -> None:
        if not iterator:
            return
        with self._lock:
            self._shard_of[iterator] = shard
            while len(self._shard_of) > _ITERATORS_KEPT:
                self._shard_of.popitem(last=False)

    def _shards(self, stream: str) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = self._upstream.target("ListShards", {"StreamName": stream})[
            "Shards"
        ]
        return shards

    def _children(self, stream: str, shard_id: str) -> list[dict[str, Any]]:
        children = []
        for shard in self._shards(stream):
            parents = [
                p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p
            ]
            if shard_id in parents:
                children.append(
                    {
                        "ShardId": shard["ShardId"],
                        "ParentShards": parents,
                        "HashKeyRange": shard["HashKeyRange"],
                    }
                )
        return children

    def _update_shard_count(self, request: dict[str, Any]) -> dict[str, Any]:
        stream = request["StreamName"]
        with self._resharding:
            open_shards = [
                s
                for s in self._shards(stream)
                if "EndingSequenceNumber" not in s["SequenceNumberRange"]
            ]
            target = int(request["TargetShardCount"])
            if target != 2 * len(open_shards):
                raise FrontError(
                    400,
                    {
                        "__type": "InvalidArgumentException",
                        "message": f"this emulator only doubles the shard count "
                        f"({len(open_shards)} open shards, asked for {target})",
                    },
                )
            for shard in open_shards:
                self._wait_active(stream)
                low = int(shard["HashKeyRange"]["StartingHashKey"])
                high = int(shard["HashKeyRange"]["EndingHashKey"])
                self._upstream.target(
                    "SplitShard",
                    {
                        "StreamName": stream,
                        "ShardToSplit": shard["ShardId"],
                        "NewStartingHashKey": str((low + high + 1) // 2),
                    },
                )
            self._wait_active(stream)
        return {
            "StreamName": stream,
            "CurrentShardCount": len(open_shards),
            "TargetShardCount": target,
        }

    def _wait_active(self, stream: str, timeout_s: float = 30.0) -> None:
        """kinesalite takes a split asynchronously (UPDATING, even with --updateStreamMs 0)
        and refuses the next one until the stream is ACTIVE again."""
        deadline = time.monotonic() + timeout_s
        while True:
            summary = self._upstream.target("DescribeStreamSummary", {"StreamName": stream})
            if summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
                return
            if time.monotonic() > deadline:
                raise FrontError(
                    500, {"__type": "InternalFailure", "message": f"{stream} stayed UPDATING"}
                )
            time.sleep(0.05)


def serve(port: int, upstream: str, host: str = LOOPBACK) -> None:
    """Serve the front on `host:port` (HTTP/1.1 and h2c) until interrupted."""
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = "-"
    config.loglevel = "WARNING"
    # The daemon keeps long-lived HTTP/2 connections with many concurrent streams.
    config.keep_alive_timeout = 300
    config.h2_max_concurrent_streams = 1000
    app = KinesisFront(Upstream(upstream))

    async def main() -> None:
        # Every request waits on kinesalite in a thread; two daemons read many shards at once.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=32))
        await hypercorn_serve(app, config)  # type: ignore[arg-type]

    asyncio.run(main())


class KinesisFrontServer(ChildServer):
    """The front in a child process, in front of the kinesalite at `upstream`."""

    name = "kinesis front"

    def __init__(
        self,
        upstream: str,
        port: int | None = None,
        start_timeout_s: float = 30.0,
        *,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(port, start_timeout_s, log_path=log_path)
        self.upstream = upstream

    def command(self) -> tuple[list[str], dict[str, str]]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_REPO_ROOT), env.get("PYTHONPATH")) if p
        )
        return [
            sys.executable,
            "-m",
            "emulators.kinesis_front",
            "--port",
            str(self.port),
            "--upstream",
            self.upstream,
        ], env

    def ready(self) -> bool:
        connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=1)
        try:
            connection.request("GET", "/")
            connection.getresponse().read()
        finally:
            connection.close()
        return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="HTTP/2 front for kinesalite on 127.0.0.1")
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=4568)
    parser.add_argument("--upstream", required=True, help="kinesalite's URL")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        serve(args.port, args.upstream, args.host)


if __name__ == "__main__":
    main()
