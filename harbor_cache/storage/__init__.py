"""Content-addressed files on disk, temp files that are hashed as they grow, and
the producers that stream a (possibly still growing) file to an HTTP response.

Layout: ``DATA/blobs/sha256/ab/abcd...`` for committed content and ``DATA/tmp/``
for writes in progress.  A file only ever appears under its digest name by an
atomic rename after its digest has been checked, so a crash leaves at most a
stray temp file, which `Storage.clean_temp` removes at the next start.  The
file is fsynced before that rename and its directory after it, so once the
index row is committed a power loss cannot leave the row pointing at a short
file (cost measured in ``bench/fsync_bench.py``).

Disk writes and hashing run on a thread pool (`ThreadIO`), never on the
reactor: the reactor only queues chunks and is told when they are on disk.
Readers follow the bytes that are on disk and never pass the writer; until the
content is verified they also hold back its last byte, so a client can never
receive a complete-looking body that later turns out to be corrupt.
"""

from __future__ import annotations

from harbor_cache.storage.errors import BlobCorrupt, SourceFailed, StorageFull
from harbor_cache.storage.io import StorageIO, ThreadIO
from harbor_cache.storage.layout import Storage
from harbor_cache.storage.reader import READ_CHUNK, GrowingSource, RangeProducer, StoredSource
from harbor_cache.storage.writer import TempBlob

__all__ = [
    "READ_CHUNK",
    "BlobCorrupt",
    "GrowingSource",
    "RangeProducer",
    "SourceFailed",
    "Storage",
    "StorageFull",
    "StorageIO",
    "StoredSource",
    "TempBlob",
    "ThreadIO",
]
