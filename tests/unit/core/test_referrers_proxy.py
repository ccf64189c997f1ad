"""Referrers of proxied images (issue 28, point 6): the upstream's referrers API, its tag-schema fallback,
the tag TTL and stale rules, hosted referrers merged in, and referrer content pulled through by digest."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.core.oci.referrers import referrers_tag
from harbor_cache.testing import FakeRegistry
from tests.unit.base import OCI_INDEX, OCI_MANIFEST, OciCacheCase, header, sha256

NAME = "library/app"
EMPTY = "application/vnd.oci.empty.v1+json"
SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM = "application/spdx+json"


class ReferrersRegistry(FakeRegistry):
    """A FakeRegistry with the OCI 1.1 referrers API (``api``), filtering by artifactType unless ``filters`` is off."""

    def __init__(self) -> None:
        super().__init__()
        self.api = True
        self.filters = True
        self.referrers: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.asked_types: list[str | None] = []

    def render(self, request: Any) -> bytes:
        path = request.path.decode()
        if self.api and self.status is None and "/referrers/" in path:
            self.requests[(request.method.decode(), path)] += 1
            name, _, subject = path[len("/v2/") :].rpartition("/referrers/")
            wanted = request.args.get(b"artifactType", [b""])[0].decode() or None
            self.asked_types.append(wanted)
            manifests = self.referrers.get((name, subject), [])
            if wanted is not None and self.filters:
                manifests = [m for m in manifests if m.get("artifactType") == wanted]
                request.setHeader(b"OCI-Filters-Applied", b"artifactType")
            request.setHeader(b"Content-Type", OCI_INDEX.encode())
            return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()
        result: bytes = super().render(request)
        return result


class ReferrersThroughTheCache(OciCacheCase):
    upstream: ReferrersRegistry

    def make_upstream(self) -> ReferrersRegistry:
        return ReferrersRegistry()

    def setUp(self) -> None:
        super().setUp()
        self.config = b'{"architecture":"amd64"}'
        self.config_digest = self.upstream.add_blob(self.config)
        self.image, self.image_digest = self.upstream.add_manifest(NAME, "1", self.manifest_doc(self.config_digest))
        self.empty_digest = self.upstream.add_blob(b"{}")
        self.sig_payload = os.urandom(300)
        self.sig_blob = self.upstream.add_blob(self.sig_payload)
        self.sbom_payload = b'{"spdxVersion":"SPDX-2.3"}'
        self.sbom_blob = self.upstream.add_blob(self.sbom_payload)
        self.sig, self.sig_digest = self.referrer(SIG, self.sig_blob, len(self.sig_payload))
        self.sbom, self.sbom_digest = self.referrer(SBOM, self.sbom_blob, len(self.sbom_payload))
        self.descriptors = [
            {"mediaType": OCI_MANIFEST, "digest": self.sig_digest, "size": len(self.sig), "artifactType": SIG},
            {"mediaType": OCI_MANIFEST, "digest": self.sbom_digest, "size": len(self.sbom), "artifactType": SBOM},
        ]
        self.upstream.referrers[(NAME, self.image_digest)] = self.descriptors

    def manifest_doc(self, config_digest: str) -> dict[str, Any]:
        return {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": 24},
            "layers": [],
        }

    def referrer(self, artifact_type: str, blob: str, size: int) -> tuple[bytes, str]:
        """A manifest of ``artifact_type`` whose subject is the image, stored upstream by digest only."""
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": EMPTY, "digest": self.empty_digest, "size": 2},
            "layers": [{"mediaType": artifact_type, "digest": blob, "size": size}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": self.image_digest, "size": len(self.image)},
        }
        body = json.dumps(doc).encode()
        digest = sha256(body)
        self.upstream.manifests[(NAME, digest)] = (body, OCI_MANIFEST)
        return body, digest

    def get(self, path: str, method: str = "GET") -> tuple[Any, bytes]:
        return self.fetch(method, path, user=None)

    def referrers(self, query: str = "") -> tuple[Any, list[tuple[str, str]]]:
        response, body = self.get(f"/v2/{NAME}/referrers/{self.image_digest}{query}")
        self.assertEqual(response.code, 200, body)
        self.assertEqual(header(response, "Content-Type"), OCI_INDEX)
        index = json.loads(body)
        self.assertEqual((index["schemaVersion"], index["mediaType"]), (2, OCI_INDEX))
        return response, [(m["digest"], m.get("artifactType")) for m in index["manifests"]]

    def test_upstream_api_answers_through_the_cache(self) -> None:
        """Both referrers the upstream lists are served; artifactType is passed through and announced."""
        response, found = self.referrers()
        self.assertEqual(found, [(self.sig_digest, SIG), (self.sbom_digest, SBOM)])
        self.assertIsNone(header(response, "OCI-Filters-Applied"))
        response, found = self.referrers(f"?artifactType={quote(SBOM, safe='')}")
        self.assertEqual(found, [(self.sbom_digest, SBOM)])
        self.assertEqual(header(response, "OCI-Filters-Applied"), "artifactType")
        self.assertEqual(self.upstream.asked_types, [None, SBOM])

    def test_filter_applied_here_when_upstream_ignores_it(self) -> None:
        """An upstream that ignores artifactType: the cache filters, and says so."""
        self.upstream.filters = False
        response, found = self.referrers(f"?artifactType={quote(SIG, safe='')}")
        self.assertEqual(found, [(self.sig_digest, SIG)])
        self.assertEqual(header(response, "OCI-Filters-Applied"), "artifactType")

    def test_answer_cached_for_the_tag_ttl(self) -> None:
        """Within cache.tag_ttl_seconds the upstream is not asked again; after it, it is."""
        self.referrers()
        self.referrers()
        self.assertEqual(self.upstream.count("GET", "/referrers/"), 1)
        self.clock.advance(301)
        self.upstream.referrers[(NAME, self.image_digest)] = self.descriptors[:1]
        _, found = self.referrers()
        self.assertEqual(found, [(self.sig_digest, SIG)])
        self.assertEqual(self.upstream.count("GET", "/referrers/"), 2)

    def test_upstream_down_serves_the_cached_answer_stale(self) -> None:
        """After the TTL with the upstream failing: the last answer, with Warning 110."""
        self.referrers()
        self.clock.advance(301)
        self.upstream.status = 503
        response, found = self.referrers()
        self.assertEqual(found, [(self.sig_digest, SIG), (self.sbom_digest, SBOM)])
        self.assertEqual(header(response, "Warning"), '110 - "Response is Stale"')

    def test_upstream_down_and_nothing_cached_is_an_empty_index_not_an_error(self) -> None:
        """No answer upstream and none cached: 200 with what is hosted (nothing here), never a 5xx."""
        self.upstream.status = 500
        response, found = self.referrers()
        self.assertEqual(found, [])
        self.assertEqual(header(response, "Warning"), '110 - "Response is Stale"')

    def test_tag_schema_fallback_when_upstream_has_no_api(self) -> None:
        """The upstream answers 404 for the API: the sha256-<hex> tag's index is the answer, filtered here."""
        self.upstream.api = False
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.descriptors}
        self.upstream.add_manifest(NAME, referrers_tag(self.image_digest), index, OCI_INDEX)
        _, found = self.referrers()
        self.assertEqual(found, [(self.sig_digest, SIG), (self.sbom_digest, SBOM)])
        response, found = self.referrers(f"?artifactType={quote(SIG, safe='')}")
        self.assertEqual(found, [(self.sig_digest, SIG)])
        self.assertEqual(header(response, "OCI-Filters-Applied"), "artifactType")
        # The fallback tag is cached like any tag: with the upstream down after the TTL it is served stale.
        self.clock.advance(301)
        self.upstream.status = 503
        response, found = self.referrers(f"?artifactType={quote(SBOM, safe='')}")
        self.assertEqual(found, [(self.sbom_digest, SBOM)])
        self.assertEqual(header(response, "Warning"), '110 - "Response is Stale"')

    def test_tag_schema_fallback_without_the_tag_is_empty(self) -> None:
        """No API and no sha256-<hex> tag: no referrers, 200."""
        self.upstream.api = False
        response, found = self.referrers()
        self.assertEqual(found, [])
        self.assertIsNone(header(response, "Warning"))

    def test_hosted_referrers_merged_in(self) -> None:
        """A referrer recorded here under the proxied name comes first, then the upstream's."""
        local = "sha256:" + "ab" * 32
        self.successResultOf(
            self.drive(
                self.app.index.put_hosted_manifest(
                    repository=NAME,
                    key=local,
                    digest=local,
                    size=10,
                    media_type=OCI_MANIFEST,
                    now=self.clock.seconds(),
                    tag=None,
                    referrer={
                        "subject": self.image_digest,
                        "artifact_type": "application/x-local",
                        "annotations": None,
                    },
                )
            )
        )
        _, found = self.referrers()
        self.assertEqual(found, [(local, "application/x-local"), (self.sig_digest, SIG), (self.sbom_digest, SBOM)])

    def test_referrer_manifests_and_blobs_pull_through_by_digest(self) -> None:
        """A signature's manifest and its blobs are pulled through like any content."""
        response, body = self.get(f"/v2/{NAME}/manifests/{self.sig_digest}")
        self.assertEqual((response.code, body), (200, self.sig))
        response, body = self.get(f"/v2/{NAME}/blobs/{self.sig_blob}")
        self.assertEqual((response.code, body), (200, self.sig_payload))
        response, body = self.get(f"/v2/{NAME}/blobs/{self.empty_digest}")
        self.assertEqual((response.code, body), (200, b"{}"))
        self.get(f"/v2/{NAME}/manifests/{self.sig_digest}")
        self.assertEqual(self.upstream.count("GET", f"/manifests/{self.sig_digest}"), 1)

    def test_cosign_sig_tag_pulls_through(self) -> None:
        """A cosign-style ``sha256-<hex>.sig`` tag is just a tag."""
        tag = referrers_tag(self.image_digest) + ".sig"
        self.upstream.manifests[(NAME, tag)] = (self.sig, OCI_MANIFEST)
        response, body = self.get(f"/v2/{NAME}/manifests/{tag}")
        self.assertEqual((response.code, body), (200, self.sig))
        self.assertEqual(header(response, "Docker-Content-Digest"), self.sig_digest)

    def test_upstream_list_change_forgets_the_answers(self) -> None:
        """A new upstream list: the next request asks upstream again, within the TTL."""
        self.referrers()
        self.app.oci.upstreams_changed()
        self.referrers()
        self.assertEqual(self.upstream.count("GET", "/referrers/"), 2)


class ReferrersTag(SynchronousTestCase):
    def test_tag_schema_names(self) -> None:
        """<alg>-<ref>, the algorithm cut to 32 characters and the encoded part to 64 (OCI distribution spec)."""
        self.assertEqual(referrers_tag("sha256:" + "a" * 64), "sha256-" + "a" * 64)
        self.assertEqual(referrers_tag("sha512:" + "b" * 128), "sha512-" + "b" * 64)
