"""`luxflow replay` with and without --archive: the combinations it refuses, each in one line
with exit 2 and before any AWS call (no endpoint is reachable here)."""

from __future__ import annotations

import pytest

from app import RUNTIME_COMMANDS
from cli.main import EXIT_USAGE, run

NOWHERE = {"LUXFLOW_ENDPOINT_URL": "http://127.0.0.1:9"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["replay", "--yes"], "one of --from, --savepoint, --at or --archive is required"),
        (["replay", "--from", "trim-horizon", "--to", "2026-12-01T00:00:00Z"], "--to is for"),
        (["replay", "--archive", "s3://b/raw/", "--savepoint", "sp-1"], "not with --savepoint"),
        (["replay", "--archive", "/tmp/raw", "--yes"], "--archive must be s3://BUCKET/PREFIX"),
        (["replay", "--archive", "s3://b/raw/", "--from", "yesterday"], "not an ISO-8601"),
    ],
)
def test_a_replay_that_cannot_start_says_why_in_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(args, NOWHERE, RUNTIME_COMMANDS) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
