"""The light client's SigV4 signature is botocore's, header for header, for any JSON request."""

from __future__ import annotations

import botocore.auth
import botocore.credentials
from botocore.awsrequest import AWSRequest
from hypothesis import given
from hypothesis import strategies as st

from lighting.aws.sigv4 import Credentials, sign

_word = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
_header_value = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40
).map(lambda v: v.replace(" ", ""))


def botocore_headers(
    url: str,
    headers: dict[str, str],
    body: bytes,
    credentials: Credentials,
    region: str,
    service: str,
) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, headers=dict(headers), data=body)
    signer = botocore.auth.SigV4Auth(
        botocore.credentials.Credentials(
            credentials.access_key, credentials.secret_key, credentials.token
        ),
        service,
        region,
    )
    signer.add_auth(request)
    return dict(request.headers.items())


def light_headers(
    host: str,
    headers: dict[str, str],
    body: bytes,
    credentials: Credentials,
    region: str,
    service: str,
    amz_date: str,
) -> dict[str, str]:
    return sign(
        {"Host": host, **headers},
        body,
        credentials=credentials,
        region=region,
        service=service,
        amz_date=amz_date,
    )


@given(
    body=st.binary(max_size=300),
    region=_word,
    service=_word,
    target=_word,
    secret=_header_value,
    token=st.none() | _header_value,
    port=st.none() | st.integers(1, 65535),
)
def test_the_signature_is_botocores_for_any_request(
    body: bytes,
    region: str,
    service: str,
    target: str,
    secret: str,
    token: str | None,
    port: int | None,
) -> None:
    credentials = Credentials("AKIDEXAMPLE", secret, token)
    host = "dynamodb.example.com" if port is None else f"127.0.0.1:{port}"
    url = f"https://{host}/" if port is None else f"http://{host}/"
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": f"DynamoDB_20120810.{target}",
        "User-Agent": "anything: user agents are not signed",
    }
    expected = botocore_headers(url, headers, body, credentials, region, service)
    if port == 80:
        host = "127.0.0.1"  # the default port is left out of the signed Host
    got = light_headers(host, headers, body, credentials, region, service, expected["X-Amz-Date"])
    assert got["Authorization"] == expected["Authorization"]
    assert got.get("X-Amz-Security-Token") == expected.get("X-Amz-Security-Token")


def authorization(secret: str = "secret", body: bytes = b"{}", region: str = "us-east-1") -> str:
    headers = {
        "Host": "dynamodb.us-east-1.amazonaws.com",
        "X-Amz-Target": "DynamoDB_20120810.PutItem",
    }
    signed = sign(
        headers,
        body,
        credentials=Credentials("AK", secret),
        region=region,
        service="dynamodb",
        amz_date="20261207T030000Z",
    )
    return signed["Authorization"]


def test_a_different_secret_body_or_scope_gives_a_different_signature() -> None:
    one = authorization()
    assert one == authorization()
    assert one != authorization(secret="other")
    assert one != authorization(body=b"{ }")
    assert one != authorization(region="eu-west-1")


def test_credentials_never_show_their_secret() -> None:
    shown = repr(Credentials("AKID", "very-secret", "session-token"))
    assert "AKID" in shown and "very-secret" not in shown and "session-token" not in shown
