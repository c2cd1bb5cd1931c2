"""The daemon's properties file and the launcher's checks, without starting a JVM."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from streams.kcl.daemon import (
    Daemon,
    KclSettings,
    daemon_classpath,
    render_properties,
    write_properties,
)


def settings(**overrides: object) -> KclSettings:
    values: dict[str, object] = {
        "stream_name": "telemetry",
        "application_name": "luxflow-lighting",
        "region": "eu-west-1",
        "executable": ["/app/.venv/bin/luxflow", "kcl-processor"],
    }
    values.update(overrides)
    return KclSettings(**values)  # type: ignore[arg-type]


def parse(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split(" = ", 1) for line in lines)


def test_production_properties() -> None:
    assert parse(render_properties(settings())) == {
        "executableName": "/app/.venv/bin/luxflow kcl-processor",
        "streamName": "telemetry",
        "applicationName": "luxflow-lighting",
        "AwsCredentialsProvider": "DefaultCredentialsProvider",
        "processingLanguage": "python/3",
        "regionName": "eu-west-1",
        "initialPositionInStream": "TRIM_HORIZON",
        "retrievalMode": "POLLING",
        "metricsLevel": "NONE",
        "failoverTimeMillis": "10000",
        "shutdownGraceMillis": "45000",
        "idleTimeBetweenReadsInMillis": "1000",
        "maxRecords": "10000",
        "shardSyncIntervalMillis": "60000",
        "parentShardPollIntervalMillis": "10000",
        "callProcessRecordsEvenForEmptyRecordList": "true",
    }


def test_emulator_endpoints_tuning_and_extra_properties() -> None:
    props = parse(
        render_properties(
            settings(
                kinesis_endpoint="http://127.0.0.1:4566",
                dynamodb_endpoint="http://127.0.0.1:4566",
                retrieval_mode="FANOUT",
                worker_id="worker-a",
                lease_assignment_interval_ms=2000,
                worker_metrics_report_interval_ms=1000,
                extra={"maxLeasesForWorker": "2", "metricsLevel": "SUMMARY"},
            )
        )
    )
    assert props["kinesisEndpoint"] == "http://127.0.0.1:4566"
    assert props["dynamoDBEndpoint"] == "http://127.0.0.1:4566"
    assert props["retrievalMode"] == "FANOUT"
    assert props["workerId"] == "worker-a"
    assert props["leaseAssignmentIntervalMillis"] == "2000"
    assert props["workerMetricsReporterFreqInMillis"] == "1000"
    assert props["maxLeasesForWorker"] == "2"
    assert props["metricsLevel"] == "SUMMARY"  # extra wins


def test_backslashes_are_escaped_for_java_properties() -> None:
    props = parse(render_properties(settings(worker_id="a\\b")))
    assert props["workerId"] == "a\\\\b"


@pytest.mark.parametrize(
    "overrides",
    [
        {"initial_position": "AT_TIMESTAMP"},
        {"retrieval_mode": "PUSH"},
        {"metrics_level": "ALL"},
        {"executable": ["/path with space/luxflow", "kcl-processor"]},
        {"executable": []},
    ],
)
def test_invalid_settings_are_config_errors(overrides: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        settings(**overrides)


def test_line_breaks_in_values_are_refused() -> None:
    with pytest.raises(ConfigError):
        render_properties(settings(stream_name="a\nb"))


def test_write_properties(tmp_path: Path) -> None:
    path = write_properties(tmp_path / "kcl" / "app.properties", settings())
    assert path.read_text() == render_properties(settings())


def test_classpath_needs_the_daemon_jar(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="dev jars"):
        daemon_classpath(tmp_path)
    (tmp_path / "amazon-kinesis-client-multilang-3.1.3.jar").write_bytes(b"")
    assert daemon_classpath(tmp_path) == f"{tmp_path.resolve()}/*"


def test_missing_java_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "amazon-kinesis-client-multilang-3.1.3.jar").write_bytes(b"")
    daemon = Daemon(tmp_path / "p.properties", tmp_path, java="no-such-java-here")
    with pytest.raises(ConfigError, match="JVM"):
        daemon.command()


def test_missing_properties_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="properties"):
        Daemon(tmp_path / "missing.properties", tmp_path).start()


def test_health_check_finds_the_daemon_in_proc(tmp_path: Path) -> None:
    from streams.kcl.liveness import daemon_running

    (tmp_path / "12").mkdir()
    (tmp_path / "12" / "cmdline").write_bytes(b"python\x00-m\x00luxflow\x00")
    assert not daemon_running(tmp_path)
    (tmp_path / "345").mkdir()
    (tmp_path / "345" / "cmdline").write_bytes(
        b"java\x00-cp\x00/app/.jars/*\x00software.amazon.kinesis.multilang.MultiLangDaemon\x00"
    )
    assert daemon_running(tmp_path)
