"""The S3 client's settings and errors: plain data, no I/O.

`S3Settings` is what the storage wiring will fill from ``[storage]`` (issue
26); every limit the client applies (attempts, backoff, timeout, part sizes)
is a field here with a safe default, so nothing is a hidden constant.  The
secret key is kept out of ``repr`` so a settings object can be logged.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

#: S3's own limits on multipart uploads (the API rejects anything outside them)
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
MAX_PARTS = 10_000

ADDRESSING = ("auto", "path", "virtual")


@dataclass(frozen=True)
class S3Settings:
    """Where the bucket is, how to reach it, and how hard to try.

    ``endpoint``: base URL of any S3-compatible service (None: AWS's regional
    endpoint ``https://s3.<region>.amazonaws.com``).  ``addressing``: "path"
    (``endpoint/bucket/key``), "virtual" (``bucket.endpoint/key``) or "auto"
    (virtual when the bucket name is a DNS label and the endpoint is not an IP
    address or ``localhost``, else path).  ``prefix``: every key the client
    touches lives under it (``"cache/"`` -> ``cache/<key>``).

    Credentials: ``access_key_id`` + ``secret_access_key`` (+ optional
    ``session_token``) when given, else botocore's standard chain
    (environment, shared credentials/config file and ``profile``, container
    or instance role).

    Faults: a request that fails with a retryable error (500, 502, 503, 504,
    429, ``SlowDown`` and the like, a reset connection, a timeout) is tried
    again up to ``max_attempts`` in all, after a sleep drawn uniformly from
    ``[0, min(backoff_cap, backoff_base * 2**n))`` ("full jitter").
    ``timeout``: seconds a request may go without progress (no body byte sent
    and no response headers yet) before it is abandoned and retried.
    """

    bucket: str
    endpoint: str | None = None
    region: str = "us-east-1"
    prefix: str = ""
    addressing: str = "auto"
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    profile: str | None = None
    max_attempts: int = 5
    backoff_base: float = 0.1
    backoff_cap: float = 5.0
    timeout: float = 60.0
    #: files up to this size are one PUT; larger ones a multipart upload
    multipart_threshold: int = 64 * 1024 * 1024
    #: the multipart part size (raised for a file that would need more than 10,000 parts)
    part_size: int = 16 * 1024 * 1024
    #: bytes of a file read per chunk while it streams into a request (what one upload holds in memory)
    read_chunk: int = 1024 * 1024
    #: largest XML answer (a listing page, an error) read into memory
    max_xml_bytes: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise ValueError("S3 settings: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        out = []
        if not self.bucket or "/" in self.bucket:
            out.append(f"bucket {self.bucket!r} is not a bucket name")
        if self.addressing not in ADDRESSING:
            out.append(f"addressing {self.addressing!r} is not one of {', '.join(ADDRESSING)}")
        if self.endpoint is not None:
            parts = urlsplit(self.endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query:
                out.append(f"endpoint {self.endpoint!r} is not a http(s)://host[:port] URL")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            out.append("access_key_id and secret_access_key go together")
        if self.prefix.startswith("/"):
            out.append("prefix must not start with '/'")
        if self.max_attempts < 1:
            out.append("max_attempts must be at least 1")
        if self.backoff_base <= 0 or self.backoff_cap < self.backoff_base:
            out.append("backoff_base must be > 0 and backoff_cap >= backoff_base")
        if self.timeout <= 0:
            out.append("timeout must be > 0")
        if not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            out.append(f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE}")
        if self.multipart_threshold < 1 or self.read_chunk < 1 or self.max_xml_bytes < 1024:
            out.append("multipart_threshold and read_chunk must be positive, max_xml_bytes at least 1024")
        return out

    @property
    def endpoint_url(self) -> str:
        """The service's base URL, without a trailing slash."""
        if self.endpoint is None:
            return f"https://s3.{self.region}.amazonaws.com"
        return self.endpoint.rstrip("/")

    @property
    def virtual_host(self) -> bool:
        """Whether requests name the bucket in the host (virtual-host addressing) rather than the path."""
        if self.addressing != "auto":
            return self.addressing == "virtual"
        host = urlsplit(self.endpoint_url).hostname or ""
        return _dns_compatible(self.bucket) and not _is_ip(host) and host != "localhost"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _dns_compatible(bucket: str) -> bool:
    """A bucket name that can be a host label: lower case, digits, hyphens, 3-63 characters, no dots.

    Names with dots are left to path style: under https they would not match
    the service's wildcard certificate.
    """
    from botocore.utils import check_dns_name

    return "." not in bucket and bool(check_dns_name(bucket))


class S3Error(Exception):
    """The store answered with an error (``code`` from its XML body, ``status`` the HTTP status).

    ``status`` is None when no answer arrived (connection refused, reset,
    timeout); ``code`` then names what happened ("ConnectionError", "Timeout").
    """

    def __init__(self, message: str, *, code: str, status: int | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.key = key


class S3NotFound(S3Error):
    """The key (``NoSuchKey``) or the multipart upload (``NoSuchUpload``) does not exist."""


class S3Unavailable(S3Error):
    """Every attempt failed with a retryable error; the last one is the message, ``attempts`` how many."""

    def __init__(self, message: str, *, code: str, status: int | None = None, attempts: int = 0) -> None:
        super().__init__(message, code=code, status=status)
        self.attempts = attempts


class S3CredentialsError(S3Error):
    """No credentials could be found (the chain came up empty) or resolving them failed."""
