"""A blob's access count counts every client that read it, cached or not (core/oci/blobs.py).

Three clients pulling one layer at once meet in one download: one miss and two
coalesced reads, none of them a "hit".  The entry's access count must still
say three reads, or the console shows 0 hits and LFU evicts the busiest layer.
"""

from __future__ import annotations

import os

from tests.unit.base import OciCacheCase


class BlobReadsTests(OciCacheCase):
    def setUp(self) -> None:
        super().setUp()
        self.layer = os.urandom(100_000)
        self.digest = self.upstream.add_blob(self.layer)

    def access_count(self) -> int:
        self.successResultOf(self.drive(self.app.access.flush()))
        entry = self.successResultOf(self.drive(self.app.index.get_entry("blob", "", self.digest)))
        assert entry is not None
        return int(entry.access_count)

    def test_concurrent_readers_count_as_reads(self) -> None:
        """One download shared by three clients: three reads on the entry, hits counter untouched."""
        self.upstream.hold[self.digest] = 20_000
        responses = [self.request("GET", "/v2/library/app/blobs/" + self.digest) for _ in range(3)]
        bodies = [self.read_body(self.successResultOf(d)) for d in responses]
        self.upstream.release()
        self.flush()
        for body in bodies:
            self.assertEqual(self.successResultOf(body), self.layer)
        self.assertEqual(self.upstream.count("GET", "/blobs/"), 1)
        self.assertEqual(self.access_count(), 3)
        self.assertEqual(self.app.metrics.hits._value.get(), 0)

    def test_miss_then_hits(self) -> None:
        """A cold read then two warm ones: three reads."""
        for _ in range(3):
            response = self.successResultOf(self.request("GET", "/v2/library/app/blobs/" + self.digest))
            self.assertEqual(self.successResultOf(self.read_body(response)), self.layer)
        self.assertEqual(self.access_count(), 3)
