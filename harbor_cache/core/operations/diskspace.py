"""Free disk space: what /health, cold downloads and eviction need to know about it.

``cache.min_free_bytes`` is the floor an operator wants kept free on the data
directory's filesystem: below it /health reports ``degraded`` (problem
``disk_space``) and each eviction pass frees proxied content until the floor
holds again.  A cold download is refused (507 ``INSUFFICIENT_STORAGE``) only
when the disk cannot take it at all (its length plus `storage.errors.RESERVE_BYTES`),
and each refusal asks for an eviction pass at once.  A push (blob upload, Maven
deploy) is refused from its Content-Length when it would end below the floor
(`check_upload_room`), and one that fills the disk midway is 507 as well
(`disk_full_error`).
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from harbor_cache.errors import InsufficientStorage
from harbor_cache.storage.errors import RESERVE_BYTES, StorageFull

if TYPE_CHECKING:
    from harbor_cache.settings.runtime import RuntimeSettings
    from harbor_cache.storage import Storage

log = Logger()


def is_disk_full(error: BaseException) -> bool:
    """A write failed for want of space: ENOSPC/EDQUOT, `StorageFull`, sqlite's "database or disk is full"."""
    if isinstance(error, StorageFull):
        return True
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(error, sqlite3.OperationalError) and "full" in str(error):
        return True
    return "disk is full" in str(error) or "No space left" in str(error)


def disk_full_error(error: BaseException) -> InsufficientStorage | None:
    """``error`` as the 507 a client gets when its push ran out of space midway; None for any other error."""
    if isinstance(error, InsufficientStorage):
        return error
    if not is_disk_full(error):
        return None
    return InsufficientStorage(
        "the cache's disk filled up while storing this: nothing was kept", {"reason": str(error)}
    )


class DiskSpace:
    def __init__(self, storage: Storage, settings: RuntimeSettings, on_low: Callable[[], Any] | None = None) -> None:
        self.storage = storage
        self.settings = settings
        # Called (not awaited) when a download is refused: the service runs an eviction pass.
        self.on_low = on_low

    def free(self) -> int:
        try:
            return self.storage.free_bytes()
        except OSError:
            return 0

    def floor(self) -> int:
        return self.settings.get("cache.min_free_bytes")

    def low(self) -> bool:
        """Below the floor (for /health)."""
        return self.free() < self.floor()

    def shortfall(self) -> int:
        """Bytes to free to get back to the floor (0 when it holds)."""
        return max(0, self.floor() - self.free())

    def check_room(self, length: int | None) -> None:
        """Raise `InsufficientStorage` when a body of ``length`` bytes (None: unknown) cannot be stored."""
        self._refuse_short(length, RESERVE_BYTES)

    def check_upload_room(self, length: int | None) -> None:
        """Raise `InsufficientStorage` when a pushed body of ``length`` bytes would end below the floor.

        Stricter than `check_room`: pushed content is never evicted, so an
        upload that took the disk below ``cache.min_free_bytes`` would leave
        the cache degraded until an operator steps in.  Checked from the
        headers, before a byte of the body is read (None: chunked, the disk
        must at least be above the floor now).
        """
        self._refuse_short(length, max(self.floor(), RESERVE_BYTES))

    def _refuse_short(self, length: int | None, margin: int) -> None:
        free = self.free()
        needed = (length or 0) + margin
        if free >= needed:
            return
        log.warn("refusing to store {length} bytes: {free} bytes free", length=length, free=free)
        if self.on_low is not None:
            try:
                self.on_low()
            except Exception:
                log.failure("asking for an eviction pass")
        raise InsufficientStorage(
            "the cache's disk is full: it cannot store this now", {"free_bytes": free, "needed_bytes": needed}
        )
