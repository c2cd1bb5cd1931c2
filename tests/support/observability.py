"""Reading a worker's metrics as an operator's tools would: EMF lines from its output, the
Prometheus text from its /metrics, readiness from /readyz."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def emf_documents(path: Path) -> list[dict[str, Any]]:
    """Every EMF object among the lines of `path` (other lines are logs)."""
    documents = []
    for line in path.read_text().splitlines():
        if line.startswith('{"_aws"'):
            documents.append(json.loads(line))
    return documents


def emf_sums(documents: list[dict[str, Any]], dimension_set: list[str]) -> dict[str, float]:
    """Per metric, the sum of its values over the lines that publish to `dimension_set`,
    with the line's own dimension values as part of the key when more than App."""
    sums: dict[str, float] = defaultdict(float)
    for document in documents:
        directive = document["_aws"]["CloudWatchMetrics"][0]
        if dimension_set not in directive["Dimensions"]:
            continue
        suffix = "".join(f"|{document[d]}" for d in dimension_set if d != "App")
        for metric in directive["Metrics"]:
            sums[metric["Name"] + suffix] += document[metric["Name"]]
    return dict(sums)


def scrape(port: int) -> dict[str, float]:
    """/metrics as {"name{label=value,...}": value}, labels sorted, app left out."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "app")
            values[f"{sample.name}{{{labels}}}"] = sample.value
    return values


def total(values: dict[str, float], name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    result = 0.0
    for key, value in values.items():
        sample_name, _, label_text = key.partition("{")
        if sample_name != name:
            continue
        pairs = dict(p.split("=", 1) for p in label_text.rstrip("}").split(",") if p)
        if all(pairs.get(k) == v for k, v in labels.items()):
            result += value
    return result


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
