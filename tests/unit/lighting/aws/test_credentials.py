"""Which keys the light client signs with: botocore's order of precedence, container keys
refreshed before they expire, and no stale keys used close to expiry."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.exceptions import CredentialRetrievalError

from lighting.aws.credentials import (
    BotocoreCredentials,
    ContainerCredentials,
    StaticCredentials,
    container_authorization,
    container_url,
    default_credentials,
)
from lighting.aws.sigv4 import Credentials

T0 = datetime(2026, 12, 7, 3, 0, tzinfo=UTC).timestamp()


def document(key: str, expires_s: float) -> bytes:
    expiration = datetime.fromtimestamp(expires_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps(
        {
            "AccessKeyId": key,
            "SecretAccessKey": f"secret-{key}",
            "Token": f"token-{key}",
            "Expiration": expiration,
        }
    ).encode()


class Endpoint:
    """The container credentials endpoint as a function: answers in turn, an exception
    answer raises; every request's URL and headers are kept."""

    def __init__(self, *answers: bytes | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, dict[str, str]]] = []

    def __call__(self, url: str, headers: Mapping[str, str]) -> bytes:
        self.requests.append((url, dict(headers)))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_environment_keys_come_first(tmp_path: Path) -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "AK",
        "AWS_SECRET_ACCESS_KEY": "SK",
        "AWS_SESSION_TOKEN": "TOK",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x",
    }
    source = default_credentials(env, home=tmp_path)
    assert isinstance(source, StaticCredentials)
    assert source.current() == Credentials("AK", "SK", "TOK")


def test_the_task_role_is_read_from_the_container_endpoint(tmp_path: Path) -> None:
    env = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc"}
    source = default_credentials(env, home=tmp_path)
    assert isinstance(source, ContainerCredentials)
    assert container_url(env) == "http://169.254.170.2/v2/credentials/abc"


@pytest.mark.parametrize(
    "earlier", ["AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_SHARED_CREDENTIALS_FILE"]
)
def test_a_source_botocore_reads_before_the_container_leaves_the_choice_to_botocore(
    tmp_path: Path, earlier: str
) -> None:
    env = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc", earlier: "x"}
    assert isinstance(default_credentials(env, home=tmp_path), BotocoreCredentials)


def test_a_shared_config_file_leaves_the_choice_to_botocore(tmp_path: Path) -> None:
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "config").write_text("[default]\n")
    env = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc"}
    assert isinstance(default_credentials(env, home=tmp_path), BotocoreCredentials)


def test_a_plain_http_full_uri_must_name_a_local_agent() -> None:
    assert container_url({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/c"})
    assert container_url({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "https://creds.example/c"})
    with pytest.raises(CredentialRetrievalError):
        container_url({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://creds.example/c"})


def test_the_authorization_token_file_is_read_at_each_fetch(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    authorization = container_authorization(
        {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file)}
    )
    assert authorization() == "first"
    token_file.write_text("rotated")
    assert authorization() == "rotated"
    assert container_authorization({"AWS_CONTAINER_AUTHORIZATION_TOKEN": "t"})() == "t"


def test_container_keys_are_reused_until_fifteen_minutes_before_they_expire() -> None:
    now = [T0]
    endpoint = Endpoint(document("one", T0 + 3600), document("two", T0 + 7200))
    source = ContainerCredentials(
        "http://169.254.170.2/c", lambda: "auth", fetch=endpoint, now_s=lambda: now[0]
    )
    assert source.current() == Credentials("one", "secret-one", "token-one")
    now[0] = T0 + 3600 - 16 * 60
    assert source.current().access_key == "one"
    now[0] = T0 + 3600 - 14 * 60
    assert source.current().access_key == "two"
    assert [headers["Authorization"] for _, headers in endpoint.requests] == ["auth", "auth"]


def test_a_failed_refresh_keeps_keys_with_more_than_ten_minutes_left() -> None:
    now = [T0]
    endpoint = Endpoint(document("one", T0 + 3600), *[OSError("agent down")] * 3)
    source = ContainerCredentials("http://169.254.170.2/c", fetch=endpoint, now_s=lambda: now[0])
    source.current()
    now[0] = T0 + 3600 - 12 * 60
    assert source.current().access_key == "one"
    assert len(endpoint.requests) == 4  # one fetch, then three attempts at refreshing


def test_keys_closer_to_expiry_than_ten_minutes_are_not_used_without_a_refresh() -> None:
    now = [T0]
    endpoint = Endpoint(
        document("one", T0 + 3600), *[OSError("agent down")] * 3, document("two", T0 + 7200)
    )
    source = ContainerCredentials("http://169.254.170.2/c", fetch=endpoint, now_s=lambda: now[0])
    source.current()
    now[0] = T0 + 3600 - 5 * 60
    with pytest.raises(CredentialRetrievalError):
        source.current()
    assert source.current().access_key == "two"


def test_a_malformed_answer_is_a_retrieval_error() -> None:
    endpoint = Endpoint(b"<html>", b"{}", b'{"AccessKeyId": "x"}')
    source = ContainerCredentials("http://169.254.170.2/c", fetch=endpoint, now_s=lambda: T0)
    with pytest.raises(CredentialRetrievalError):
        source.current()
