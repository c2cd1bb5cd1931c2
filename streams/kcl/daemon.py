"""Run the Amazon KCL MultiLangDaemon: its properties file, and the JVM as a child process.

The daemon (Java, jars from Maven Central via `deploy/kcl/pom.xml`) owns leases, balancing,
failover and resharding, and starts `executable` once per leased shard; that executable is
`luxflow kcl-processor`, which speaks the protocol through `streams.kcl.bridge`.

Against emulated AWS the JVM needs `EMULATOR_JAVA_OPTIONS`: the daemon's Kinesis client would
otherwise encode its calls in CBOR, which moto does not read.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final

from core.errors import ConfigError

MAIN_CLASS: Final = "software.amazon.kinesis.multilang.MultiLangDaemon"
DAEMON_JAR_PREFIX: Final = "amazon-kinesis-client-multilang-"
EMULATOR_JAVA_OPTIONS: Final = ("-Daws.cborEnabled=false",)

INITIAL_POSITIONS: Final = frozenset({"TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"})
RETRIEVAL_MODES: Final = frozenset({"POLLING", "FANOUT"})
METRICS_LEVELS: Final = frozenset({"NONE", "SUMMARY", "DETAILED"})


@dataclass(frozen=True)
class KclSettings:
    """What the daemon needs to know; built by the composition root from luxflow's settings.

    `application_name` is also the lease table's name (KCL 3 adds the tables
    `<application_name>-CoordinatorState` and `<application_name>-WorkerMetricStats`).
    `executable` is the command the daemon runs per shard; the daemon splits it on spaces, so
    no argument may contain whitespace. Endpoints are only for emulators.

    A new lease starts at `initial_position`. AT_TIMESTAMP needs `at_timestamp_ms`, which the
    daemon also uses for every existing lease whose checkpoint is the AT_TIMESTAMP sentinel
    (what `luxflow replay --from TIME` leaves): the lease table holds no timestamp the KCL
    reads, only its configuration does. The multilang properties take it in whole epoch
    seconds (`initialPositionInStreamExtended`), so it must be a whole second.
    """

    stream_name: str
    application_name: str
    region: str
    executable: Sequence[str]
    initial_position: str = "TRIM_HORIZON"
    at_timestamp_ms: int | None = None
    retrieval_mode: str = "POLLING"
    metrics_level: str = "NONE"
    kinesis_endpoint: str | None = None
    dynamodb_endpoint: str | None = None
    worker_id: str | None = None
    failover_time_ms: int = 10_000
    # How long the JVM's SIGTERM hook waits for processors to flush and checkpoint. The ECS
    # task's stopTimeout must exceed it (deploy/ecs/README.md).
    shutdown_grace_ms: int = 45_000
    idle_time_between_reads_ms: int = 1_000
    max_records: int = 10_000
    shard_sync_interval_ms: int = 60_000
    parent_shard_poll_interval_ms: int = 10_000
    # KCL 3's leader assigns leases every interval, using the workers' metrics reports; the
    # defaults (2 x failover time, 30 s) make a fresh fleet wait about a minute.
    lease_assignment_interval_ms: int | None = None
    worker_metrics_report_interval_ms: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.initial_position not in INITIAL_POSITIONS:
            raise ConfigError(
                f"KCL initial position {self.initial_position!r}: use one of "
                f"{sorted(INITIAL_POSITIONS)}"
            )
        timestamped = self.initial_position == "AT_TIMESTAMP"
        if timestamped != (self.at_timestamp_ms is not None):
            raise ConfigError("KCL initial position: a timestamp goes with AT_TIMESTAMP only")
        if self.at_timestamp_ms is not None and self.at_timestamp_ms % 1000:
            raise ConfigError(
                f"KCL AT_TIMESTAMP {self.at_timestamp_ms} ms: the daemon takes whole seconds"
            )
        if self.retrieval_mode not in RETRIEVAL_MODES:
            raise ConfigError(
                f"KCL retrieval mode {self.retrieval_mode!r}: not one of POLLING, FANOUT"
            )
        if self.metrics_level not in METRICS_LEVELS:
            raise ConfigError(
                f"KCL metrics level {self.metrics_level!r}: not one of {sorted(METRICS_LEVELS)}"
            )
        if not self.executable or any(
            not a or any(c.isspace() for c in a) for a in self.executable
        ):
            raise ConfigError(
                f"KCL executable {list(self.executable)!r}: the daemon splits it on spaces, "
                "so no argument may be empty or contain whitespace"
            )


def render_properties(settings: KclSettings) -> str:
    """The daemon's properties file for `settings`, as text."""
    entries: dict[str, str] = {
        "executableName": " ".join(settings.executable),
        "streamName": settings.stream_name,
        "applicationName": settings.application_name,
        "AwsCredentialsProvider": "DefaultCredentialsProvider",
        "processingLanguage": "python/3",
        "regionName": settings.region,
        "retrievalMode": settings.retrieval_mode,
        "metricsLevel": settings.metrics_level,
        "failoverTimeMillis": str(settings.failover_time_ms),
        "shutdownGraceMillis": str(settings.shutdown_grace_ms),
        "idleTimeBetweenReadsInMillis": str(settings.idle_time_between_reads_ms),
        "maxRecords": str(settings.max_records),
        "shardSyncIntervalMillis": str(settings.shard_sync_interval_ms),
        "parentShardPollIntervalMillis": str(settings.parent_shard_poll_interval_ms),
        # Empty batches let quiet shards close windows by processing time and checkpoint.
        "callProcessRecordsEvenForEmptyRecordList": "true",
    }
    optional = {
        # The timestamped form is its own property (epoch seconds); setting both would leave
        # the result to the order in which the daemon applies them.
        "initialPositionInStream": None
        if settings.at_timestamp_ms is not None
        else settings.initial_position,
        "initialPositionInStreamExtended": None
        if settings.at_timestamp_ms is None
        else str(settings.at_timestamp_ms // 1000),
        "kinesisEndpoint": settings.kinesis_endpoint,
        "dynamoDBEndpoint": settings.dynamodb_endpoint,
        "workerId": settings.worker_id,
        "leaseAssignmentIntervalMillis": _opt(settings.lease_assignment_interval_ms),
        "workerMetricsReporterFreqInMillis": _opt(settings.worker_metrics_report_interval_ms),
    }
    entries.update({k: v for k, v in optional.items() if v is not None})
    entries.update(settings.extra)
    lines = ["# Written by luxflow (streams.kcl.daemon); regenerated at every start."]
    lines += [f"{key} = {_escape(key, value)}" for key, value in entries.items()]
    return "\n".join(lines) + "\n"


def write_properties(path: str | os.PathLike[str], settings: KclSettings) -> Path:
    """Write the daemon's properties file for `settings` to `path`; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_properties(settings), encoding="utf-8")
    return target


def _opt(value: int | None) -> str | None:
    return None if value is None else str(value)


def _escape(key: str, value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ConfigError(f"KCL property {key}: value contains a line break")
    # java.util.Properties treats a backslash as an escape character.
    return value.replace("\\", "\\\\")


def daemon_classpath(jars_dir: str | os.PathLike[str]) -> str:
    """The JVM classpath for the jars in `jars_dir`; `ConfigError` if the daemon is not there."""
    directory = Path(jars_dir)
    if not any(directory.glob(f"{DAEMON_JAR_PREFIX}*.jar")):
        raise ConfigError(
            f"no {DAEMON_JAR_PREFIX}*.jar in {directory}: fetch the KCL jars with `./dev jars`"
        )
    return f"{directory.resolve()}/*"


class Daemon:
    """The MultiLangDaemon as a child process; a context manager.

    `stop()` sends SIGTERM: the JVM's shutdown hook asks every shard processor to flush and
    checkpoint (shutdownRequested) for up to `shutdownGraceMillis`, then exits; SIGKILL follows
    only after `timeout_s`. `kill()` is SIGKILL at once, the crash a test injects.
    """

    def __init__(
        self,
        properties_path: str | os.PathLike[str],
        jars_dir: str | os.PathLike[str],
        *,
        java: str = "java",
        java_options: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.properties_path = Path(properties_path)
        self._jars_dir = jars_dir
        self._java = java
        self._java_options = tuple(java_options)
        self._env = dict(env) if env is not None else None
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        java = shutil.which(self._java)
        if java is None:
            raise ConfigError(f"the KCL runner needs a JVM: {self._java!r} is not on PATH")
        return [
            java,
            *self._java_options,
            "-cp",
            daemon_classpath(self._jars_dir),
            MAIN_CLASS,
            "--properties-file",
            str(self.properties_path),
        ]

    def start(self) -> Daemon:
        if not self.properties_path.is_file():
            raise ConfigError(f"KCL properties file {self.properties_path} does not exist")
        command = self.command()
        log = open(self._log_path, "ab") if self._log_path else None  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT if log else None,
                env=self._env,
            )
        finally:
            if log is not None:
                log.close()
        return self

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def poll(self) -> int | None:
        """The exit code, or None while the daemon runs (or was never started)."""
        return self._process.poll() if self._process is not None else None

    def wait(self, timeout_s: float | None = None) -> int:
        if self._process is None:
            raise ConfigError("the KCL daemon was not started")
        return self._process.wait(timeout=timeout_s)

    def signal(self, signum: int) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signum)

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """Graceful stop (SIGTERM), then SIGKILL after `timeout_s`; returns the exit code."""
        if self._process is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self._process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int | None:
        """SIGKILL: no shutdown hook, no final checkpoints. The shard processors see their
        stdin close and exit; another worker takes the leases after the failover time."""
        if self._process is None:
            return None
        self.signal(signal.SIGKILL)
        return self._process.wait()

    def run(self) -> int:
        """Start, pass SIGTERM and SIGINT on to the JVM, and wait for it: for a process whose
        only job is the daemon (`luxflow worker --runner kcl`, PID 1 in the container)."""
        self.start()
        previous = {
            signum: signal.signal(signum, lambda s, _f: self.signal(s))
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            return self.wait()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_daemon(
    settings: KclSettings,
    *,
    jars_dir: str | os.PathLike[str],
    properties_path: str | os.PathLike[str],
    java_options: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> int:
    """Write the properties for `settings`, run the daemon until it exits (SIGTERM and SIGINT
    are passed on for a graceful stop), and return its exit code.

    With a `kinesis_endpoint` (emulated AWS) the JVM also gets `EMULATOR_JAVA_OPTIONS`.
    """
    write_properties(properties_path, settings)
    options = tuple(java_options)
    if settings.kinesis_endpoint is not None:
        options = (*EMULATOR_JAVA_OPTIONS, *options)
    return Daemon(properties_path, jars_dir, java_options=options, env=env).run()
