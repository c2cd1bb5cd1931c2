"""Where the light client's AWS keys come from, in botocore's order of precedence.

Two sources are read here, because they are what a deployment uses and reading them costs
nothing: the environment's keys (`AWS_ACCESS_KEY_ID`, ...: tests, emulators, development)
and the ECS container credentials endpoint (the task role of a Fargate task). Everything
else botocore supports (profiles and SSO, web identity, instance metadata) is left to
botocore's own chain, imported only then: whenever a profile or web-identity setting or a
shared config file could take precedence over the container endpoint, the whole decision is
botocore's, so the keys used are the ones a botocore client would use.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from botocore.exceptions import CredentialRetrievalError, NoCredentialsError

from lighting.aws.sigv4 import Credentials

log = logging.getLogger(__name__)

ECS_HOST = "169.254.170.2"
# Hosts a plain-HTTP full URI may name (botocore's list): loopback and the ECS and EKS agents.
_ALLOWED_HTTP_HOSTS = frozenset({"127.0.0.1", "::1", "localhost", ECS_HOST, "169.254.170.23"})
_ALLOWED_HTTP_HOSTS_V6 = frozenset({"fd00:ec2::23"})

ADVISORY_REFRESH_S = 15 * 60
"""Refresh temporary keys this long before they expire (failures are then only logged)."""
MANDATORY_REFRESH_S = 10 * 60
"""Closer to expiry than this, keys are not used unless a refresh succeeded."""


class CredentialSource(Protocol):
    """The keys to sign the next request with. `current()` is called once per request from
    any thread; it refreshes temporary keys itself and raises a botocore `BotoCoreError`
    (`NoCredentialsError`, `CredentialRetrievalError`) when it has none usable."""

    def current(self) -> Credentials: ...


class StaticCredentials:
    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def current(self) -> Credentials:
        return self._credentials


Fetch = Callable[[str, Mapping[str, str]], bytes]
"""GET a URL with headers and return the body (raises on a failure)."""


def http_get(url: str, headers: Mapping[str, str], timeout_s: float = 2.0) -> bytes:
    parts = urlsplit(url)
    make = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = make(parts.hostname or "", parts.port, timeout=timeout_s)
    try:
        path = parts.path or "/"
        connection.request("GET", f"{path}?{parts.query}" if parts.query else path, None, headers)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise OSError(f"HTTP {response.status}: {body[:200]!r}")
        return body
    finally:
        connection.close()


class ContainerCredentials:
    """The task role's temporary keys from the ECS container credentials endpoint, refreshed
    before they expire (three attempts a fetch, as botocore makes)."""

    def __init__(
        self,
        url: str,
        authorization: Callable[[], str | None] = lambda: None,
        *,
        fetch: Fetch = http_get,
        now_s: Callable[[], float] = time.time,
        attempts: int = 3,
    ) -> None:
        self._url = url
        self._authorization = authorization
        self._fetch = fetch
        self._now_s = now_s
        self._attempts = attempts
        self._lock = threading.Lock()
        self._credentials: Credentials | None = None
        self._expires_s = 0.0

    def current(self) -> Credentials:
        with self._lock:
            left_s = self._expires_s - self._now_s()
            if self._credentials is None or left_s < ADVISORY_REFRESH_S:
                try:
                    self._refresh()
                except CredentialRetrievalError:
                    if self._credentials is None or left_s < MANDATORY_REFRESH_S:
                        raise
                    log.warning("container credentials: refresh failed; using the current keys")
            assert self._credentials is not None
            return self._credentials

    def _refresh(self) -> None:
        headers = {"Accept": "application/json"}
        token = self._authorization()
        if token:
            headers["Authorization"] = token
        error: Exception | None = None
        for _attempt in range(self._attempts):
            try:
                document = json.loads(self._fetch(self._url, headers))
                self._credentials, self._expires_s = _parse(document)
                return
            except (OSError, ValueError, KeyError, TypeError, http.client.HTTPException) as exc:
                error = exc
        raise CredentialRetrievalError(provider="container-role", error_msg=repr(error))


def _parse(document: Any) -> tuple[Credentials, float]:
    credentials = Credentials(
        document["AccessKeyId"], document["SecretAccessKey"], document.get("Token")
    )
    expiration = document.get("Expiration")
    if not expiration:
        return credentials, float("inf")
    return credentials, datetime.fromisoformat(str(expiration)).timestamp()


class BotocoreCredentials:
    """botocore's full provider chain, for the sources not read here (imported on first use:
    it costs about 18 MB resident)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._resolved: Any = None

    def current(self) -> Credentials:
        with self._lock:
            if self._resolved is None:
                import botocore.session

                self._resolved = botocore.session.get_session().get_credentials()
            if self._resolved is None:
                raise NoCredentialsError()
            frozen = self._resolved.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token or None)


def container_url(env: Mapping[str, str]) -> str | None:
    """The container credentials endpoint named in `env`, or None. A full URI over plain
    HTTP must name a loopback or ECS/EKS agent address, as botocore requires."""
    relative = env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    if relative:
        return f"http://{ECS_HOST}{relative}"
    full = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    if not full:
        return None
    parts = urlsplit(full)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" or host in _ALLOWED_HTTP_HOSTS | _ALLOWED_HTTP_HOSTS_V6:
        return full
    raise CredentialRetrievalError(
        provider="container-role",
        error_msg=f"unsupported host in AWS_CONTAINER_CREDENTIALS_FULL_URI: {host}",
    )


def container_authorization(env: Mapping[str, str]) -> Callable[[], str | None]:
    """The Authorization header of the container endpoint: the token file, read at each
    fetch (the agent rotates it), else the token variable."""
    token_file = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
    token = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN")
    if token_file:
        return lambda: Path(token_file).read_text(encoding="utf-8").strip()
    return lambda: token


# Settings under which botocore would consult a source before the container endpoint.
_EARLIER_SOURCES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
)


def default_credentials(
    env: Mapping[str, str] = os.environ, home: Path | None = None
) -> CredentialSource:
    """The keys botocore's default chain would find, read without botocore where that is
    the environment or the container endpoint."""
    access_key = env.get("AWS_ACCESS_KEY_ID")
    secret_key = env.get("AWS_SECRET_ACCESS_KEY")
    if access_key and secret_key:
        token = env.get("AWS_SESSION_TOKEN") or env.get("AWS_SECURITY_TOKEN") or None
        return StaticCredentials(Credentials(access_key, secret_key, token))
    aws_dir = (home if home is not None else Path.home()) / ".aws"
    shared = (aws_dir / "credentials").exists() or (aws_dir / "config").exists()
    if shared or any(env.get(name) for name in _EARLIER_SOURCES):
        return BotocoreCredentials()
    url = container_url(env)
    if url is not None:
        return ContainerCredentials(url, container_authorization(env))
    return BotocoreCredentials()
