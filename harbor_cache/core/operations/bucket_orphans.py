"""Orphan objects in the bucket (``[storage] backend = "s3"``): objects no index row points at, and their removal.

A commit uploads the object before its row is written, and a delete
removes the row before the object, so a crash between the two (or a
delete whose object removal failed) leaves an object nothing refers to.
This pass lists the bucket (ListObjectsV2, page by page, never the whole
listing in memory), asks the index which digests are referenced, and
deletes the others (and aborts multipart uploads nobody completed) once older than
``cache.orphan_grace_seconds`` (a younger one may be a commit whose row is
on its way, on this node or another).  It runs with the local sweep
(`OrphanSweeper.sweep`), and what it leaves is counted in the bucket's bytes.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from twisted.logger import Logger

if TYPE_CHECKING:
    from collections.abc import Callable

    from harbor_cache.index import Index
    from harbor_cache.storage.bucket import Bucket

log = Logger()

PAGE = 1000


def _age(last_modified: str, now: float) -> float:
    try:
        return now - datetime.fromisoformat(last_modified.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0  # unknown: treated as young (kept)


async def sweep_bucket(
    index: Index,
    bucket: Bucket,
    grace: float,
    now: float,
    busy: Callable[[], set[str]],
    upload_idle: float | None = None,
) -> tuple[int, int]:
    """One pass over the bucket; returns (objects removed, bytes removed). Sets ``bucket.orphan_bytes``.

    ``upload_idle`` (``uploads.idle_seconds``): chunk objects of upload
    sessions (``uploads/<session>/<offset>``) older than that whose session
    the index no longer has are removed too (a node died before deleting
    them); None leaves them alone.
    """
    from harbor_cache.storage.bucket import digest_of_key
    from harbor_cache.storage.upload_chunks import session_of_key

    removed = removed_bytes = left_bytes = 0
    page: list[tuple[str, int, float]] = []
    stray_chunks: list[tuple[str, str, int]] = []  # (session, key, size) old enough to go if the session is gone

    async def settle(page: list[tuple[str, int, float]]) -> None:
        nonlocal removed, removed_bytes, left_bytes
        referenced = await index.digests_referenced([d for d, _, _ in page])
        in_use = busy()
        doomed = []
        for digest, size, age in page:
            if digest in referenced:
                continue
            if digest in in_use or age < grace:
                left_bytes += size
                continue
            doomed.append((digest, size))
        if doomed:
            again = await index.digests_referenced([d for d, _ in doomed])
            doomed = [(d, size) for d, size in doomed if d not in again]
            await bucket.delete([d for d, _ in doomed])
            removed += len(doomed)
            removed_bytes += sum(size for _, size in doomed)

    async for info in bucket.client.list_objects_v2("", page_size=PAGE):
        digest = digest_of_key(info.key)
        if digest is None:
            chunk = session_of_key(info.key)
            if chunk is not None and upload_idle is not None and _age(info.last_modified, now) >= upload_idle:
                stray_chunks.append((chunk[0], info.key, info.size))
            continue
        page.append((digest, info.size, _age(info.last_modified, now)))
        if len(page) >= PAGE:
            await settle(page)
            page = []
    if page:
        await settle(page)
    bucket.orphan_bytes = left_bytes
    if stray_chunks:
        chunks_removed, chunks_bytes = await _sweep_chunks(index, bucket, stray_chunks)
        removed += chunks_removed
        removed_bytes += chunks_bytes
    # Multipart uploads a crashed node never completed nor aborted: their parts are stored (and billed).
    for upload in await bucket.client.list_multipart_uploads(""):
        if digest_of_key(upload.key) is not None and _age(upload.initiated, now) >= grace:
            await bucket.client.abort_multipart_upload(upload.key, upload.upload_id)
            log.info("aborted the abandoned multipart upload of {key}", key=upload.key)
    if removed:
        log.info(
            "removed {count} objects ({size} bytes) from the bucket that no index entry pointed at",
            count=removed, size=removed_bytes,
        )  # fmt: skip
    return removed, removed_bytes


async def _sweep_chunks(index: Index, bucket: Bucket, chunks: list[tuple[str, str, int]]) -> tuple[int, int]:
    """Delete the chunk objects among ``chunks`` whose session the index no longer has; (count, bytes)."""
    live: dict[str, bool] = {}
    doomed: list[tuple[str, int]] = []
    for session_id, key, size in chunks:
        if session_id not in live:
            live[session_id] = await index.get_upload(session_id) is not None
        if not live[session_id]:
            doomed.append((key, size))
    if not doomed:
        return 0, 0
    failed = await bucket.client.delete_objects([key for key, _ in doomed])
    gone = [(key, size) for key, size in doomed if key not in failed]
    log.info("removed {count} chunk objects of upload sessions that ended", count=len(gone))
    return len(gone), sum(size for _, size in gone)
