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


def _kind(name: str, status: int, code: str, doc: str) -> type[HarborError]:
    return type(name, (HarborError,), {"status": status, "code": code, "__doc__": doc})


Unauthorized = _kind("Unauthorized", 401, "UNAUTHORIZED", "Authentication required or failed.")
Denied = _kind("Denied", 403, "DENIED", "Authenticated, but not allowed.")
NotFound = _kind("NotFound", 404, "NOT_FOUND", "No such resource.")
NameUnknown = _kind("NameUnknown", 404, "NAME_UNKNOWN", "Repository not known.")
NameInvalid = _kind("NameInvalid", 400, "NAME_INVALID", "Repository name not valid.")
ManifestUnknown = _kind("ManifestUnknown", 404, "MANIFEST_UNKNOWN", "Manifest not known.")
ManifestInvalid = _kind("ManifestInvalid", 400, "MANIFEST_INVALID", "Manifest not valid.")
BlobUnknown = _kind("BlobUnknown", 404, "BLOB_UNKNOWN", "Blob not known.")
DigestInvalid = _kind("DigestInvalid", 400, "DIGEST_INVALID", "Digest not valid or does not match.")
SizeInvalid = _kind("SizeInvalid", 400, "SIZE_INVALID", "Content size does not match.")
Unsupported = _kind("Unsupported", 415, "UNSUPPORTED", "Operation or media type not supported.")
BadRequest = _kind("BadRequest", 400, "BAD_REQUEST", "The request is malformed.")
RangeNotSatisfiable = _kind("RangeNotSatisfiable", 416, "RANGE_INVALID", "The range cannot be served.")
UpstreamUnavailable = _kind("UpstreamUnavailable", 503, "UPSTREAM_UNAVAILABLE", "No upstream could answer.")
UpstreamBadResponse = _kind("UpstreamBadResponse", 502, "UPSTREAM_ERROR", "An upstream answered badly.")
InsufficientStorage = _kind("InsufficientStorage", 507, "INSUFFICIENT_STORAGE",
                            "The cache's disk is too full to store what was asked.")
TooManyRequests = _kind("TooManyRequests", 429, "TOOMANYREQUESTS", "Upstream rate limit.")

# Hosted registry (issue 7): uploads and manifest pushes.
BlobUploadUnknown = _kind("BlobUploadUnknown", 404, "BLOB_UPLOAD_UNKNOWN", "Upload session not known.")
BlobUploadInvalid = _kind("BlobUploadInvalid", 400, "BLOB_UPLOAD_INVALID", "Upload session or chunk not valid.")
ManifestBlobUnknown = _kind("ManifestBlobUnknown", 400, "MANIFEST_BLOB_UNKNOWN",
                            "A blob or manifest the manifest references is not known.")
