"""The errors the program raises, in the seed's format: ``{"errors": [{"code", "message", "detail"}]}``.

Each kind is one class here: greppable, usable as a base class and as a type.
A class says *what* went wrong (its `ErrorCode`, a message, a detail); it
does not say which HTTP status that is.  The fronts and the web layer map
classes to statuses in one table (`harbor_cache.http.errors`), so the core
decides without knowing about HTTP.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Every ``code`` an error body can carry (OCI distribution codes and the seed's own)."""

    INTERNAL_ERROR = "INTERNAL_ERROR"
    BAD_REQUEST = "BAD_REQUEST"
    UNAUTHORIZED = "UNAUTHORIZED"
    DENIED = "DENIED"
    NOT_FOUND = "NOT_FOUND"
    CONFLICT = "CONFLICT"
    UNSUPPORTED = "UNSUPPORTED"
    URI_TOO_LONG = "URI_TOO_LONG"
    REQUEST_TIMEOUT = "REQUEST_TIMEOUT"
    TOOMANYREQUESTS = "TOOMANYREQUESTS"
    NAME_UNKNOWN = "NAME_UNKNOWN"
    NAME_INVALID = "NAME_INVALID"
    TAG_INVALID = "TAG_INVALID"
    MANIFEST_UNKNOWN = "MANIFEST_UNKNOWN"
    MANIFEST_INVALID = "MANIFEST_INVALID"
    MANIFEST_BLOB_UNKNOWN = "MANIFEST_BLOB_UNKNOWN"
    BLOB_UNKNOWN = "BLOB_UNKNOWN"
    BLOB_UPLOAD_UNKNOWN = "BLOB_UPLOAD_UNKNOWN"
    BLOB_UPLOAD_INVALID = "BLOB_UPLOAD_INVALID"
    DIGEST_INVALID = "DIGEST_INVALID"
    SIZE_INVALID = "SIZE_INVALID"
    RANGE_INVALID = "RANGE_INVALID"
    PAGINATION_NUMBER_INVALID = "PAGINATION_NUMBER_INVALID"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    UPSTREAM_ERROR = "UPSTREAM_ERROR"
    INSUFFICIENT_STORAGE = "INSUFFICIENT_STORAGE"
    INDEX_UNAVAILABLE = "INDEX_UNAVAILABLE"
    DIRECTORY_UNAVAILABLE = "DIRECTORY_UNAVAILABLE"
    STORAGE_UNAVAILABLE = "STORAGE_UNAVAILABLE"


