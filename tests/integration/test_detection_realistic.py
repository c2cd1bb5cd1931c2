"""`luxflow evaluate --realistic --json` through the CLI: the realistic fleet (120 lamps, 26 h,
452k deliveries) through the real app in-process, continuous run without idle close."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KINDS = (
    "energy_spike:power_above_threshold",
    "energy_spike:power_above_baseline",
    "fault_code",
    "flicker",
    "offline",
)


@pytest.mark.detection
def test_evaluate_realistic_meets_the_detection_goals() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "app", "evaluate", "--realistic", "--json", "--hours", "26"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    result = json.loads(done.stdout)  # stdout is one JSON object, nothing else
    kinds = result["kinds"]
    for kind in KINDS:
        assert kinds[kind]["expected"] > 0, kind
        assert kinds[kind]["precision"] >= 0.99 and kinds[kind]["recall"] >= 0.99, kinds[kind]
    assert kinds["blip_spikes"] == 0
    assert result["fleet"]["late_records"] == 0
    # Reports are written once end + grace (600 s) has passed, within one checkpoint interval
    # (5 s) on the event clock: the checkpoint follows the batch that closed the window.
    for name, lag_ms in result["report_lag_ms"].items():
        assert 600_000 < lag_ms <= 600_000 + 5_000, name
    energy = result["energy"]
    # Counter windows: the deltas are exact and the split at each bound is refined by the
    # readings after it, so every asset-hour and day is within 0.5 % of the true energy.
    assert energy["counter_1d"]["within_0.5%"] == 1.0
    assert energy["counter_1h"]["within_0.5%"] == 1.0
    assert energy["counter_1h"]["windows"] > 900
    assert energy["estimator_1d"]["within_0.5%"] == 1.0
    assert done.returncode == 0, done.stderr[-2000:]
