"""AWS Signature Version 4 for JSON-protocol POST requests (header signing).

The algorithm as AWS documents it: a canonical request (method, path, query, the signed
headers in lower case, sorted, values trimmed, and the payload's SHA-256), a string to sign
naming the time and the credential scope, and an HMAC-SHA256 chain from the secret key over
date, region, service and "aws4_request". Only what the JSON protocol needs: path "/", no
query string, the payload signed (not UNSIGNED-PAYLOAD). The unit tests compare every header
this produces with botocore's own signer.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

ALGORITHM = "AWS4-HMAC-SHA256"

# Headers a proxy may rewrite or that vary per hop: signing them would break the signature
# (the same list botocore leaves out).
_UNSIGNED = frozenset(
    {
        "authorization",
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)


@dataclass(frozen=True)
class Credentials:
    """One set of AWS keys; `token` is the session token of temporary credentials."""

    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:
        # Never print a secret into a log line or a traceback.
        return f"Credentials(access_key={self.access_key!r}, secret_key=..., token=...)"


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _canonical_value(value: str) -> str:
    return " ".join(value.split())


def sign(
    headers: Mapping[str, str],
    body: bytes,
    *,
    credentials: Credentials,
    region: str,
    service: str,
    amz_date: str,
    method: str = "POST",
    path: str = "/",
) -> dict[str, str]:
    """`headers` (which must include Host) with the signing headers added: X-Amz-Date,
    X-Amz-Security-Token for temporary credentials, and Authorization. `amz_date` is the
    request time as `YYYYMMDDTHHMMSSZ` (UTC); `service` the signing name (for Timestream
    "timestream", not the endpoint prefix)."""
    signed = dict(headers)
    signed["X-Amz-Date"] = amz_date
    if credentials.token:
        signed["X-Amz-Security-Token"] = credentials.token
    to_sign: dict[str, list[str]] = {}
    for name, value in signed.items():
        lower = name.lower()
        if lower not in _UNSIGNED:
            to_sign.setdefault(lower, []).append(_canonical_value(value))
    names = sorted(to_sign)
    canonical_headers = "".join(f"{n}:{','.join(to_sign[n])}\n" for n in names)
    signed_headers = ";".join(names)
    canonical_request = "\n".join(
        [
            method,
            path,
            "",
            canonical_headers,
            signed_headers,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    date = amz_date[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = _hmac(("AWS4" + credentials.secret_key).encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    signed["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return signed
