"""The read API's security over real HTTP, against a worker's real output (moto + influxd):
strict secrets at start, sessions and cookies, security headers, errors that name nothing
internal, cursors that cannot be forged, and no query parameter that makes it fail with 5xx."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import api_cursors, create_app
from api.auth import COOKIE
from api.limits import ApiLimits
from core.clock import wall_clock_ms
from emulators.moto import free_port
from lighting.clients import Clients
from lighting.read.model import read_model
from lighting.settings import Settings
from tests.support.deployment import ROOT
from tests.support.influx import SimulatedRun
from tests.support.serve import Reply, request, serving_app, serving_process

pytestmark = [pytest.mark.integration, pytest.mark.influx]

GOOD = "good-" + uuid.uuid4().hex
OLD = "old-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def api(influx_run: SimulatedRun) -> Iterator[tuple[str, str]]:
    with serving_process(influx_run.deployment) as (base, _):
        yield base, influx_run.deployment.env["LUXFLOW_API_TOKEN"]


def serve_once(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`luxflow serve` as an operator starts it; a server that does start is a failure
    (the timeout ends it)."""
    return subprocess.run(
        [sys.executable, "-m", "app", "serve", "--port", str(free_port())],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def secret(aws: Callable[[str], Any], value: str) -> str:
    name = f"luxflow-test-{uuid.uuid4().hex[:10]}"
    aws("secretsmanager").create_secret(Name=name, SecretString=value)
    return name


@pytest.mark.parametrize(
    ("setting", "value", "said"),
    [
        ("LUXFLOW_API_TOKEN_SECRET", '{"token": null}', "the token is null, not a string"),
        ("LUXFLOW_API_TOKEN_SECRET", '{"token": false}', "the token is a boolean"),
        ("LUXFLOW_API_TOKEN_SECRET", "{}", "without a 'token' field"),
        ("LUXFLOW_API_TOKEN_SECRET", '{"token": "short"}', "has 5 characters"),
        ("LUXFLOW_API_TOKEN", "a", "has 1 characters; at least 16"),
        ("LUXFLOW_INFLUXDB_TOKEN_SECRET", '{"token": null}', "the token is null, not a string"),
        ("LUXFLOW_INFLUXDB_TOKEN", "x:y", "has 3 characters; at least 8"),
    ],
)
def test_a_null_or_short_secret_refuses_to_start_with_one_line(
    influx_run: SimulatedRun, aws: Callable[[str], Any], setting: str, value: str, said: str
) -> None:
    env = dict(influx_run.deployment.env)
    if setting.endswith("_SECRET"):
        env[setting.removesuffix("_SECRET")] = ""
        env[setting] = secret(aws, value)
    else:
        env[setting] = value
    result = serve_once(env)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"luxflow: {setting}")
    assert said in lines[0]
    assert value not in lines[0] or len(value) < 3


def test_a_rotation_secret_serves_both_tokens_and_bearer_none_is_refused(
    influx_run: SimulatedRun, aws: Callable[[str], Any]
) -> None:
    env = dict(influx_run.deployment.env)
    env["LUXFLOW_API_TOKEN"] = ""
    rotating = msgspec.json.encode({"token": f"{GOOD},{OLD}"}).decode()
    env["LUXFLOW_API_TOKEN_SECRET"] = secret(aws, rotating)
    with serving_process(influx_run.deployment, env) as (base, _):
        assert request(base, "/api/v1/buildings", token=GOOD).status == 200
        assert request(base, "/api/v1/buildings", token=OLD).status == 200
        for wrong in ("None", "False", "{}", f"{GOOD},{OLD}"):
            assert request(base, "/api/v1/buildings", token=wrong).status == 401


def login(base: str, token: str, headers: dict[str, str] | None = None) -> Reply:
    return request(
        base,
        "/login",
        method="POST",
        body=urllib.parse.urlencode({"token": token}).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
    )


