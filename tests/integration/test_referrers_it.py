"""Referrers through the cache with a real upstream (issue 28, point 6).

Debian's docker-registry (distribution 2.8) has no referrers API: it answers
404, so the cache reads the referrers tag schema — the ``sha256-<hex>`` tag
holding an image index of the referrers.  The upstream gets, by plain HTTP
pushes, a small image, two referrers of different artifact types (a
signature and an SBOM, OCI manifests with ``subject``, ``artifactType`` and
the empty config) and that tag.  Through the cache: the referrers by
digest and with ``?artifactType=``, the referrer manifests and blobs by
digest (skopeo too), and a cosign-style ``sha256-<hex>.sig`` tag.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import oci_support as oci
from tests.integration import support

NAME = "it/signed"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM = "application/spdx+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Pusher:
    """Plain HTTP pushes to a distribution registry (what oras would do; oras is not packaged for Debian/PyPI)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def blob(self, data: bytes) -> str:
        digest = sha256(data)
        status, headers, body = support.http("POST", f"{self.url}/v2/{NAME}/blobs/uploads/")
        assert status == 202, (status, body)
        location = headers.get("Location")
        if location.startswith("/"):
            location = self.url + location
        location += ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": digest})
        status, _, body = support.http(
            "PUT", location, {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))}, data
        )
        assert status == 201, (status, body)
        return digest

    def manifest(self, reference: str | None, doc: dict[str, Any], media_type: str) -> tuple[bytes, str]:
        """PUT a manifest under a tag, or by its digest when ``reference`` is None."""
        body = json.dumps(doc).encode()
        reference = reference or sha256(body)
        status, _, answer = support.http(
            "PUT", f"{self.url}/v2/{NAME}/manifests/{reference}", {"Content-Type": media_type}, body
        )
        assert status == 201, (status, answer)
        return body, sha256(body)


class ReferrersThroughTheCacheIT(SynchronousTestCase):
    def setUp(self) -> None:
        self.reg = support.Registry()
        self.addCleanup(self.reg.close)
        push = Pusher(self.reg.url)
        config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
        config_digest = push.blob(config)
        self.image, self.image_digest = push.manifest(
            "1",
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": len(config),
                },
                "layers": [],
            },
            OCI_MANIFEST,
        )
        empty_digest = push.blob(b"{}")
        self.payloads: dict[str, bytes] = {
            SIG: b'{"critical":{"type":"cosign container image signature"}}',
            SBOM: b'{"spdxVersion":"SPDX-2.3"}',
        }
        self.pushed: dict[str, tuple[bytes, str, str]] = {}
        for artifact_type, payload in self.payloads.items():
            blob = push.blob(payload)
            body, digest = push.manifest(
                None,  # by digest: referrers need no tag
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "artifactType": artifact_type,
                    "config": {"mediaType": EMPTY, "digest": empty_digest, "size": 2},
                    "layers": [{"mediaType": artifact_type, "digest": blob, "size": len(payload)}],
                    "subject": {"mediaType": OCI_MANIFEST, "digest": self.image_digest, "size": len(self.image)},
                },
                OCI_MANIFEST,
            )
            self.pushed[artifact_type] = (body, digest, blob)
        descriptors = [
            {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body), "artifactType": artifact_type}
            for artifact_type, (body, digest, _) in self.pushed.items()
        ]
        self.fallback_tag = self.image_digest.replace(":", "-")
        push.manifest(
            self.fallback_tag, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}, OCI_INDEX
        )
        # cosign's own scheme: the signature under the tag sha256-<hex>.sig
        push.manifest(self.fallback_tag + ".sig", json.loads(self.pushed[SIG][0]), OCI_MANIFEST)
        self.srv = support.HarborServer(oci.harbor_config(self.reg.url))
        self.addCleanup(self.srv.close)

    def referrers(self, query: str = "") -> tuple[Any, list[tuple[str, str]]]:
        status, headers, body = support.http("GET", f"{self.srv.url}/v2/{NAME}/referrers/{self.image_digest}{query}")
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("Content-Type"), OCI_INDEX)
        return headers, [(m["digest"], m["artifactType"]) for m in json.loads(body)["manifests"]]

    def test_upstream_without_api_answers_through_the_tag_schema(self) -> None:
        """distribution 2.8 answers 404 for the API; the sha256-<hex> index is what the cache serves."""
        status, _, _ = support.http("GET", f"{self.reg.url}/v2/{NAME}/referrers/{self.image_digest}")
        self.assertEqual(status, 404)
        sig, sbom = self.pushed[SIG][1], self.pushed[SBOM][1]
        headers, found = self.referrers()
        self.assertEqual(sorted(found), sorted([(sig, SIG), (sbom, SBOM)]))
        self.assertIsNone(headers.get("OCI-Filters-Applied"))
        headers, found = self.referrers("?artifactType=" + urllib.parse.quote(SBOM, safe=""))
        self.assertEqual(found, [(sbom, SBOM)])
        self.assertEqual(headers.get("OCI-Filters-Applied"), "artifactType")
        # The answer is cached for the tag TTL: asking again does not reach the upstream's tag. (The registry logs a
        # GET after its answer: wait for the first line; the tag alone, not its .sig; a new GET gets a moment.)
        tag = f"/manifests/{self.fallback_tag}"
        before = self.reg.wait_requests("GET", tag, 1, suffix=True)
        self.assertEqual(before, 1)
        self.referrers()
        self.assertEqual(self.reg.wait_requests("GET", tag, before + 1, timeout=2, suffix=True), before)

    def test_referrer_content_pulls_through_by_digest(self) -> None:
        """Each referrer's manifest and blob come through the cache by digest; skopeo reads the signature."""
        for artifact_type, (body, digest, blob) in self.pushed.items():
            status, headers, got = support.http(
                "GET", f"{self.srv.url}/v2/{NAME}/manifests/{digest}", {"Accept": OCI_MANIFEST}
            )
            self.assertEqual((status, got), (200, body))
            status, _, got = support.http("GET", f"{self.srv.url}/v2/{NAME}/blobs/{blob}")
            self.assertEqual((status, got), (200, self.payloads[artifact_type]))
        sig_digest = self.pushed[SIG][1]
        cp = support.skopeo(
            "inspect", "--raw", "--tls-verify=false", f"docker://{self.srv.hostport}/{NAME}@{sig_digest}"
        )
        support.check_ok(cp)
        self.assertEqual(sha256(cp.stdout.encode()), sig_digest)

    def test_cosign_sig_tag_pulls_through(self) -> None:
        """``sha256-<hex>.sig`` is just a tag: skopeo reads it through the cache."""
        cp = support.skopeo(
            "inspect", "--raw", "--tls-verify=false", f"docker://{self.srv.hostport}/{NAME}:{self.fallback_tag}.sig"
        )
        support.check_ok(cp)
        self.assertEqual(sha256(cp.stdout.encode()), self.pushed[SIG][1])
