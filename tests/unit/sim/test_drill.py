"""The drill's modelled values are the CDK app's, and its totals add up."""

from __future__ import annotations

import re
from pathlib import Path

from sim.dr import drill

INFRA = Path(__file__).resolve().parents[3] / "infra" / "lib"


def ts_constant(file: str, name: str) -> str:
    match = re.search(rf"export const {name} = (.+);", (INFRA / file).read_text())
    assert match, name
    return match.group(1)


def test_the_modelled_values_are_the_cdk_apps() -> None:
    assert int(ts_constant("device-domain.ts", "DEVICE_DNS_TTL_SECONDS")) == drill.DEVICE_DNS_TTL_S
    assert (
        int(ts_constant("device-domain.ts", "HEALTH_CHECK_INTERVAL_SECONDS"))
        == drill.HEALTH_CHECK_INTERVAL_S
    )
    assert (
        int(ts_constant("device-domain.ts", "HEALTH_CHECK_FAILURES")) == drill.HEALTH_CHECK_FAILURES
    )
    assert ts_constant("archive.ts", "ARCHIVE_BUFFER") == "Duration.minutes(5)"
    assert drill.ARCHIVE_BUFFER_S == 300
    assert ts_constant("archive.ts", "REPLICATION_TIME").endswith("FIFTEEN_MINUTES")
    assert drill.REPLICATION_TIME_S == 900


def test_the_fence_counts_only_beyond_detection_and_the_table_sums() -> None:
    parts = drill.rto_parts(
        measured_failover_s=7.5, fence_ttl_s=60, fence_skew_s=5, registry_refresh_s=30
    )
    by_name = {p.name.split(":")[0]: p.seconds for p in parts}
    assert by_name["fence"] == 35  # 65 s lease + skew, 30 s of it alongside detection
    assert sum(p.seconds for p in parts) == 30 + 35 + 30 + 60 + 30 + 7.5
    table = drill.render("RTO", parts)
    assert table.splitlines()[-1].strip().startswith("total")
    rpo = drill.rpo_parts(items_lost=16, items_recovered=16, resend_s=4200)
    assert "lost for good: 0 s" in rpo[-1].source


def test_the_device_rto_counts_the_first_input_only_beyond_the_homes_refresh() -> None:
    parts = drill.device_rto_parts(
        detection_s=27,
        failover_s=65,
        first_input_s=87,
        first_input="device (re)connect",
        measured_s=0.1,
        registry_refresh_s=30,
    )
    by_name = {p.name.split(":")[0]: p.seconds for p in parts}
    assert by_name["fence"] == 38 and by_name["first input"] == 0
    assert sum(p.seconds for p in parts) == 65 + 30 + 0.1
    later = drill.device_rto_parts(
        detection_s=27,
        failover_s=65,
        first_input_s=110,
        first_input="device (re)connect",
        measured_s=0.1,
        registry_refresh_s=30,
    )
    assert sum(p.seconds for p in later) == 110 + 0.1
