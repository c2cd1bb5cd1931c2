"""Paging the read API's command-model lists over a real DynamoDB (moto), with a clock that
moves between pages as a real one does: every page of a list follows from the previous one's
cursor, and a cursor of one site or one time range opens nothing of another."""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from api.app import api_cursors, create_app
from api.limits import ApiLimits
from core.clock import DAY_MS, HOUR_MS
from domain.registry import Registry
from lighting.read.command import CommandReader
from lighting.read.model import ReadModel
from sinks.provision import ensure_command_table
from tests.unit.api.asgi import Answer, call

pytestmark = [pytest.mark.integration]

TOKEN = "paging-" + "p" * 25
NOW_MS = 1_790_000_000_000
SPIKES = 7


class MovingClock:
    """A wall clock that has moved on by a second each time it is read."""

    def __init__(self) -> None:
        self.now = NOW_MS

    def __call__(self) -> int:
        self.now += 1_000
        return self.now


def spike_item(site_id: str, number: int) -> dict[str, Any]:
    started_ms = NOW_MS - (number + 1) * HOUR_MS
    asset_id = f"lamp-{number}"
    return {
        "pk": {"S": f"SPIKE#{site_id}"},
        "sk": {"S": f"{started_ms:013d}#{asset_id}"},
        "site_id": {"S": site_id},
        "building_id": {"S": "b-1"},
        "room_id": {"S": "r-1"},
        "asset_id": {"S": asset_id},
        "level": {"S": "asset"},
        "rule": {"S": "rated"},
        "started_at_ms": {"N": str(started_ms)},
        "ended_at_ms": {"N": str(started_ms + 600_000)},
        "peak_w": {"N": "250.0"},
        "threshold_w": {"N": "125.0"},
        "excess_wh": {"N": "3.5"},
        "event_id": {"S": f"spike-{site_id}-{number}"},
        "status": {"S": "closed"},
    }


@pytest.fixture(scope="module")
def app(aws: Callable[[str], Any]) -> object:
    dynamodb = aws("dynamodb")
    table = f"paging{uuid.uuid4().hex[:8]}"
    ensure_command_table(dynamodb, table)
    for site_id in ("site-a", "site-b"):
        for number in range(SPIKES):
            dynamodb.put_item(TableName=table, Item=spike_item(site_id, number))
    cursors = api_cursors([TOKEN])
    command = CommandReader(dynamodb, table, lambda: Registry([]), cursors)
    limits = ApiLimits(failure_delay_s=0.0, burst=1_000.0, rate_per_s=1_000.0)
    return create_app(ReadModel(command, None), [TOKEN], MovingClock(), limits=limits)


def get(app: object, path: str, **params: Any) -> Answer:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    return call(app, "GET", f"{path}?{query}", headers={"Authorization": f"Bearer {TOKEN}"})


def every_page(app: object, path: str, **params: Any) -> tuple[list[str], list[int]]:
    """The event ids of every page followed from the first, and every page's status."""
    ids: list[str] = []
    statuses: list[int] = []
    cursor: str | None = None
    for _ in range(SPIKES + 2):
        answer = get(app, path, cursor=cursor, **params)
        statuses.append(answer.status)
        if answer.status != 200:
            break
        body = answer.json()
        ids += [item["event_id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    return ids, statuses


def test_spikes_of_the_last_day_page_through_while_the_clock_moves(app: object) -> None:
    # No since_ms: "the last day", judged when the first page is asked for. The clock moves
    # between pages, as it does for any client; every page must follow from its cursor.
    ids, statuses = every_page(app, "/api/v1/sites/site-a/spikes", limit=2)
    assert statuses == [200, 200, 200, 200]
    assert ids == [f"spike-site-a-{number}" for number in range(SPIKES)]


def test_spikes_since_a_given_time_page_through_as_before(app: object) -> None:
    ids, statuses = every_page(
        app, "/api/v1/sites/site-a/spikes", limit=3, since_ms=NOW_MS - DAY_MS
    )
    assert statuses == [200, 200, 200]
    assert ids == [f"spike-site-a-{number}" for number in range(SPIKES)]


@pytest.mark.parametrize("since_ms", [None, NOW_MS - DAY_MS])
def test_a_spikes_cursor_of_one_site_is_400_for_another(app: object, since_ms: int | None) -> None:
    first = get(app, "/api/v1/sites/site-a/spikes", limit=2, since_ms=since_ms).json()
    other = get(
        app, "/api/v1/sites/site-b/spikes", limit=2, since_ms=since_ms, cursor=first["next_cursor"]
    )
    assert other.status == 400


def test_a_last_day_cursor_is_400_for_a_given_since_and_the_reverse(app: object) -> None:
    path = "/api/v1/sites/site-a/spikes"
    last_day = get(app, path, limit=2).json()["next_cursor"]
    given = get(app, path, limit=2, since_ms=NOW_MS - DAY_MS).json()["next_cursor"]
    assert get(app, path, limit=2, since_ms=NOW_MS - DAY_MS, cursor=last_day).status == 400
    assert get(app, path, limit=2, cursor=given).status == 400