def test_a_login_session_is_a_strict_cookie_without_the_token_and_logout_ends_it(
    api: tuple[str, str],
) -> None:
    base, token = api
    reply = login(base, token)
    assert reply.status == 303
    cookie = reply.headers["Set-Cookie"]
    value = cookie.split(";")[0].split("=", 1)[1]
    attributes = [part.strip().lower() for part in cookie.split(";")[1:]]
    assert {"httponly", "samesite=strict", "path=/", "max-age=28800"} <= set(attributes)
    assert "secure" not in attributes  # plain http, no proxy: a browser would drop it
    assert token not in cookie
    session = {"Cookie": f"{COOKIE}={value}"}
    assert request(base, "/", headers=session).status == 200
    assert request(base, "/logout", method="POST", headers=session).status == 303
    assert request(base, "/", headers=session).status == 401
    assert request(base, "/", headers={"Cookie": f"{COOKIE}={token}"}).status == 401


def test_behind_an_https_proxy_the_cookie_is_secure(api: tuple[str, str]) -> None:
    base, token = api
    reply = login(base, token, {"X-Forwarded-Proto": "https"})
    assert "secure" in [p.strip().lower() for p in reply.headers["Set-Cookie"].split(";")]
    assert reply.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_every_answer_carries_the_security_headers(api: tuple[str, str]) -> None:
    base, token = api
    replies = [
        request(base, "/", token=token),
        request(base, "/api/v1/fleet", token=token),
        request(base, "/login"),
        request(base, "/api/v1/fleet"),
        request(base, "/api/v1/nothing", token=token),
        request(base, "/login", method="POST", headers={"Content-Length": "999999999"}),
    ]
    assert [r.status for r in replies] == [200, 200, 200, 401, 404, 413]
    for reply in replies:
        policy = reply.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert reply.headers["X-Frame-Options"] == "DENY"
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert reply.headers["Referrer-Policy"] == "no-referrer"


def test_a_store_failure_names_no_table_host_or_endpoint(influx_run: SimulatedRun) -> None:
    env = dict(influx_run.deployment.env)
    missing_table = f"missing-{uuid.uuid4().hex[:8]}"
    closed_port = free_port()
    env["LUXFLOW_COMMAND_TABLE"] = missing_table
    env["LUXFLOW_INFLUXDB_URL"] = f"http://127.0.0.1:{closed_port}"
    token = env["LUXFLOW_API_TOKEN"]
    with serving_process(influx_run.deployment, env) as (base, _):
        replies = [
            request(base, "/api/v1/fleet", token=token),
            request(base, "/api/v1/assets/a1", token=token),
            request(base, "/api/v1/energy?start_ms=0&end_ms=3600000", token=token),
        ]
    assert [r.status for r in replies] == [502, 502, 502]
    endpoint = urllib.parse.urlsplit(env["LUXFLOW_ENDPOINT_URL"]).netloc
    for reply in replies:
        text = str(reply.body)
        assert missing_table not in text and str(closed_port) not in text
        assert endpoint not in text and "127.0.0.1" not in text


def valid_cursors(base: str, token: str, run: SimulatedRun) -> dict[str, str]:
    """A path per list endpoint, with the cursor of its first page (limit=1)."""
    (site, building), _ = sorted(run.open_faults().items())[0]
    start, end = run.range_ms
    paths = {
        "faults": f"/api/v1/sites/{site}/buildings/{building}/faults?limit=1",
        "spikes": f"/api/v1/sites/{site}/spikes?limit=1&since_ms={run.params.start_ms}",
        "energy": f"/api/v1/energy?limit=1&start_ms={start}&end_ms={end}",
        "fleet": "/api/v1/fleet?limit=1",
        "buildings": "/api/v1/buildings?limit=1",
    }
    cursors = {}
    for name, path in paths.items():
        reply = request(base, path, token=token)
        assert reply.status == 200 and reply.body["next_cursor"], (name, reply.body)
        cursors[path] = reply.body["next_cursor"]
    return cursors


def forgeries(cursor: str, other: str) -> list[str]:
    payload, tag = cursor.split(".")
    flipped = payload[:-3] + ("A" if payload[-3] != "A" else "B") + payload[-2:]
    unsigned = base64.urlsafe_b64encode(
        msgspec.json.encode({"q": "x", "s": {"k": {"pk": {"S": "ASSET#x"}}}})
    ).decode()
    return [
        f"{flipped}.{tag}",  # tampered
        cursor[:-5],  # truncated
        payload,  # the tag cut off
        unsigned,  # forged, unsigned
        f"{unsigned}.{tag}",  # forged, with a tag of another payload
        other,  # a real cursor of another query
        "%%%",
        "a" * 5_000,
    ]


