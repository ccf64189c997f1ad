"""Copy a file-system data directory's committed content into a bucket (issue 26: moving a cache to S3).

The bucket's keys are the data directory's own paths (``blobs/<algo>/<ab>/<hex>``
under the configured prefix, `bucket.blob_key`), and the index names content
only by digest, so a copy of ``blobs/`` into the bucket is all a switch to
``backend = "s3"`` needs: the index stays valid as it is.

`migrate` walks ``blobs/`` with ``scandir`` on the I/O pool, a batch of
entries at a time (memory stays one batch, however many files), and for each
file that is named like committed content:

* HEADs its key first: an object of the same size is already there (a
  previous, interrupted run, or the live server's own commits) and is
  skipped, so the copy is idempotent and resumable;
* with ``verify``, hashes the local file and refuses one that is not its
  digest (it is never uploaded; the S3 store also checks the payload hash of
  a single PUT);
* uploads it (`S3Client.put_file`: one PUT, or a multipart upload that is
  aborted on any failure, so nothing half-written is ever visible), then
  HEADs it again and compares the size.

Up to ``jobs`` files are in flight at once.  A file that disappears while
the walk runs (a live server evicted it, and its row with it) is counted as
gone, not as a failure.  Everything else that fails is listed in the report;
the caller exits non-zero on any.  Files not named like content (leftovers,
temp names) are counted and left alone.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from twisted.internet import defer

from harbor_cache.storage.bucket import blob_key, digest_of_key
from harbor_cache.storage.io import StorageIO
from harbor_cache.storage.s3 import S3Client, S3Error

#: directory entries read per trip to the I/O pool
BATCH = 256


@dataclass
class MigrationReport:
    """What a run did; ``failed`` is [(digest, reason)]."""

    total: int = 0
    total_bytes: int = 0
    copied: int = 0
    copied_bytes: int = 0
    skipped: int = 0
    skipped_bytes: int = 0
    gone: int = 0
    ignored: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.copied + self.skipped + self.gone + len(self.failed)

    @property
    def ok(self) -> bool:
        return not self.failed


def walk_blobs(blob_dir: str, ignored: list[str] | None = None) -> Iterator[tuple[str, str, int]]:
    """(digest, path, size) of each committed file under ``blob_dir`` (blocking; lazily, with scandir)."""
    if not os.path.isdir(blob_dir):
        return
    with os.scandir(blob_dir) as algos:
        for algo in algos:
            if not algo.is_dir(follow_symlinks=False):
                if ignored is not None:
                    ignored.append(algo.name)
                continue
            with os.scandir(algo.path) as shards:
                for shard in shards:
                    if not shard.is_dir(follow_symlinks=False):
                        if ignored is not None:
                            ignored.append(f"{algo.name}/{shard.name}")
                        continue
                    with os.scandir(shard.path) as files:
                        for entry in files:
                            name = f"blobs/{algo.name}/{shard.name}/{entry.name}"
                            digest = digest_of_key(name)
                            if digest is None or not entry.is_file(follow_symlinks=False):
                                if ignored is not None:
                                    ignored.append(name[len("blobs/") :])
                                continue
                            try:
                                size = entry.stat(follow_symlinks=False).st_size
                            except FileNotFoundError:
                                continue
                            yield digest, entry.path, size


def count_blobs(blob_dir: str) -> tuple[int, int]:
    """(files, bytes) a walk will see: the denominator of the progress lines (blocking)."""
    files = size = 0
    for _, _, n in walk_blobs(blob_dir):
        files += 1
        size += n
    return files, size


def file_digest(path: str, algo: str) -> str:
    """``algo:hex`` of the file (blocking, 1 MiB reads)."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return f"{algo}:{h.hexdigest()}"


def _next_batch(entries: Iterator[tuple[str, str, int]], n: int) -> list[tuple[str, str, int]]:
    out = []
    for item in entries:
        out.append(item)
        if len(out) == n:
            break
    return out


async def migrate(
    client: S3Client,
    io: StorageIO,
    blob_dir: str,
    *,
    verify: bool = False,
    jobs: int = 4,
    progress: Callable[[MigrationReport], None] | None = None,
    dry_run: bool = False,
) -> MigrationReport:
    """Copy every committed file under ``blob_dir`` that the bucket lacks (see the module docstring)."""
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    report = MigrationReport()
    report.total, report.total_bytes = await io.run(count_blobs, blob_dir)
    entries = walk_blobs(blob_dir, report.ignored)
    buffer: deque[tuple[str, str, int]] = deque()
    lock = defer.DeferredLock()
    exhausted = False

    async def take() -> tuple[str, str, int] | None:
        nonlocal exhausted
        await lock.acquire()
        try:  # one walker at a time: the generator is advanced on the pool, never by two threads
            if not buffer and not exhausted:
                batch = await io.run(_next_batch, entries, BATCH)
                exhausted = len(batch) < BATCH
                buffer.extend(batch)
            return buffer.popleft() if buffer else None
        finally:
            lock.release()

    async def worker() -> None:
        while (item := await take()) is not None:
            await _copy_one(client, io, report, *item, verify=verify, dry_run=dry_run)
            if progress is not None:
                progress(report)

    await defer.gatherResults([defer.ensureDeferred(worker()) for _ in range(jobs)], consumeErrors=True)
    return report


async def _copy_one(
    client: S3Client, io: StorageIO, report: MigrationReport, digest: str, path: str, size: int, *,
    verify: bool, dry_run: bool,
) -> None:  # fmt: skip
    key = blob_key(digest)
    algo, _, hexpart = digest.partition(":")
    try:
        there = await client.head_object(key)
        if there is not None and there.size == size:
            report.skipped += 1
            report.skipped_bytes += size
            return
        if dry_run:
            report.copied += 1
            report.copied_bytes += size
            return
        if verify:
            try:
                actual = await io.run(file_digest, path, algo)
            except ValueError:
                actual = None  # an algorithm hashlib does not know: sizes only
            if actual is not None and actual != digest:
                report.failed.append((digest, f"the local file is not its digest (it hashes to {actual}): not copied"))
                return
        await client.put_file(key, path, sha256=hexpart if verify and algo == "sha256" else None)
        stored = await client.head_object(key)
        if stored is None or stored.size != size:
            got = "nothing" if stored is None else f"{stored.size} bytes"
            report.failed.append((digest, f"after the upload the bucket holds {got}, not {size} bytes"))
            return
    except FileNotFoundError:
        report.gone += 1
        return
    except (S3Error, OSError) as e:
        if isinstance(e, S3Error) and e.code == "LocalReadError" and not os.path.exists(path):
            report.gone += 1
            return
        report.failed.append((digest, f"{type(e).__name__}: {e}"))
        return
    report.copied += 1
    report.copied_bytes += size
