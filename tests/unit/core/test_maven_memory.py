"""What the Maven hit path keeps in memory is bounded, whatever the number of files served (issue 30).

`RowMemory` keeps at most its limit of index rows (the oldest inserted go
first: a row that goes is looked up again); `MemoryHits` keeps the built
answers of in-memory hits weighed by their bodies, and reuses one only for
the same row and the same body object.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.core.maven.cache import MEMORY_ROWS
from harbor_cache.core.maven.files import CachedRow, MavenFile, MemoryHits, RowMemory


def row(n: int) -> CachedRow:
    return CachedRow(n, f"sha256:{n:064x}", 10, None, None, 0.0, 0.0)


def answer(body: bytes) -> MavenFile:
    return MavenFile(
        repository="central", path="a/b", size=len(body), source=None, content_type="application/xml",
        last_modified=0.0, etag=None, cache_status="hit", body=body,
    )  # fmt: skip


class RowMemoryTests(SynchronousTestCase):
    def test_the_oldest_rows_go_past_the_limit(self) -> None:
        rows = RowMemory(3)
        for n in range(5):
            rows[("central", f"p{n}")] = row(n)
        self.assertEqual(list(rows), [("central", "p2"), ("central", "p3"), ("central", "p4")])
        rows[("central", "p3")] = row(30)  # (a replaced row keeps its place; nothing goes)
        self.assertEqual(len(rows), 3)
        self.assertEqual(rows[("central", "p3")].id, 30)

    def test_the_cache_uses_a_bounded_memory(self) -> None:
        self.assertGreater(MEMORY_ROWS, 1000)


class MemoryHitsTests(SynchronousTestCase):
    def test_answers_are_bounded_by_their_bodies(self) -> None:
        hits = MemoryHits(4 * 1024)
        kept = []
        for n in range(10):
            body, r = bytes(1000), row(n)
            hits.put("central", f"p{n}", r, answer(body))
            kept.append((r, body))
        found = [n for n, (r, body) in enumerate(kept) if hits.get("central", f"p{n}", r, body) is not None]
        self.assertEqual(found, [8, 9])  # (1000 + 512 bytes each: two fit in 4 KiB)

    def test_an_answer_is_reused_only_for_its_row_and_body(self) -> None:
        hits = MemoryHits(1 << 20)
        r, body = row(1), b"<project/>"
        f = answer(body)
        hits.put("central", "p", r, f)
        self.assertIs(hits.get("central", "p", r, body), f)
        self.assertIsNone(hits.get("central", "p", row(1), body))  # a replaced row (redeploy, refresh)
        self.assertIsNone(hits.get("central", "p", r, bytes(bytearray(body))))  # another body object
        self.assertIsNone(hits.get("secret", "p", r, body))
