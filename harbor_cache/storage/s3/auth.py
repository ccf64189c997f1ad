"""What botocore does for us: the credential chain and SigV4 signing; plus the URLs it signs.

botocore knows every way AWS hands out credentials (environment, the shared
credentials and config files with profiles, SSO, container and instance
roles, web identity for pods) and how to refresh the temporary ones before
they expire; its signers are the reference SigV4 implementation.  We use
exactly that and nothing of its HTTP stack: a request is described to
`S3SigV4Auth` as an `AWSRequest` whose body is never given, only the payload's
SHA-256 (computed for small bodies, the content digest when the caller knows
it, or ``UNSIGNED-PAYLOAD`` for a file streamed from disk), and the headers it
adds are copied onto the request treq sends.

Resolving the chain can block (file reads, the instance metadata service), so
it runs on the storage thread pool, once for concurrent callers; a refreshable
credential that is inside botocore's advisory window is refreshed there too,
and otherwise read without leaving the reactor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from hashlib import sha256
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.auth import UNSIGNED_PAYLOAD, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials
from twisted.internet import defer
from twisted.python.failure import Failure

from harbor_cache.storage.io import StorageIO
from harbor_cache.storage.s3.config import S3CredentialsError, S3Settings

EMPTY_SHA256 = sha256(b"").hexdigest()
__all__ = [
    "EMPTY_SHA256",
    "UNSIGNED_PAYLOAD",
    "Addresser",
    "CredentialSource",
    "payload_hash",
    "presign_url",
    "sign_headers",
]


def _chain_credentials(profile: str | None) -> Any:
    """botocore's standard chain (blocking: reads files, may ask the metadata service)."""
    import botocore.session

    session = botocore.session.Session(profile=profile)
    return session.get_credentials()


class CredentialSource:
    """Current credentials: the explicit keys of the settings, or botocore's chain resolved off the reactor.

    ``resolve`` (a blocking callable returning botocore credentials or None)
    is replaceable for tests; by default it is the standard chain.
    """

    def __init__(self, settings: S3Settings, io: StorageIO, resolve: Callable[[str | None], Any] | None = None) -> None:
        self._io = io
        self._profile = settings.profile
        self._resolve = resolve or _chain_credentials
        self._credentials: Any = None
        self._waiters: dict[str, list[defer.Deferred[Any]]] = {"chain": [], "refresh": []}
        if settings.access_key_id is not None:
            self._credentials = Credentials(
                settings.access_key_id, settings.secret_access_key, settings.session_token, method="explicit"
            )

    @property
    def method(self) -> str | None:
        """Where the credentials came from (botocore's name: "env", "shared-credentials-file", "iam-role"...)."""
        return getattr(self._credentials, "method", None)

    async def get(self) -> ReadOnlyCredentials:
        """Credentials good for signing now; resolves or refreshes them on a thread when needed."""
        creds = self._credentials
        if creds is None:
            creds = await self._once("chain", self._resolve_chain)
        if isinstance(creds, RefreshableCredentials) and creds.refresh_needed():
            frozen: ReadOnlyCredentials = await self._once("refresh", creds.get_frozen_credentials)
            return frozen
        return creds.get_frozen_credentials()

    def _resolve_chain(self) -> Any:
        creds = self._resolve(self._profile)
        if creds is None:
            raise S3CredentialsError(
                "no S3 credentials: set access_key_id and secret_access_key, or provide them through the "
                "environment, a shared credentials file or an instance/pod role",
                code="NoCredentials",
            )
        self._credentials = creds
        return creds

    async def _once(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run blocking ``fn`` on the I/O pool, shared by every caller that asks for ``what`` while it runs."""
        waiter: defer.Deferred[Any] = defer.Deferred()
        waiters = self._waiters[what]
        waiters.append(waiter)
        if len(waiters) == 1:
            self._io.run(fn).addBoth(self._settle, what)
        try:
            return await waiter
        except S3CredentialsError:
            raise
        except Exception as e:
            raise S3CredentialsError(f"resolving S3 credentials failed: {e}", code="CredentialsFailed") from e

    def _settle(self, result: Any, what: str) -> None:
        waiters, self._waiters[what] = self._waiters[what], []
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)


def _query_string(query: Iterable[tuple[str, str | None]]) -> str:
    """``a=b&flag`` with S3's encoding (RFC 3986 unreserved characters kept, everything else %XX)."""
    parts = []
    for name, value in query:
        parts.append(quote(name, safe="-_.~") + ("" if value is None else "=" + quote(value, safe="-_.~")))
    return "&".join(parts)


class Addresser:
    """Builds object and bucket URLs for path-style or virtual-host addressing, keys under the prefix."""

    def __init__(self, settings: S3Settings) -> None:
        parts = urlsplit(settings.endpoint_url)
        self.scheme = parts.scheme
        self.netloc = parts.netloc
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        self.virtual = settings.virtual_host

    def full_key(self, key: str) -> str:
        """The key as stored in the bucket (with the prefix)."""
        return self.prefix + key

    def url(self, key: str | None, query: Iterable[tuple[str, str | None]] = ()) -> str:
        """The URL of ``key`` (under the prefix), or of the bucket itself for None."""
        path = "" if key is None else quote(self.full_key(key), safe="/~")
        if self.virtual:
            base = f"{self.scheme}://{self.bucket}.{self.netloc}/{path}"
        else:
            base = f"{self.scheme}://{self.netloc}/{quote(self.bucket, safe='')}" + (
                f"/{path}" if key is not None else ""
            )
        qs = _query_string(query)
        return base + ("?" + qs if qs else "")


class _Signer(S3SigV4Auth):
    """S3SigV4Auth with the payload hash handed in (the body itself never passes through botocore)."""

    def payload(self, request: AWSRequest) -> str:
        return str(request.context["payload_sha256"])


def sign_headers(
    credentials: ReadOnlyCredentials,
    region: str,
    method: str,
    url: str,
    headers: dict[str, str],
    payload_sha256: str,
) -> dict[str, str]:
    """``headers`` plus the SigV4 headers (Authorization, X-Amz-Date, X-Amz-Content-SHA256, token) for the request.

    Every header given is signed, so the caller must send exactly these (the
    Host header is the URL's, as the HTTP client computes it).
    """
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=b"")
    request.context["payload_sha256"] = payload_sha256
    _Signer(credentials, "s3", region).add_auth(request)
    return {str(k): str(v) for k, v in request.headers.items()}


def presign_url(credentials: ReadOnlyCredentials, region: str, url: str, expires_seconds: int) -> str:
    """``url`` with a SigV4 query-string signature valid for ``expires_seconds`` (a GET anyone can fetch)."""
    request = AWSRequest(method="GET", url=url)
    S3SigV4QueryAuth(credentials, "s3", region, expires=expires_seconds).add_auth(request)
    return str(request.url)


def payload_hash(body: bytes | None) -> str:
    """The SHA-256 a body in memory is signed with (the empty body's for none)."""
    return EMPTY_SHA256 if not body else sha256(body).hexdigest()