def test_forged_cursors_get_400_on_every_list_endpoint(
    api: tuple[str, str], influx_run: SimulatedRun
) -> None:
    base, token = api
    cursors = valid_cursors(base, token, influx_run)
    paths = list(cursors)
    for index, (path, cursor) in enumerate(cursors.items()):
        # One client address per endpoint: the rate limit is not what is tested here.
        source = f"127.0.0.{20 + index}"
        page = request(
            base, f"{path}&cursor={urllib.parse.quote(cursor)}", token=token, source=source
        )
        assert page.status == 200
        other = cursors[paths[(index + 1) % len(paths)]]
        for forged in forgeries(cursor, other):
            reply = request(
                base, f"{path}&cursor={urllib.parse.quote(forged)}", token=token, source=source
            )
            assert reply.status == 400, (path, forged, reply.body)


# -- no query parameter of any endpoint makes the API fail with a 5xx -------------------------


@pytest.fixture(scope="module")
def generous(influx_run: SimulatedRun) -> Iterator[tuple[str, str, dict[str, str]]]:
    """The API in this process with limits that let hypothesis send its hundreds of
    requests (the rate limit itself is tested above and in tests/unit/api)."""
    env = {k: v for k, v in influx_run.deployment.env.items() if k.startswith("LUXFLOW_")}
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "testing")
    settings_ = Settings.from_env({**env, "LUXFLOW_REGION": "us-east-1"})
    token = env["LUXFLOW_API_TOKEN"]
    model = read_model(settings_, Clients(settings_), api_cursors([token]))
    limits = ApiLimits(rate_per_s=1e6, burst=1e6, max_in_flight=1_000, failure_delay_s=0)
    with serving_app(create_app(model, [token], wall_clock_ms, limits=limits)) as base:
        yield base, token, valid_cursors(base, token, influx_run)


def mutated(cursors: list[str]) -> st.SearchStrategy[str]:
    real = st.sampled_from(cursors)
    return real | st.tuples(real, st.integers(0, 200), st.characters()).map(
        lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + 1 :]
    )


ENDPOINTS = {
    "/api/v1/sites/{a}/buildings/{b}/faults": ["limit", "cursor"],
    "/api/v1/sites/{a}/spikes": ["since_ms", "limit", "cursor"],
    "/api/v1/sites/{a}/spikes/open": ["limit", "cursor"],
    "/api/v1/assets/{a}": [],
    "/api/v1/fleet": ["limit", "cursor"],
    "/api/v1/buildings": ["limit", "cursor"],
    "/api/v1/energy": [
        "start_ms", "end_ms", "scope", "every", "site_id", "building_id", "room_id", "limit",
        "cursor",
    ],
}  # fmt: skip


@st.composite
def calls(draw: st.DrawFn, cursors: list[str]) -> str:
    template = draw(st.sampled_from(sorted(ENDPOINTS)))
    ids = st.sampled_from(["site-0001", "site-0001-b01", "x"]) | st.text(max_size=300)
    path = template.format(
        a=urllib.parse.quote(draw(ids), safe=""), b=urllib.parse.quote(draw(ids), safe="")
    )
    values = (
        st.text(max_size=50)
        | st.integers(-(2**70), 2**70).map(str)
        | st.integers(0, 2**45).map(str)
        | st.sampled_from(["site", "room", "1h", "1d", "1w", "", "0", "10000", "10001"])
        | mutated(cursors)
    )
    names = ENDPOINTS[template] + ["junk"]
    params = draw(st.dictionaries(st.sampled_from(names), values, max_size=len(names)))
    return f"{path}?{urllib.parse.urlencode(params)}"


def test_no_query_parameter_of_any_endpoint_makes_the_api_fail(
    generous: tuple[str, str, dict[str, str]],
) -> None:
    base, token, cursors = generous

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(calls(list(cursors.values())))
    def check(path: str) -> None:
        reply = request(base, path, token=token)
        assert reply.status in (200, 400, 404, 422), (path, reply.status, reply.body)

    check()
