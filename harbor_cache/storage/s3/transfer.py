"""`put_file`: a file into the bucket as one PUT or a multipart upload, never half-committed.

A multipart upload leaves nothing visible under the key until it is
completed, but its parts are stored (and billed) until it is completed or
aborted.  So every failure after the upload was created (a part that
exhausted its retries, a local read error, the completion refused, the caller
cancelling) aborts it before the error goes up; an abort that fails too is
logged and the original error still raised (the reconciler's
``list_multipart_uploads`` sweep is the backstop).

The part size is the caller's (or the settings'), raised when the file would
need more than S3's 10,000 parts.  Parts go one after the other: each streams
from the file in chunks, so memory stays about one chunk per upload.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from twisted.logger import Logger

from harbor_cache.storage.s3.config import MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, S3NotFound

if TYPE_CHECKING:
    from harbor_cache.storage.s3.client import S3Client

log = Logger()


def plan_parts(size: int, part_size: int) -> list[tuple[int, int, int]]:
    """[(part number, offset, length)] covering ``size`` bytes, at least ``part_size`` each but the last."""
    part_size = max(part_size, MIN_PART_SIZE, -(-size // MAX_PARTS))
    if part_size > MAX_PART_SIZE:
        raise ValueError(f"a file of {size} bytes is beyond S3's largest object")
    return [(n + 1, offset, min(part_size, size - offset)) for n, offset in enumerate(range(0, size, part_size))]


async def put_file(
    client: S3Client,
    key: str,
    path: str,
    *,
    part_size: int | None = None,
    content_type: str | None = None,
    sha256: str | None = None,
    offset: int = 0,
    length: int | None = None,
) -> str:
    """See `S3Client.put_file`; returns the object's ETag."""
    settings = client.settings
    size = length if length is not None else await client._io.run(_size, path) - offset
    if size <= settings.multipart_threshold:
        return await client.put_object(key, path, content_type=content_type, sha256=sha256, size=size, offset=offset)
    parts = [(n, offset + start, count) for n, start, count in plan_parts(size, part_size or settings.part_size)]
    upload_id = await client.create_multipart_upload(key, content_type=content_type)
    try:
        etags = []
        for number, offset, length in parts:
            etags.append((number, await client.upload_part(key, upload_id, number, path, offset, length)))
        try:
            return await client.complete_multipart_upload(key, upload_id, etags)
        except S3NotFound:
            # A completion whose answer was lost and was retried finds the upload gone: it was committed
            # if the object is there with the size we sent.
            info = await client.head_object(key)
            if info is None or info.size != size:
                raise
            return info.etag
    except BaseException as failure:
        try:
            await client.abort_multipart_upload(key, upload_id)
        except Exception as e:
            log.warn(
                "S3 multipart upload {upload_id} of {key} failed ({failure}) and aborting it failed too: {error}",
                upload_id=upload_id, key=key, failure=failure, error=e,
            )  # fmt: skip
        raise


def _size(path: str) -> int:
    return os.stat(path).st_size
