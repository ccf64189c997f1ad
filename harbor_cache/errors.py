"""Errors in the seed's format: ``{"errors": [{"code", "message", "detail"}]}``.

Code anywhere below the fronts raises `HarborError` (or a subclass); the web
layer turns it into a response with `error_body`.  One helper, one format.
"""

from __future__ import annotations

import json
from typing import Any


class HarborError(Exception):
    """An error with an HTTP status and an OCI-style error code."""

    status = 500
    code = "INTERNAL_ERROR"

    def __init__(self, message: str, detail: Any = None, *, status: int | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.headers = dict(headers or {})


def error_body(code: str, message: str, detail: Any = None) -> bytes:
    entry: dict[str, Any] = {"code": code, "message": message}
    if detail is not None:
        entry["detail"] = detail
    return json.dumps({"errors": [entry]}).encode()


# One class per error kind: greppable, usable as a base class and as a type.


class Unauthorized(HarborError):
    """Authentication required or failed."""

    status = 401
    code = "UNAUTHORIZED"


class Denied(HarborError):
    """Authenticated, but not allowed."""

    status = 403
    code = "DENIED"


class NotFound(HarborError):
    """No such resource."""

    status = 404
    code = "NOT_FOUND"


class NameUnknown(HarborError):
    """Repository not known."""

    status = 404
    code = "NAME_UNKNOWN"


class NameInvalid(HarborError):
    """Repository name not valid."""

    status = 400
    code = "NAME_INVALID"


class ManifestUnknown(HarborError):
    """Manifest not known."""

    status = 404
    code = "MANIFEST_UNKNOWN"


class ManifestInvalid(HarborError):
    """Manifest not valid."""

    status = 400
    code = "MANIFEST_INVALID"


class BlobUnknown(HarborError):
    """Blob not known."""

    status = 404
    code = "BLOB_UNKNOWN"


class DigestInvalid(HarborError):
    """Digest not valid or does not match."""

    status = 400
    code = "DIGEST_INVALID"


class SizeInvalid(HarborError):
    """Content size does not match."""

    status = 400
    code = "SIZE_INVALID"


class Unsupported(HarborError):
    """Operation or media type not supported."""

    status = 415
    code = "UNSUPPORTED"


class BadRequest(HarborError):
    """The request is malformed."""

    status = 400
    code = "BAD_REQUEST"


class RangeNotSatisfiable(HarborError):
    """The range cannot be served."""

    status = 416
    code = "RANGE_INVALID"


class UpstreamUnavailable(HarborError):
    """No upstream could answer."""

    status = 503
    code = "UPSTREAM_UNAVAILABLE"


class UpstreamBadResponse(HarborError):
    """An upstream answered badly."""

    status = 502
    code = "UPSTREAM_ERROR"


class InsufficientStorage(HarborError):
    """The cache's disk is too full to store what was asked."""

    status = 507
    code = "INSUFFICIENT_STORAGE"


class TooManyRequests(HarborError):
    """Upstream rate limit."""

    status = 429
    code = "TOOMANYREQUESTS"


# The hosted registry: uploads and manifest pushes.

class BlobUploadUnknown(HarborError):
    """Upload session not known."""

    status = 404
    code = "BLOB_UPLOAD_UNKNOWN"


class BlobUploadInvalid(HarborError):
    """Upload session or chunk not valid."""

    status = 400
    code = "BLOB_UPLOAD_INVALID"


class ManifestBlobUnknown(HarborError):
    """A blob or manifest the manifest references is not known."""

    status = 400
    code = "MANIFEST_BLOB_UNKNOWN"
