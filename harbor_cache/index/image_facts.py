"""Facts the console needs to tell the truth about images and blobs, kept cheap.

* which tags and manifests each repository key holds (to merge the keys that
  name one upstream image: ``docker.io/library/test`` and ``library/test``);
* which image a blob belongs to: hosted blobs have their claims (``blob_refs``),
  proxied blobs are recorded in ``blob_images`` when a proxied image manifest
  is stored (one row per blob and repository, written once per manifest).
"""

from __future__ import annotations

from collections.abc import Iterable

from harbor_cache.index.cursor import Cursor
from harbor_cache.index.engine import Store

#: digests per IN (...) list: well under sqlite's and PostgreSQL's parameter limits
_CHUNK = 400


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class ImageFactsStore(Store):
    """Tags, manifests and blob owners by repository, for `api.console.ConsoleApi`."""

    async def repository_contents(self, repositories: list[str]) -> dict[str, tuple[set[str], set[str]]]:
        """For each repository key: (its tag names, its manifest digests)."""
        names = sorted(set(repositories))

        def _txn(txn: Cursor) -> dict[str, tuple[set[str], set[str]]]:
            out: dict[str, tuple[set[str], set[str]]] = {name: (set(), set()) for name in names}
            for chunk in _chunks(names):
                marks = ", ".join("?" * len(chunk))
                self._exec(txn, f"SELECT repository, tag FROM tags WHERE repository IN ({marks})", chunk)
                for repository, tag in txn.fetchall():
                    out[repository][0].add(tag)
                self._exec(
                    txn,
                    f"SELECT repository, key FROM entries WHERE type = 'manifest' AND repository IN ({marks})",
                    chunk,
                )
                for repository, key in txn.fetchall():
                    out[repository][1].add(key)
            return out

        return await self._read("repository_contents", _txn)

    async def add_blob_images(self, repository: str, digests: list[str]) -> None:
        """Record that ``repository``'s stored proxied manifest references these blobs."""
        if not digests:
            return

        def _txn(txn: Cursor) -> None:
            for digest in sorted(set(digests)):
                self._exec(
                    txn,
                    """INSERT INTO blob_images (digest, repository) VALUES (?, ?)
                       ON CONFLICT (digest, repository) DO NOTHING""",
                    (digest, repository),
                )

        await self._run("add_blob_images", _txn)

    async def blob_owners(self, digests: list[str]) -> dict[str, list[str]]:
        """For each digest, the repositories known to use it (hosted claims and proxied manifests), sorted."""
        wanted = sorted(set(digests))

        def _txn(txn: Cursor) -> dict[str, list[str]]:
            found: dict[str, set[str]] = {}
            for chunk in _chunks(wanted):
                marks = ", ".join("?" * len(chunk))
                for table in ("blob_refs", "blob_images"):
                    self._exec(txn, f"SELECT DISTINCT digest, repository FROM {table} WHERE digest IN ({marks})", chunk)
                    for digest, repository in txn.fetchall():
                        found.setdefault(digest, set()).add(repository)
            return {digest: sorted(names) for digest, names in found.items()}

        return await self._read("blob_owners", _txn)
