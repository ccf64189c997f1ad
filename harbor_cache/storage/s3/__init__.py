"""An S3 client for the object-storage backend (issue 26): botocore signs, treq carries the bytes.

`S3Client` speaks S3's object API (HEAD/GET/PUT/DELETE, batch delete,
ListObjectsV2, multipart uploads, presigned GETs) on the reactor; botocore is
used only for the credential chain and SigV4 (`auth`).  See
docs/decisions.md, "S3: botocore signs, treq carries the bytes".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harbor_cache.storage.s3.config import S3CredentialsError, S3Error, S3NotFound, S3Settings, S3Unavailable
from harbor_cache.storage.s3.wire import MultipartUpload, ObjectInfo

if TYPE_CHECKING:
    from harbor_cache.storage.s3.client import S3Client


def __getattr__(name: str) -> Any:
    """`S3Client` is imported when first asked for: it needs botocore, the optional ``[s3]`` extra, and a
    server on the filesystem backend (the default) imports this package for its errors without it."""
    if name == "S3Client":
        from harbor_cache.storage.s3.client import S3Client

        return S3Client
    raise AttributeError(name)


__all__ = [
    "MultipartUpload",
    "ObjectInfo",
    "S3Client",
    "S3CredentialsError",
    "S3Error",
    "S3NotFound",
    "S3Settings",
    "S3Unavailable",
]
