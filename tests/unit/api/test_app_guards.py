"""The read API's guards, in process (no socket): body limit, rate limit, security headers,
strict auth, sessions and cookies, errors that name no internal host or table."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import api_cursors, create_app
from api.auth import COOKIE
from api.limits import ApiLimits
from domain.registry import Registry
from lighting.read.command import CommandReader, ReadError
from lighting.read.model import ReadModel
from tests.unit.api.asgi import Answer, call

TOKEN = "unit-" + "t" * 27
OLD_TOKEN = "old-" + "o" * 28
HOUR_MS = 3_600_000
SECRET_PLACES = ("luxflow-secret-table", "internal-host", "10.1.2.3")


class Clock:
    def __init__(self) -> None:
        self.now = 1_790_000_000_000

    def __call__(self) -> int:
        return self.now


def empty_registry() -> Registry:
    return Registry([], [])


def failing_registry() -> Registry:
    raise ReadError("Query on luxflow-secret-table at http://internal-host:8000 (10.1.2.3) failed")


def app_with(
    load_registry: Callable[[], Registry] = empty_registry,
    *,
    tokens: tuple[str, ...] = (TOKEN,),
    clock: Clock | None = None,
    secure_cookies: bool = False,
    **limits: float,
) -> object:
    values: dict[str, float] = {"failure_delay_s": 0.0, "burst": 1_000.0, "rate_per_s": 1_000.0}
    values.update(limits)
    cursors = api_cursors(tokens)
    model = ReadModel(CommandReader(None, "luxflow-secret-table", load_registry, cursors), None)
    return create_app(
        model,
        list(tokens),
        clock or Clock(),
        limits=ApiLimits(**values),  # type: ignore[arg-type]
        secure_cookies=secure_cookies,
    )


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(app: object, token: str = TOKEN, **kwargs: object) -> Answer:
    form = urllib.parse.urlencode({"token": token}).encode()
    return call(
        app,
        "POST",
        "/login",
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "content-length": str(len(form)),
            **kwargs.pop("headers", {}),  # type: ignore[dict-item]
        },
        body=[form],
        **kwargs,  # type: ignore[arg-type]
    )


def session_of(answer: Answer) -> str:
    (cookie,) = answer.all("set-cookie")
    return cookie.split(";")[0].split("=", 1)[1]


HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def assert_security_headers(answer: Answer) -> None:
    for name, value in HEADERS.items():
        assert answer.header(name) == value, name
    policy = answer.header("content-security-policy") or ""
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy


def test_every_kind_of_answer_carries_the_security_headers() -> None:
    app = app_with(burst=11.0, failure_cost=10.0)
    answers = [
        call(app, "GET", "/healthz"),
        call(app, "GET", "/login"),
        call(app, "GET", "/api/v1/buildings", headers=bearer()),
        call(app, "GET", "/api/v1/buildings"),
        call(app, "GET", "/nowhere", headers=bearer()),
        call(app, "POST", "/login", headers={"content-length": str(10**9)}),
    ]
    assert [a.status for a in answers] == [200, 200, 200, 401, 404, 413]
    for answer in answers:
        assert_security_headers(answer)


def test_a_declared_oversized_body_is_refused_without_being_read() -> None:
    app = app_with()
    answer = call(
        app, "POST", "/login", headers={"content-length": str(300 * 2**20)}, body=[b"x" * 65_536]
    )
    assert answer.status == 413
    assert answer.read == 0
    assert "4096 bytes" in answer.json()["detail"]


def test_a_chunked_oversized_body_is_refused_as_soon_as_it_passes_the_limit() -> None:
    app = app_with()
    chunks = (b"token=" + b"x" * 1_000 for _ in range(10_000))
    answer = call(app, "POST", "/login", body=chunks)
    assert answer.status == 413
    assert answer.read <= 4_096 + 1_006


def test_login_sets_a_strict_http_only_session_cookie_that_is_not_the_token() -> None:
    answer = login(app_with())
    assert answer.status == 303
    (cookie,) = answer.all("set-cookie")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "samesite=strict" in cookie.lower()
    assert f"max-age={8 * 3600}" in cookie.lower()
    assert "secure" not in attributes
    assert TOKEN not in cookie


@pytest.mark.parametrize(
    ("kwargs", "app_kwargs"),
    [
        ({"headers": {"x-forwarded-proto": "https"}}, {}),
        ({"scheme": "https"}, {}),
        ({}, {"secure_cookies": True}),
    ],
)
def test_the_cookie_is_secure_behind_an_https_proxy_on_https_or_when_configured(
    kwargs: dict[str, object], app_kwargs: dict[str, bool]
) -> None:
    answer = login(app_with(**app_kwargs), **kwargs)
    (cookie,) = answer.all("set-cookie")
    assert "secure" in {part.strip().lower() for part in cookie.split(";")}


def test_a_session_opens_the_page_until_it_expires() -> None:
    clock = Clock()
    app = app_with(clock=clock)
    session = session_of(login(app))
    page = call(app, "GET", "/", headers={"cookie": f"{COOKIE}={session}"})
    assert page.status == 200
    assert b"luxflow operator page" in page.body
    clock.now += 8 * HOUR_MS
    assert call(app, "GET", "/", headers={"cookie": f"{COOKIE}={session}"}).status == 401


def test_logout_clears_the_cookie_and_ends_the_session() -> None:
    app = app_with()
    session = session_of(login(app))
    out = call(app, "POST", "/logout", headers={"cookie": f"{COOKIE}={session}"})
    assert out.status == 303
    (cleared,) = out.all("set-cookie")
    assert "max-age=0" in cleared.lower() or "expires=thu, 01 jan 1970" in cleared.lower()
    assert call(app, "GET", "/", headers={"cookie": f"{COOKIE}={session}"}).status == 401


def test_the_raw_token_as_a_cookie_opens_nothing() -> None:
    app = app_with()
    assert call(app, "GET", "/", headers={"cookie": f"{COOKIE}={TOKEN}"}).status == 401


def test_during_a_rotation_both_tokens_are_accepted() -> None:
    app = app_with(tokens=(TOKEN, OLD_TOKEN))
    assert call(app, "GET", "/api/v1/fleet", headers=bearer(TOKEN)).status == 200
    assert call(app, "GET", "/api/v1/fleet", headers=bearer(OLD_TOKEN)).status == 200
    assert call(app, "GET", "/api/v1/fleet", headers=bearer(TOKEN + "x")).status == 401


def test_wrong_tokens_are_rate_limited_with_retry_after() -> None:
    app = app_with(burst=40.0, rate_per_s=1.0, failure_cost=10.0)
    wrong = bearer("w" * 32)
    statuses = [call(app, "GET", "/api/v1/fleet", headers=wrong).status for _ in range(6)]
    assert statuses == [401, 401, 401, 401, 429, 429]
    refused = call(app, "GET", "/api/v1/fleet", headers=bearer())
    assert refused.status == 429
    assert int(refused.header("retry-after") or 0) >= 1
    # Another client is not affected.
    assert call(app, "GET", "/api/v1/fleet", headers=bearer(), client="127.0.0.2").status == 200


def test_a_store_failure_names_no_table_host_or_address() -> None:
    app = app_with(failing_registry)
    for path in ("/api/v1/fleet", "/api/v1/buildings"):
        answer = call(app, "GET", path, headers=bearer())
        assert answer.status == 502
        assert not any(place in answer.body.decode() for place in SECRET_PLACES)


@pytest.mark.parametrize("path", ["/api/v1/fleet", "/api/v1/buildings"])
@pytest.mark.parametrize("cursor", ["x", "eyJhZnRlciI6InMifQ", "a.b", "." * 3, "%00"])
def test_a_forged_summary_cursor_is_400(path: str, cursor: str) -> None:
    answer = call(app_with(), "GET", f"{path}?cursor={cursor}", headers=bearer())
    assert answer.status == 400


@pytest.fixture(scope="module")
def shared_app() -> Iterator[object]:
    yield app_with()


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["/api/v1/fleet", "/api/v1/buildings", "/api/v1/energy", "/"]),
    params=st.dictionaries(
        st.sampled_from(["limit", "cursor", "start_ms", "end_ms", "scope", "every", "site_id"]),
        st.text(max_size=30) | st.integers(-(2**70), 2**70).map(str),
        max_size=5,
    ),
)
def test_no_query_parameter_makes_the_api_fail_with_a_500(
    shared_app: object, path: str, params: dict[str, str]
) -> None:
    query = urllib.parse.urlencode(params)
    answer = call(shared_app, "GET", f"{path}?{query}", headers=bearer())
    assert answer.status in (200, 400, 422, 501), answer.body


@pytest.fixture(scope="module")
def unlimited_app() -> object:
    return app_with(burst=1e9, rate_per_s=1e9, max_in_flight=1_000)


def post_login(app: object, body: bytes) -> Answer:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    return call(
        app, "POST", "/login", headers=headers | {"content-length": str(len(body))}, body=[body]
    )


@pytest.mark.parametrize(
    "body", [b"a=1&b=2&c=3&d=4&e=5", b"&" * 10, b"token=x&" + b"&".join([b"f=1"] * 500)]
)
def test_a_login_form_with_many_fields_is_a_refused_guess_not_a_server_error(body: bytes) -> None:
    answer = post_login(app_with(), body)
    assert answer.status == 401
    assert_security_headers(answer)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.sampled_from([b"token=", b"&", b";", b"=", b"%", b"%ff", b"+", TOKEN.encode()])
        | st.binary(max_size=20),
        max_size=60,
    ).map(b"".join)
)
def test_any_login_body_within_the_limit_is_a_session_or_a_refusal(
    unlimited_app: object, body: bytes
) -> None:
    answer = post_login(unlimited_app, body[:4_096])
    assert answer.status in (303, 401)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from([("GET", "/"), ("GET", "/page/live"), ("POST", "/logout")]),
    value=st.text(st.characters(max_codepoint=255, exclude_characters=";\r\n"), max_size=120),
)
def test_any_session_cookie_is_a_page_a_login_or_a_refusal_never_a_server_error(
    unlimited_app: object, path: tuple[str, str], value: str
) -> None:
    method, url = path
    cookie = f"{COOKIE}=v1.1999999999999.{value}"
    answer = call(unlimited_app, method, url, headers={"cookie": cookie, "accept": "text/html"})
    assert answer.status in (303, 401)
