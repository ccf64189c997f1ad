"""The ``source`` label of the OCI metrics names the upstream: hits, stale serves and joined downloads.

Upstream names are configured, so the labels stay bounded; before, OCI hits
were all ``source="cache"`` and stale serves and early joins
``source="upstream"``, neither of which is an upstream.  On the fakes of
`tests.unit.base.OciCacheCase` (one upstream, ``fake``).
"""

from __future__ import annotations

import os

from twisted.internet.defer import Deferred

from tests.unit.base import OCI_MANIFEST, OciCacheCase


class SourceLabelTests(OciCacheCase):
    def setUp(self):
        super().setUp()
        self.layer = os.urandom(10_000)
        self.layer_digest = self.upstream.add_blob(self.layer)
        self.manifest, self.manifest_digest = self.upstream.add_manifest(
            "library/app", "1", {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "layers": []}
        )

    def get(self, path):
        response = self.successResultOf(self.request("GET", path))
        return response, self.successResultOf(self.read_body(response))

    def sources(self, counter):
        """{source: value} of an OCI counter's samples."""
        out = {}
        for metric in counter.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels["front"] == "oci":
                    out[sample.labels["source"]] = sample.value
        return out

    def test_hits_are_labelled_with_the_upstream_the_content_came_from(self):
        """Blob, manifest by tag and by digest: each hit counts under ``fake``, as the misses do."""
        for _ in range(2):
            self.get("/v2/library/app/blobs/" + self.layer_digest)
            self.get("/v2/library/app/manifests/1")
        self.get("/v2/library/app/manifests/" + self.manifest_digest)
        self.assertEqual(self.sources(self.app.metrics.source_hits), {"fake": 3})
        self.assertEqual(self.sources(self.app.metrics.source_misses), {"fake": 2})

    def test_a_hit_on_pushed_content_is_hosted(self):
        """No upstream: ``hosted`` (a label of its own, not an upstream's)."""
        from harbor_cache.core.flight.access import hit_source

        row = self.successResultOf(
            Deferred.fromCoroutine(
                self.app.index.put_entry(
                    kind="hosted", type_="blob", repository="", key="k", digest="sha256:" + "1" * 64, size=1, now=1.0
                )
            )
        )
        self.assertEqual(hit_source(row), "hosted")

    def test_stale_serves_are_labelled_with_the_upstream(self):
        """The upstream fails after the tag TTL: the stale serve counts under ``fake``."""
        self.get("/v2/library/app/manifests/1")
        self.clock.advance(301)
        self.upstream.status = 503
        response, _ = self.get("/v2/library/app/manifests/1")
        self.assertEqual(response.code, 200)
        self.assertEqual(self.sources(self.app.metrics.stale_served), {"fake": 1})

    def test_joins_before_the_upstream_answers_are_labelled_with_it(self):
        """Clients that join while the upstream has not answered yet count under the one that answers."""
        upstream = self.app.upstreams.upstreams[0]
        answer, request = Deferred(), upstream.request

        async def slow_request(*args, **kwargs):
            await answer
            return await request(*args, **kwargs)

        self.patch(upstream, "request", slow_request)
        pulls = [Deferred.fromCoroutine(self.app.oci.get_blob("library/app", self.layer_digest)) for _ in range(3)]
        for pull in pulls:
            self.assertNoResult(pull)  # the upstream has not answered: nobody knows who will
        answer.callback(None)
        self.flush()
        handles = [self.successResultOf(pull) for pull in pulls]
        self.assertEqual([h.cache_status for h in handles], ["miss", "coalesced", "coalesced"])
        self.assertEqual(self.sources(self.app.metrics.coalesced), {"fake": 2})
        self.flush()
