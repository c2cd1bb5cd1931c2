"""Metrics, health endpoints and status files of a worker, wired from the settings.

Local runner (`luxflow worker`): the metrics timer reads the runner's shards directly.
KCL runner (`luxflow worker --runner kcl`): each shard processor writes a status file into
the worker's status directory (`status_dir`) and the worker process reads them; the
processors never write metrics (their stdout is the daemon's protocol channel).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from core.errors import ConfigError
from lighting.registry import RegistryCache
from lighting.settings import Settings
from streams.observe.emf import EmfWriter, MetricsLoop
from streams.observe.http import HealthServer, MetricsCollector
from streams.observe.metrics import Metrics, WorkerStatus
from streams.observe.status import RegistryStats

EMF_TARGETS = ("stdout", "stderr", "off")


def registry_stats(registry: RegistryCache) -> RegistryStats:
    return lambda: (registry.loaded_ms, registry.unknown_asset_count)


def status_dir(settings: Settings) -> Path:
    """Where the KCL runner's shard processors write their status files."""
    return Path(tempfile.gettempdir()) / f"luxflow-{settings.app_name}-{settings.owner}-status"


def max_checkpoint_age_ms(settings: Settings) -> int:
    return settings.readiness_checkpoint_intervals * settings.checkpoint_interval_ms


class Observability:
    """The metrics timer (EMF) and the HTTP endpoints of one worker; a context manager."""

    def __init__(self, settings: Settings, read_status: Callable[[], WorkerStatus]) -> None:
        if settings.metrics_emf not in EMF_TARGETS:
            raise ConfigError(
                f"LUXFLOW_METRICS_EMF must be one of {', '.join(EMF_TARGETS)}, "
                f"not {settings.metrics_emf!r}"
            )
        if settings.metrics_flush_interval_ms <= 0 or settings.readiness_checkpoint_intervals <= 0:
            raise ConfigError(
                "LUXFLOW_METRICS_FLUSH_INTERVAL_MS and LUXFLOW_READINESS_CHECKPOINT_INTERVALS "
                "must be positive"
            )
        self.metrics = Metrics(max_checkpoint_age_ms=max_checkpoint_age_ms(settings))
        writer = None
        if settings.metrics_emf != "off":
            stream = sys.stdout if settings.metrics_emf == "stdout" else sys.stderr
            writer = EmfWriter(settings.app_name, settings.owner, stream.buffer)
        self.loop = MetricsLoop(
            read_status,
            self.metrics,
            writer,
            flush_interval_ms=settings.metrics_flush_interval_ms,
        )
        self.servers: list[HealthServer] = []
        collector = MetricsCollector(self.metrics, settings.app_name, self.loop.sample)
        health, prometheus = settings.health_port, settings.prometheus_port
        if health:
            self.servers.append(
                HealthServer(
                    settings.health_host,
                    health,
                    self.metrics,
                    refresh=self.loop.sample,
                    prometheus=collector if prometheus == health else None,
                )
            )
        if prometheus and prometheus != health:
            self.servers.append(
                HealthServer(
                    settings.health_host,
                    prometheus,
                    self.metrics,
                    refresh=self.loop.sample,
                    prometheus=collector,
                    health=False,
                )
            )

    def __enter__(self) -> Observability:
        self.loop.start()
        for server in self.servers:
            server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for server in self.servers:
            server.stop()
        self.loop.stop()
