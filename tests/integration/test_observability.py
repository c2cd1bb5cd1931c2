"""Metrics of a real `luxflow worker` (child process, moto on 127.0.0.1) with a known input:
the EMF lines on its stdout and the values scraped from its /metrics equal the known counts,
and every metric the CDK app alarms on is emitted with the dimension set [App]."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sim.malformed import MALFORMED_SAMPLES
from streams.observe.metrics import ALARM_METRICS, NAMESPACE
from tests.support.deployment import ROOT, Deployment, recent_params
from tests.support.observability import emf_documents, emf_sums, free_port, scrape, total

pytestmark = pytest.mark.integration

LATE = 6
"""Assets unknown to the registry, each sending two readings of the first simulated minutes
after everything else: the second one adds usage to an hour closed long ago, a late record."""

WINDOW_CLOSE_CHECKPOINTS = 2 * 2
"""At most: 2 shards x 2 window ends (the first hour; midnight when the data spans it)."""


def late_records(records: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    first = json.loads(records[0][1])
    second = next(
        doc
        for doc in (json.loads(data) for _pk, data in records[1:])
        if doc["asset_id"] == first["asset_id"]
    )
    late = []
    for n in range(LATE):
        for doc in (first, second):
            late.append((records[0][0], json.dumps({**doc, "asset_id": f"late-{n}"}).encode()))
    return late


@dataclass
class Run:
    deployment: Deployment
    sent: int
    prometheus: dict[str, float]
    emf: list[dict[str, Any]]
    dead_by_origin: Counter[str]
    shards_with_records: int


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def run(
    moto_endpoint: str, aws: Callable[[str], Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("observability")
    deployment = Deployment(moto_endpoint, aws, f"obs-{time.time_ns() % 10**9}", tmp)
    deployment.setup(shards=2)
    simulation, _truth = deployment.simulation(recent_params(sites=2, hours=2, fault_count=0))
    records = list(simulation.records())
    late = late_records(records)
    malformed = [("site-x", sample) for sample in MALFORMED_SAMPLES.values()]
    sent = deployment.send(records) + deployment.send(malformed) + deployment.send(late)
    port = free_port()
    env = {
        **deployment.env,
        "LUXFLOW_HEALTH_PORT": str(port),
        "LUXFLOW_HEALTH_HOST": "127.0.0.1",
        "LUXFLOW_PROMETHEUS_PORT": str(port),
        "LUXFLOW_METRICS_FLUSH_INTERVAL_MS": "2000",
        # No checkpoint by time: only when a window closes with reports, and at the stop.
        "LUXFLOW_CHECKPOINT_INTERVAL_MS": "3600000",
    }
    out = tmp / "worker.out"
    with out.open("wb") as stdout, (tmp / "worker.err").open("wb") as stderr:
        worker = subprocess.Popen(
            [sys.executable, "-m", "app", "worker"], cwd=ROOT, env=env, stdout=stdout, stderr=stderr
        )
        try:

            def all_read() -> bool:
                assert worker.poll() is None, (tmp / "worker.err").read_text()[-3000:]
                try:
                    return total(scrape(port), "luxflow_records_read_total") >= sent
                except OSError:
                    return False

            wait_for(all_read, f"{sent} records read")
            prometheus = scrape(port)
            # A periodic flush while the shards are held (the one at the stop has released
            # them, so it carries only their last increases).
            flushed = len(emf_documents(out))
            wait_for(lambda: len(emf_documents(out)) > flushed, "a periodic EMF flush")
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=120)
    assert worker.returncode == 0, (tmp / "worker.err").read_text()[-3000:]
    dead = Counter(letter.origin for letter in deployment.dead_letters())
    shards = {letter.shard_id for letter in deployment.dead_letters()}
    yield Run(deployment, sent, prometheus, emf_documents(out), dead, len(shards) or 2)


def test_prometheus_counts_equal_the_known_input(run: Run) -> None:
    values = run.prometheus
    assert total(values, "luxflow_records_read_total") == run.sent
    assert total(values, "luxflow_records_processed_total") == run.sent - len(MALFORMED_SAMPLES)
    assert total(values, "luxflow_late_records_total") == LATE
    # Dead letters by reason, and the total on the shard series, equal the known input...
    assert total(values, "luxflow_dead_letters_total", reason="decode") == len(MALFORMED_SAMPLES)
    assert total(values, "luxflow_dead_letters_total", reason="late") == LATE
    shard_series = {k: v for k, v in values.items() if "reason=" not in k}
    assert total(shard_series, "luxflow_dead_letters_total") == len(MALFORMED_SAMPLES) + LATE
    # ... and what the dead-letter table holds once the worker stopped.
    assert run.dead_by_origin == Counter({"decode": len(MALFORMED_SAMPLES), "late": LATE})
    assert total(values, "luxflow_shards_held") == 2
    assert total(values, "luxflow_unknown_assets") == LATE
    # The interval is an hour: the only checkpoints before the stop are those of windows that
    # closed with reports, at most one per shard per window end the 2 hours of data pass (the
    # first hour, and midnight when it falls inside).
    assert total(values, "luxflow_checkpoints_total") <= WINDOW_CLOSE_CHECKPOINTS


def test_emf_lines_equal_the_known_input(run: Run) -> None:
    app = run.deployment.env["LUXFLOW_APP_NAME"]
    assert run.emf, "no EMF line on stdout"
    for document in run.emf:
        directive = document["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == NAMESPACE
        assert document["App"] == app
        for dimension_set in directive["Dimensions"]:
            assert all(name in document for name in dimension_set)
        assert all(isinstance(document[m["Name"]], int | float) for m in directive["Metrics"])
    app_only = emf_sums(run.emf, ["App"])
    assert app_only["RecordsRead"] == run.sent
    assert app_only["RecordsProcessed"] == run.sent - len(MALFORMED_SAMPLES)
    assert app_only["LateRecords"] == LATE
    assert app_only["DeadLetters"] == len(MALFORMED_SAMPLES) + LATE
    assert app_only["SinkErrors"] == 0
    # Both shards checkpointed (the lease table agrees); EMF counts the window-close
    # checkpoints plus at most one stop checkpoint per shard with work pending.
    checkpointed = run.deployment.checkpointed_shards()
    assert checkpointed == 2
    assert checkpointed <= app_only["Checkpoints"] <= WINDOW_CLOSE_CHECKPOINTS + checkpointed
    by_reason = emf_sums(run.emf, ["App", "Reason"])
    assert by_reason == {"DeadLetters|decode": len(MALFORMED_SAMPLES), "DeadLetters|late": LATE}


def alarm_metric_names() -> set[str]:
    """The CDK app's alarm metrics (infra/metric-names.json, once the infra branch is merged)
    and our own list of the four alarm metrics."""
    names = set(ALARM_METRICS)
    spec = ROOT / "infra" / "metric-names.json"
    if spec.exists():
        names |= {entry["name"] for entry in json.loads(spec.read_text())}
    return names


def test_every_metric_the_infrastructure_names_is_emitted_for_app(run: Run) -> None:
    emitted = {
        metric["Name"]
        for document in run.emf
        if ["App"] in document["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
        for metric in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    }
    names = alarm_metric_names()
    assert set(ALARM_METRICS) <= names
    assert names - emitted == set()


def test_metric_names_file_lists_names_only_we_know(tmp_path: Path) -> None:
    from streams.observe.metrics import SPECS

    spec = ROOT / "infra" / "metric-names.json"
    if spec.exists():
        unknown = {e["name"] for e in json.loads(spec.read_text())} - SPECS.keys()
        assert unknown == set()
        units = {e["name"]: e.get("unit") for e in json.loads(spec.read_text())}
        assert all(units[n] in (None, SPECS[n].unit) for n in units)
    assert set(ALARM_METRICS) <= SPECS.keys()


def test_luxflow_status_shows_every_shard(run: Run) -> None:
    deployment = run.deployment
    rows = json.loads(deployment.luxflow("status", "--json").stdout)
    leases = deployment.leases()
    assert sorted(r["shard_id"] for r in rows) == sorted(leases)
    for row in rows:
        lease = leases[row["shard_id"]]
        assert row["owner"] is None  # the worker stopped and released its leases
        assert row["checkpoint"] == str(lease["checkpoint"])
        assert row["lag_ms"] == 0  # nothing after the checkpoint
        assert row["snapshot_at_checkpoint"] is True
        assert row["last_checkpoint_age_ms"] >= 0
    assert sum(r["dead_letters_last_hour"] for r in rows) == len(MALFORMED_SAMPLES) + LATE
    text = deployment.luxflow("status").stdout
    assert text.splitlines()[0].split() == [
        "shard",
        "owner",
        "checkpoint",
        "lag",
        "ckpt",
        "age",
        "dead/1h",
    ]
    assert len(text.splitlines()) == len(rows) + 1
