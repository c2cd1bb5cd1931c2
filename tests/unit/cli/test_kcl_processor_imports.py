"""The KCL daemon starts one `luxflow kcl-processor` per leased shard, so what that command
imports is paid once per shard: it must not import botocore's client machinery (about 20 MB
resident, and 11 MB more per DynamoDB client model), urllib3 or the metrics server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

HEAVY = ("botocore.session", "botocore.client", "urllib3", "prometheus_client", "boto3")

PROBE = """
import json, sys
import app
try:
    app.main(["kcl-processor", "--help"])
except SystemExit:
    pass
from lighting.clients import Clients
from lighting.settings import Settings
clients = Clients(Settings(endpoint_url="http://127.0.0.1:1"), light=True)
clients.dynamodb, clients.timestream, clients.secretsmanager
print(json.dumps(sorted(sys.modules)))
"""


def test_the_processor_command_and_its_clients_import_no_heavy_module() -> None:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, check=True, cwd=ROOT, text=True
    )
    loaded = set(json.loads(probe.stdout.splitlines()[-1]))
    assert "cli.kcl_processor" in loaded
    assert sorted(m for m in HEAVY if m in loaded) == []
    # Nor the other commands' modules.
    assert (
        sorted(m for m in ("cli.admin", "cli.replay", "cli.serve", "cli.worker") if m in loaded)
        == []
    )
