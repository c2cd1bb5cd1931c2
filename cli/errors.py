"""One line for each error a user can fix, instead of a traceback (shown with --debug)."""

from __future__ import annotations

from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from core.errors import LuxflowError, causes
from core.retry import error_code


def explain(exc: BaseException) -> str | None:
    """A one-line cause and remedy for `exc` (or what caused it), or None if it is a bug."""
    for cause in causes(exc):
        if isinstance(cause, EndpointConnectionError):
            return (
                f"cannot reach {cause.kwargs.get('endpoint_url', 'the AWS endpoint')}: "
                "is LUXFLOW_ENDPOINT_URL (or the region) right and the service up?"
            )
        if isinstance(cause, NoCredentialsError):
            return "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/SECRET)"
        if isinstance(cause, NoRegionError):
            return "no AWS region: set LUXFLOW_REGION or AWS_REGION"
        if isinstance(cause, ClientError):
            code = error_code(cause)
            message = cause.response.get("Error", {}).get("Message", "")
            if code == "ResourceNotFoundException":
                what = message or "a table or stream does not exist"
                return f"{what}: run `luxflow setup` (with --shards N to create the stream)"
            if code in ("UnrecognizedClientException", "InvalidSignatureException"):
                return f"AWS refused the credentials ({code}): {message}"
            if code == "AccessDeniedException":
                return f"access denied: {message}"
    if isinstance(exc, LuxflowError):
        return str(exc)
    return None
