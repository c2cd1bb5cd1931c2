"""A headless Chromium session one can drive: navigate, evaluate JavaScript, wait until an
expression holds, take a screenshot. Over the Chrome DevTools protocol, like
`tests.support.chromium.render`, but the page stays open between calls (a page that refreshes
itself is watched, not reloaded)."""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from websockets.sync.client import ClientConnection

from tests.support.chromium import devtools


class Browser:
    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        self._ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=60))
            if message.get("id") == message_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def evaluate(self, expression: str) -> Any:
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in reply:
            raise AssertionError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout_s: float = 120) -> Any:
        """The first truthy value of `expression`; fails naming `what` after `timeout_s` (a
        bound on waiting, not a timing goal)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                value = self.evaluate(expression)
            except AssertionError:
                value = None  # the document is being replaced (a navigation)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"the page never showed {what}")
            time.sleep(0.25)

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", f"{url} loaded", 60)

    def screenshot(self, height: int | None = None) -> bytes:
        """PNG of the whole page, or of its top `height` pixels."""
        options: dict[str, Any] = {"format": "png", "captureBeyondViewport": height is None}
        if height is not None:
            width = int(self.evaluate("document.documentElement.clientWidth"))
            options["clip"] = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        shot = self.call("Page.captureScreenshot", **options)
        return base64.b64decode(shot["data"])


@contextmanager
def browser(*, width: int = 1100, height: int = 1400) -> Iterator[Browser]:
    with devtools(width=width, height=height) as ws:
        session = Browser(ws)
        session.call("Page.enable")
        yield session