class HarborError(Exception):
    """An error a client is told about; ``code`` may be narrowed per instance (the status stays the class's)."""

    code: ErrorCode = ErrorCode.INTERNAL_ERROR

    def __init__(
        self, message: str, detail: Any = None, *, code: ErrorCode | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.message = message
        self.detail = detail
        if code is not None:
            self.code = code
        self.headers = dict(headers or {})


def error_body(code: str, message: str, detail: Any = None) -> bytes:
    entry: dict[str, Any] = {"code": str(code), "message": message}
    if detail is not None:
        entry["detail"] = detail
    return json.dumps({"errors": [entry]}).encode()


# -- the request and who sent it ------------------------------------------------


class BadRequest(HarborError):
    """The request is malformed."""

    code = ErrorCode.BAD_REQUEST


class UriTooLong(BadRequest):
    """A path longer than any upstream would take (never sent upstream)."""

    code = ErrorCode.URI_TOO_LONG


class TooLarge(HarborError):
    """A body above its limit (a manifest, a checksum file, a JSON document)."""

    code = ErrorCode.SIZE_INVALID


class Unauthorized(HarborError):
    """Authentication required or failed."""

    code = ErrorCode.UNAUTHORIZED


class Denied(HarborError):
    """Authenticated, but not allowed."""

    code = ErrorCode.DENIED


class NotAllowed(HarborError):
    """The method is not available on this resource (a group, a proxy repository, cached content)."""

    code = ErrorCode.UNSUPPORTED


class Conflict(HarborError):
    """Well formed, but clashes with the current state (a duplicate name, the last admin, a redeploy)."""

    code = ErrorCode.CONFLICT


class Unsupported(HarborError):
    """Operation or media type not supported."""

    code = ErrorCode.UNSUPPORTED


# -- what is (not) there ----------------------------------------------------------


class NotFound(HarborError):
    """No such resource."""

    code = ErrorCode.NOT_FOUND


class UnknownRepository(NotFound):
    """No Maven repository with this id is configured."""


class PathNotFound(HarborError):
    """Browse/info of a path the cache does not hold (the seed answers 400 for it)."""

    code = ErrorCode.NOT_FOUND


class NameUnknown(HarborError):
    """Repository not known."""

    code = ErrorCode.NAME_UNKNOWN


class NameInvalid(HarborError):
    """Repository name not valid."""

    code = ErrorCode.NAME_INVALID


class TagInvalid(HarborError):
    """Tag not valid."""

    code = ErrorCode.TAG_INVALID


class ManifestUnknown(HarborError):
    """Manifest not known."""

    code = ErrorCode.MANIFEST_UNKNOWN


class ManifestInvalid(HarborError):
    """Manifest not valid."""

    code = ErrorCode.MANIFEST_INVALID


class BlobUnknown(HarborError):
    """Blob not known."""

    code = ErrorCode.BLOB_UNKNOWN


class DigestInvalid(HarborError):
    """Digest not valid or does not match."""

    code = ErrorCode.DIGEST_INVALID


class SizeInvalid(HarborError):
    """Content size does not match."""

    code = ErrorCode.SIZE_INVALID


# -- upstreams and the disk ------------------------------------------------------------


class UpstreamUnavailable(HarborError):
    """No upstream could answer."""

    code = ErrorCode.UPSTREAM_UNAVAILABLE


class UpstreamBadResponse(HarborError):
    """An upstream answered badly."""

    code = ErrorCode.UPSTREAM_ERROR


class TooManyRequests(HarborError):
    """Upstream rate limit."""

    code = ErrorCode.TOOMANYREQUESTS


class InsufficientStorage(HarborError):
    """The cache's disk is too full to store what was asked."""

    code = ErrorCode.INSUFFICIENT_STORAGE


class IndexUnavailable(HarborError):
    """The index's database does not answer (PostgreSQL down or unreachable): try again later.

    Raised by the index itself for a transaction that failed for want of a
    connection, so every caller sees one error and the log says once that
    the database went away (`harbor_cache.index.engine.IndexAvailability`).
    """

    code = ErrorCode.INDEX_UNAVAILABLE


class StorageUnavailable(HarborError):
    """The object store behind ``[storage] backend = "s3"`` does not answer (after its retries): try again later.

    Raised for a request that needs the bucket (a commit, content not on
    this node's local tier); warm hits from the local tier do not. See
    `harbor_cache.storage.bucket`.
    """

    code = ErrorCode.STORAGE_UNAVAILABLE


class DirectoryUnavailable(HarborError):
    """The LDAP directory (``[auth.ldap]``) does not answer, times out or refuses TLS or the service bind.

    A login that needs the directory fails closed with it (503
    ``DIRECTORY_UNAVAILABLE``) on every front; local users are not affected.
    `harbor_cache.core.identity.directory` logs each outage once.
    """

    code = ErrorCode.DIRECTORY_UNAVAILABLE


# -- the hosted registry: uploads and manifest pushes ---------------------------------


class BlobUploadUnknown(HarborError):
    """Upload session not known."""

    code = ErrorCode.BLOB_UPLOAD_UNKNOWN


class BlobUploadInvalid(HarborError):
    """Upload session or chunk not valid."""

    code = ErrorCode.BLOB_UPLOAD_INVALID


class UploadRangeInvalid(BlobUploadInvalid):
    """A chunk that does not start where the session ends (a gap or an overlap)."""


class ManifestBlobUnknown(HarborError):
    """A blob or manifest the manifest references is not known."""

    code = ErrorCode.MANIFEST_BLOB_UNKNOWN


class NotHosted(NotAllowed):
    """DELETE of content this registry only caches (removed through the management API instead)."""


class DeployRefused(Conflict):
    """The deploy breaks a repository rule; the message is also the HTTP reason phrase mvn prints."""


class VersionPolicyRefused(BadRequest):
    """A SNAPSHOT into a release repository or a release into a snapshot one (``version_policy``); 400.

    Like `DeployRefused`, the message is also the HTTP reason phrase mvn prints.
    """


class DeployNotAllowed(NotAllowed):
    """PUT to a proxy or group repository."""
