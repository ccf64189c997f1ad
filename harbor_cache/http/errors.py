"""Which HTTP status each error class is: the one place the program maps what went wrong to a status.

Classes are looked up along their MRO, so a subclass answers with its base's
status unless it has a row of its own.  An error raised by a front that must
pick its status per instance (an authentication challenge is 401 or 403)
sets ``http_status`` on itself.
"""

from __future__ import annotations

from harbor_cache import errors as e
from harbor_cache.http.request_body import BodyTooSlow

STATUS: dict[type[e.HarborError], int] = {
    e.HarborError: 500,
    e.BadRequest: 400,
    e.UriTooLong: 414,
    e.TooLarge: 413,
    e.Unauthorized: 401,
    e.Denied: 403,
    e.NotAllowed: 405,
    e.Conflict: 409,
    e.Unsupported: 415,
    e.NotFound: 404,
    e.PathNotFound: 400,
    e.NameUnknown: 404,
    e.NameInvalid: 400,
    e.TagInvalid: 400,
    e.ManifestUnknown: 404,
    e.ManifestInvalid: 400,
    e.BlobUnknown: 404,
    e.DigestInvalid: 400,
    e.SizeInvalid: 400,
    e.UpstreamUnavailable: 503,
    e.UpstreamBadResponse: 502,
    e.TooManyRequests: 429,
    e.InsufficientStorage: 507,
    e.IndexUnavailable: 503,
    e.StorageUnavailable: 503,
    e.DirectoryUnavailable: 503,
    e.BlobUploadUnknown: 404,
    e.BlobUploadInvalid: 400,
    e.UploadRangeInvalid: 416,
    e.ManifestBlobUnknown: 400,
    BodyTooSlow: 408,
}


def status_of(error: e.HarborError) -> int:
    """The HTTP status that answers ``error``."""
    explicit = getattr(error, "http_status", None)
    if explicit is not None:
        return explicit
    for cls in type(error).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 500
