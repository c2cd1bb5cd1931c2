"""The worker's HTTP endpoints: `/healthz`, `/readyz` and (optionally) Prometheus `/metrics`.

- `/healthz`: 200 while the process serves requests (alive).
- `/readyz`: 200 when every shard this worker processes has checkpointed within
  `Metrics.max_checkpoint_age_ms`, or is idle and caught up; else 503. The body is JSON with
  each shard's checkpoint age either way.
- `/metrics`: the totals and gauges of `streams.observe.metrics` in the Prometheus text format;
  counters are `luxflow_<snake_name>_total`, means are summaries (`_sum` in ms, `_count`).

A stdlib `ThreadingHTTPServer` in a daemon thread: a few requests a minute need no framework.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from core.errors import ConfigError
from streams.observe.metrics import COUNTER, GAUGE, SPECS, Dims, Metrics

log = logging.getLogger(__name__)


def prometheus_name(name: str) -> str:
    """RecordsRead -> luxflow_records_read (the _total suffix is the client's)."""
    return "luxflow_" + re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


class MetricsCollector:
    """A prometheus_client collector reading `Metrics` at scrape time."""

    def __init__(self, metrics: Metrics, app_name: str, before_scrape: Callable[[], None]) -> None:
        self._metrics = metrics
        self._app = app_name
        self._before = before_scrape

    def collect(self) -> Iterator[Metric]:
        self._before()
        families: dict[str, Any] = {}

        def family(name: str, dims: Dims) -> Any:
            labels = ["app", *(key.lower() for key, _ in dims)]
            key = f"{name}/{','.join(labels)}"
            if key not in families:
                spec = SPECS[name]
                kind = {COUNTER: CounterMetricFamily, GAUGE: GaugeMetricFamily}.get(
                    spec.kind, SummaryMetricFamily
                )
                families[key] = kind(prometheus_name(name), spec.meaning, labels=labels)
            return families[key]

        metrics = self._metrics
        with metrics.lock:
            totals = dict(metrics.totals)
            gauges = dict(metrics.gauges)
            means = dict(metrics.mean_sums)
        for (name, dims), total in totals.items():
            family(name, dims).add_metric([self._app, *(v for _, v in dims)], total)
        for (name, dims), value in gauges.items():
            family(name, dims).add_metric([self._app, *(v for _, v in dims)], value)
        for (name, dims), (sum_us, count) in means.items():
            family(name, dims).add_metric(
                [self._app, *(v for _, v in dims)], count_value=count, sum_value=sum_us / 1000
            )
        yield from families.values()


class HealthServer:
    """Serves the endpoints on `host:port` from a daemon thread (a context manager)."""

    def __init__(
        self,
        host: str,
        port: int,
        metrics: Metrics,
        *,
        refresh: Callable[[], None],
        prometheus: MetricsCollector | None = None,
        health: bool = True,
    ) -> None:
        self._metrics = metrics
        self._refresh = refresh
        self._registry: CollectorRegistry | None = None
        if prometheus is not None:
            self._registry = CollectorRegistry(auto_describe=False)
            self._registry.register(prometheus)
        self._health = health
        try:
            self._server = ThreadingHTTPServer((host, port), self._handler())
        except OSError as exc:
            raise ConfigError(
                f"cannot serve health/metrics on {host}:{port}: {exc.strerror} "
                "(set LUXFLOW_HEALTH_PORT / LUXFLOW_PROMETHEUS_PORT, 0 turns it off)"
            ) from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"http-{port}", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def respond(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of `path`."""
        if self._health and path == "/healthz":
            return 200, "text/plain", b"ok\n"
        if self._health and path == "/readyz":
            self._refresh()
            readiness = self._metrics.readiness()
            body = orjson.dumps(
                {
                    "ready": readiness.ready,
                    "max_checkpoint_age_ms": readiness.max_checkpoint_age_ms,
                    "checkpoint_age_ms": readiness.checkpoint_age_ms,
                }
            )
            return (200 if readiness.ready else 503), "application/json", body + b"\n"
        if self._registry is not None and path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._registry)
        return 404, "text/plain", b"not found\n"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, content_type, body = server.respond(self.path.split("?", 1)[0])
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("http: " + format, *args)

        return Handler
