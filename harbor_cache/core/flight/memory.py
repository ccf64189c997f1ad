"""A bounded, least-recently-used memory of immutable bodies by digest.

Content named by its digest never changes, so what was read once can be
served again from memory without a file or a query: manifests for the OCI
front, small files (POMs, checksums, metadata) for Maven.  The bound is in
bytes, not entries, so a few large bodies cannot crowd out the process.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class BoundedMemory(Generic[V]):
    """Digest -> value, evicting the least recently used once the values weigh more than ``limit`` bytes."""

    def __init__(self, limit: int, weigh: Callable[[V], int]):
        self.limit = limit
        self.size = 0
        self._weigh = weigh
        self._items: OrderedDict[str, V] = OrderedDict()

    def get(self, digest: str) -> V | None:
        value = self._items.get(digest)
        if value is not None:
            self._items.move_to_end(digest)
        return value

    def put(self, digest: str, value: V) -> None:
        if digest in self._items:
            return
        self._items[digest] = value
        self.size += self._weigh(value)
        while self.size > self.limit and self._items:
            _, old = self._items.popitem(last=False)
            self.size -= self._weigh(old)

    def discard(self, digest: str) -> None:
        value = self._items.pop(digest, None)
        if value is not None:
            self.size -= self._weigh(value)
