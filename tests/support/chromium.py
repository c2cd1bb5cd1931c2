"""Headless Chromium (the Debian package) driven over the Chrome DevTools protocol: load a
page with extra request headers, return its DOM and a PNG screenshot. Only the few protocol
commands the browser test needs."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from websockets.sync.client import ClientConnection, connect

from emulators.moto import free_port


def chromium_binary() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise AssertionError("chromium is missing: run `./dev chromium` (apt-get install chromium)")
    return path


def render(
    url: str, headers: dict[str, str], *, width: int = 1100, height: int = 1400
) -> tuple[str, bytes]:
    """(outerHTML after load, PNG screenshot) of `url` fetched with `headers`."""
    with devtools(width=width, height=height) as ws:
        ids = itertools.count(1)

        def call(method: str, **params: Any) -> dict[str, Any]:
            message_id = next(ids)
            ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
            while True:
                message = json.loads(ws.recv(timeout=60))
                if message.get("id") == message_id:
                    if "error" in message:
                        raise AssertionError(f"{method}: {message['error']}")
                    result: dict[str, Any] = message.get("result", {})
                    return result

        call("Page.enable")
        call("Network.enable")
        call("Network.setExtraHTTPHeaders", headers=headers)
        call("Page.navigate", url=url)
        deadline = time.monotonic() + 60
        while True:
            state = call("Runtime.evaluate", expression="document.readyState")
            if state["result"].get("value") == "complete":
                break
            assert time.monotonic() < deadline, "the page did not finish loading"
            time.sleep(0.1)
        dom = call("Runtime.evaluate", expression="document.documentElement.outerHTML")
        shot = call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return str(dom["result"]["value"]), base64.b64decode(shot["data"])


@contextmanager
def devtools(*, width: int = 1100, height: int = 1400) -> Iterator[ClientConnection]:
    """A headless Chromium on a free port of 127.0.0.1 and a DevTools connection to its page;
    the browser and its profile are gone when the block ends."""
    port = free_port()
    profile = tempfile.mkdtemp(prefix="luxflow-chromium-")
    process = subprocess.Popen(
        [
            chromium_binary(), "--headless=new", "--no-sandbox", "--disable-gpu",
            "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
            f"--remote-debugging-port={port}", "--remote-debugging-address=127.0.0.1",
            f"--window-size={width},{height}", "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with connect(_page_target(port), max_size=64 * 1024 * 1024, open_timeout=30) as ws:
            yield ws
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)


def _page_target(port: int) -> str:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=1) as r:
                targets = json.loads(r.read())
            for target in targets:
                if target.get("type") == "page":
                    return str(target["webSocketDebuggerUrl"])
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("chromium's DevTools endpoint did not come up")
        time.sleep(0.1)
