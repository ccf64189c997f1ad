"""The OCI distribution-spec conformance categories, as a test list against the live server.

Written from the spec (and the checks of its conformance suite): pull,
push, content discovery and content management, with http.client and a
registry token from GET /v2/token, the way clients authenticate.
"""

import hashlib
import json
import os
import urllib.parse

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import push_support, support
from tests.integration.support import http

REPO = "conformance/a"
OTHER = "conformance/b"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"

_SERVER = None


def _server(case):
    """One server for the module (closed at interpreter exit by the harness)."""
    global _SERVER
    if _SERVER is None or not _SERVER.running():
        config = support.oci_config("http://127.0.0.1:9", routes=["proxied/*"])
        _SERVER = support.HarborServer(config)
        push_support.ensure_user(_SERVER, *push_support.WRITER, "read-write")
    return _SERVER


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Conformance(SynchronousTestCase):
    def setUp(self):
        self.server = _server(self)
        scope = "repository:%s:pull,push,delete repository:%s:pull,push,delete" % (REPO, OTHER)
        self.token = push_support.registry_token(self.server, *push_support.WRITER, scope)

    def call(self, method, path, body=None, headers=None):
        h = {"Authorization": "Bearer " + self.token}
        h.update(headers or {})
        url = path if path.startswith("http") else urllib.parse.urljoin(self.server.url, path)
        return http(method, url, headers=h, body=body)

    def error_codes(self, body):
        return [e["code"] for e in json.loads(body)["errors"]]

    def push_blob(self, data, repo=REPO):
        status, headers, body = self.call("POST", "/v2/%s/blobs/uploads/" % repo)
        self.assertEqual(status, 202, body)
        status, headers, body = self.call(
            "PUT",
            "%s%sdigest=%s" % (headers["Location"], "&" if "?" in headers["Location"] else "?", digest_of(data)),
            data,
            {"Content-Type": "application/octet-stream"},
        )
        self.assertEqual(status, 201, body)
        return digest_of(data)

    def image(self, repo=REPO, layer=None, **extra):
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
        ).encode()
        layer = layer if layer is not None else os.urandom(1024)
        doc = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": self.push_blob(config, repo), "size": len(config)},
            "layers": [{"mediaType": LAYER, "digest": self.push_blob(layer, repo), "size": len(layer)}],
        }
        doc.update(extra)
        return json.dumps(doc).encode()

    def put_manifest(self, ref, body, repo=REPO, media_type=MANIFEST):
        return self.call("PUT", "/v2/%s/manifests/%s" % (repo, ref), body, {"Content-Type": media_type})


class PullTests(Conformance):
    def setUp(self):
        super().setUp()
        self.layer = os.urandom(4096)
        self.manifest = self.image(layer=self.layer)
        status, _, body = self.put_manifest("pull", self.manifest)
        self.assertEqual(status, 201, body)

    def test_pull_manifest_by_tag_and_digest(self):
        """GET manifest by tag and digest: 200, the pushed bytes, Docker-Content-Digest, Content-Type."""
        for ref in ("pull", digest_of(self.manifest)):
            status, headers, body = self.call("GET", "/v2/%s/manifests/%s" % (REPO, ref), headers={"Accept": MANIFEST})
            self.assertEqual((status, body), (200, self.manifest))
            self.assertEqual(headers["Docker-Content-Digest"], digest_of(self.manifest))
            self.assertEqual(headers["Content-Type"], MANIFEST)

    def test_head_manifest(self):
        """HEAD manifest: 200, Content-Length, digest, no body."""
        status, headers, body = self.call("HEAD", "/v2/%s/manifests/pull" % REPO, headers={"Accept": MANIFEST})
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(int(headers["Content-Length"]), len(self.manifest))
        self.assertEqual(headers["Docker-Content-Digest"], digest_of(self.manifest))

    def test_pull_blob(self):
        """GET and HEAD blob: 200, the bytes, its length."""
        status, headers, body = self.call("GET", "/v2/%s/blobs/%s" % (REPO, digest_of(self.layer)))
        self.assertEqual((status, body), (200, self.layer))
        status, headers, _ = self.call("HEAD", "/v2/%s/blobs/%s" % (REPO, digest_of(self.layer)))
        self.assertEqual((status, int(headers["Content-Length"])), (200, len(self.layer)))

    def test_pull_blob_range(self):
        """A Range request on a blob answers 206 with that slice."""
        status, headers, body = self.call(
            "GET", "/v2/%s/blobs/%s" % (REPO, digest_of(self.layer)), headers={"Range": "bytes=10-19"}
        )
        self.assertEqual((status, body), (206, self.layer[10:20]))

    def test_missing_manifest_and_blob(self):
        """Unknown manifests and blobs: 404 with MANIFEST_UNKNOWN / BLOB_UNKNOWN bodies."""
        status, _, body = self.call("GET", "/v2/%s/manifests/nosuchtag" % REPO)
        self.assertEqual((status, self.error_codes(body)), (404, ["MANIFEST_UNKNOWN"]))
        status, _, body = self.call("GET", "/v2/%s/manifests/%s" % (REPO, digest_of(b"nope")))
        self.assertEqual(status, 404)
        status, _, body = self.call("GET", "/v2/%s/blobs/%s" % (REPO, digest_of(b"nope")))
        self.assertEqual((status, self.error_codes(body)), (404, ["BLOB_UNKNOWN"]))

    def test_nonexistent_manifest_with_invalid_name(self):
        """The suite's three cases: GET and HEAD of a reference that is not a valid tag
        (.INVALID_MANIFEST_NAME) answer 404 MANIFEST_UNKNOWN, not 400; DELETE of it likewise 404."""
        path = "/v2/%s/manifests/.INVALID_MANIFEST_NAME" % REPO
        status, _, body = self.call("GET", path)
        self.assertEqual((status, self.error_codes(body)), (404, ["MANIFEST_UNKNOWN"]))
        status, _, body = self.call("HEAD", path)
        self.assertEqual((status, body), (404, b""))
        status, _, body = self.call("DELETE", path)
        self.assertEqual((status, self.error_codes(body)), (404, ["MANIFEST_UNKNOWN"]))

    def test_by_digest_whatever_accept_and_if_none_match(self):
        """By digest the manifest comes as stored even with a Docker-v2-only Accept; If-None-Match: 304."""
        digest = digest_of(self.manifest)
        status, headers, body = self.call(
            "GET",
            "/v2/%s/manifests/%s" % (REPO, digest),
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        self.assertEqual((status, body, headers["Content-Type"]), (200, self.manifest, MANIFEST))
        status, _, body = self.call(
            "GET", "/v2/%s/manifests/pull" % REPO, headers={"Accept": MANIFEST, "If-None-Match": '"%s"' % digest}
        )
        self.assertEqual((status, body), (304, b""))

    def test_invalid_name_and_digest(self):
        """A bad repository name is NAME_INVALID; a bad digest DIGEST_INVALID."""
        status, _, body = self.call("GET", "/v2/Bad_Name/manifests/x")
        self.assertEqual((status, self.error_codes(body)), (400, ["NAME_INVALID"]))
        status, _, body = self.call("GET", "/v2/%s/blobs/sha256:1234" % REPO)
        self.assertEqual((status, self.error_codes(body)), (400, ["DIGEST_INVALID"]))


class PushTests(Conformance):
    def test_post_then_put_monolithic(self):
        """POST opens a session (202, Location); PUT with the whole body and ?digest= commits (201)."""
        data = os.urandom(2048)
        status, headers, _ = self.call("POST", "/v2/%s/blobs/uploads/" % REPO)
        self.assertEqual(status, 202)
        self.assertTrue(headers["Location"])
        status, headers, _ = self.call("PUT", headers["Location"] + "?digest=" + digest_of(data), data)
        self.assertEqual(status, 201)
        self.assertEqual(headers["Docker-Content-Digest"], digest_of(data))
        self.assertEqual(self.call("GET", headers["Location"])[2], data)

    def test_single_post_with_digest(self):
        """POST ?digest= with the body: 201 in one request."""
        data = os.urandom(512)
        status, headers, _ = self.call(
            "POST",
            "/v2/%s/blobs/uploads/?digest=%s" % (REPO, digest_of(data)),
            data,
            {"Content-Type": "application/octet-stream"},
        )
        self.assertEqual(status, 201)
        self.assertEqual(self.call("GET", "/v2/%s/blobs/%s" % (REPO, digest_of(data)))[2], data)

    def test_chunked_upload(self):
        """PATCH chunks in order, status via GET, out-of-order chunk 416, PUT ?digest= 201."""
        data = os.urandom(3 * 1024 * 1024)
        status, headers, _ = self.call("POST", "/v2/%s/blobs/uploads/" % REPO)
        location = headers["Location"]
        first, second = data[: 1 << 20], data[1 << 20 :]
        status, headers, _ = self.call(
            "PATCH",
            location,
            first,
            {
                "Content-Type": "application/octet-stream",
                "Content-Range": "0-%d" % (len(first) - 1),
                "Content-Length": str(len(first)),
            },
        )
        self.assertEqual(status, 202)
        self.assertEqual(headers["Range"], "0-%d" % (len(first) - 1))
        location = urllib.parse.urljoin(self.server.url, headers["Location"])
        status, headers, _ = self.call(
            "PATCH",
            location,
            second,
            {"Content-Type": "application/octet-stream", "Content-Range": "%d-%d" % (len(first) + 10, len(data) + 9)},
        )
        self.assertEqual(status, 416)
        status, headers, _ = self.call("GET", location)
        self.assertEqual((status, headers["Range"]), (204, "0-%d" % (len(first) - 1)))
        status, headers, _ = self.call(
            "PATCH",
            location,
            second,
            {"Content-Type": "application/octet-stream", "Content-Range": "%d-%d" % (len(first), len(data) - 1)},
        )
        self.assertEqual(status, 202)
        status, headers, _ = self.call("PUT", location + "?digest=" + digest_of(data))
        self.assertEqual(status, 201)
        self.assertEqual(self.call("GET", "/v2/%s/blobs/%s" % (REPO, digest_of(data)))[2], data)

    def test_wrong_digest(self):
        """PUT with a digest that does not match: 400 DIGEST_INVALID and the blob does not exist."""
        status, headers, _ = self.call("POST", "/v2/%s/blobs/uploads/" % REPO)
        wrong = digest_of(b"something else")
        status, _, body = self.call("PUT", headers["Location"] + "?digest=" + wrong, b"payload")
        self.assertEqual((status, self.error_codes(body)), (400, ["DIGEST_INVALID"]))
        self.assertEqual(self.call("HEAD", "/v2/%s/blobs/%s" % (REPO, digest_of(b"payload")))[0], 404)

    def test_cross_repository_mount(self):
        """POST ?mount=&from= of a blob in another repository: 201 with Location."""
        digest = self.push_blob(os.urandom(300), OTHER)
        status, headers, _ = self.call("POST", "/v2/%s/blobs/uploads/?mount=%s&from=%s" % (REPO, digest, OTHER))
        self.assertEqual(status, 201)
        self.assertEqual(headers["Docker-Content-Digest"], digest)
        self.assertEqual(self.call("HEAD", headers["Location"])[0], 200)

    def test_mount_without_from(self):
        """Mount without from: 201 (blob known) or 202 (a session)."""
        digest = self.push_blob(os.urandom(300), OTHER)
        status, _, _ = self.call("POST", "/v2/%s/blobs/uploads/?mount=%s" % (REPO, digest))
        self.assertIn(status, (201, 202))

    def test_cancel_upload(self):
        """DELETE of a session: 204; it is then unknown (404)."""
        status, headers, _ = self.call("POST", "/v2/%s/blobs/uploads/" % REPO)
        self.assertEqual(self.call("DELETE", headers["Location"])[0], 204)
        status, _, body = self.call("GET", headers["Location"])
        self.assertEqual((status, self.error_codes(body)), (404, ["BLOB_UPLOAD_UNKNOWN"]))

    def test_manifest_put_by_tag_and_digest(self):
        """PUT manifest by tag and by digest: 201, Location, Docker-Content-Digest."""
        body = self.image()
        status, headers, _ = self.put_manifest("tagged", body)
        self.assertEqual(status, 201)
        self.assertEqual(headers["Docker-Content-Digest"], digest_of(body))
        self.assertTrue(headers["Location"].endswith("/manifests/" + digest_of(body)))
        body = self.image()
        self.assertEqual(self.put_manifest(digest_of(body), body)[0], 201)

    def test_manifest_with_missing_blob(self):
        """A manifest naming a blob not pushed: 400 MANIFEST_BLOB_UNKNOWN."""
        doc = json.loads(self.image())
        doc["layers"][0]["digest"] = digest_of(os.urandom(16))
        status, _, body = self.put_manifest("broken", json.dumps(doc).encode())
        self.assertEqual((status, self.error_codes(body)), (400, ["MANIFEST_BLOB_UNKNOWN"]))

    def test_manifest_invalid_type_version_or_size(self):
        """text/plain, a bare schema 1 body, a layer size that differs from the blob: 400 MANIFEST_INVALID."""
        good = self.image()
        doc = json.loads(good)
        doc["layers"][0]["size"] += 1
        for body, media_type in (
            (good, "text/plain"),
            (b'{"schemaVersion":1}', "text/plain"),
            (json.dumps(doc).encode(), MANIFEST),
        ):
            status, _, err = self.put_manifest("invalid", body, media_type=media_type)
            self.assertEqual((status, self.error_codes(err)), (400, ["MANIFEST_INVALID"]), (body[:40], media_type))

    def test_manifest_too_large(self):
        """A manifest over 4 MiB is refused (413)."""
        status, _, _ = self.put_manifest("huge", b'{"pad":"' + b"x" * (4 << 20) + b'"}')
        self.assertEqual(status, 413)

    def test_index_push(self):
        """An image index whose children were pushed by digest is accepted."""
        child = self.image()
        self.assertEqual(self.put_manifest(digest_of(child), child)[0], 201)
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": INDEX,
                "manifests": [
                    {
                        "mediaType": MANIFEST,
                        "digest": digest_of(child),
                        "size": len(child),
                        "platform": {"architecture": "amd64", "os": "linux"},
                    }
                ],
            }
        ).encode()
        status, headers, body = self.put_manifest("index", index, media_type=INDEX)
        self.assertEqual(status, 201, body)
        status, headers, got = self.call("GET", "/v2/%s/manifests/index" % REPO, headers={"Accept": INDEX})
        self.assertEqual((got, headers["Content-Type"]), (index, INDEX))


class DiscoveryTests(Conformance):
    repo = "conformance/tags"

    def setUp(self):
        super().setUp()
        self.token = push_support.registry_token(
            self.server, *push_support.WRITER, "repository:%s:pull,push,delete" % self.repo
        )
        self.body = self.image(self.repo)
        for tag in ("t4", "t1", "t3", "t2"):
            self.assertEqual(self.put_manifest(tag, self.body, self.repo)[0], 201)

    def test_tags_list(self):
        """tags/list returns every tag in lexical order."""
        status, _, body = self.call("GET", "/v2/%s/tags/list" % self.repo)
        self.assertEqual(json.loads(body), {"name": self.repo, "tags": ["t1", "t2", "t3", "t4"]})

    def test_tags_pagination(self):
        """n limits the page, last continues after a tag, Link names the next page."""
        status, headers, body = self.call("GET", "/v2/%s/tags/list?n=2" % self.repo)
        self.assertEqual(json.loads(body)["tags"], ["t1", "t2"])
        self.assertIn('rel="next"', headers["Link"])
        status, _, body = self.call("GET", "/v2/%s/tags/list?n=2&last=t2" % self.repo)
        self.assertEqual(json.loads(body)["tags"], ["t3", "t4"])

    def test_referrers(self):
        """The referrers API lists manifests whose subject is the digest; empty index otherwise."""
        subject = digest_of(self.body)
        status, headers, body = self.call("GET", "/v2/%s/referrers/%s" % (self.repo, subject))
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["manifests"], [])
        referrer = self.image(
            self.repo,
            artifactType="application/vnd.example.sbom",
            subject={"mediaType": MANIFEST, "digest": subject, "size": len(self.body)},
        )
        status, headers, _ = self.put_manifest(digest_of(referrer), referrer, self.repo)
        self.assertEqual((status, headers["OCI-Subject"]), (201, subject))
        status, headers, body = self.call("GET", "/v2/%s/referrers/%s" % (self.repo, subject))
        self.assertEqual(headers["Content-Type"], INDEX)
        found = json.loads(body)["manifests"]
        self.assertEqual(
            [(m["digest"], m["artifactType"]) for m in found], [(digest_of(referrer), "application/vnd.example.sbom")]
        )
        status, headers, body = self.call(
            "GET", "/v2/%s/referrers/%s?artifactType=application/other" % (self.repo, subject)
        )
        self.assertEqual((json.loads(body)["manifests"], headers["OCI-Filters-Applied"]), ([], "artifactType"))

    def test_catalog(self):
        """The catalog lists the repository."""
        status, _, body = self.call("GET", "/v2/_catalog")
        self.assertEqual(status, 200)
        self.assertIn(self.repo, json.loads(body)["repositories"])


class ManagementTests(Conformance):
    repo = "conformance/manage"

    def setUp(self):
        super().setUp()
        self.token = push_support.registry_token(
            self.server, *push_support.WRITER, "repository:%s:pull,push,delete" % self.repo
        )
        self.layer = os.urandom(777)
        self.body = self.image(self.repo, layer=self.layer)
        self.assertEqual(self.put_manifest("keep", self.body, self.repo)[0], 201)
        self.assertEqual(self.put_manifest("gone", self.body, self.repo)[0], 201)

    def test_delete_tag(self):
        """DELETE by tag: 202 and the tag disappears from tags/list."""
        status, _, _ = self.call("DELETE", "/v2/%s/manifests/gone" % self.repo)
        self.assertEqual(status, 202)
        status, _, body = self.call("GET", "/v2/%s/tags/list" % self.repo)
        self.assertNotIn("gone", json.loads(body)["tags"])

    def test_delete_manifest(self):
        """DELETE by digest: 202; then GET 404 and tags/list no longer shows its tags."""
        digest = digest_of(self.body)
        self.assertEqual(self.call("DELETE", "/v2/%s/manifests/%s" % (self.repo, digest))[0], 202)
        self.assertEqual(self.call("GET", "/v2/%s/manifests/%s" % (self.repo, digest))[0], 404)
        status, _, body = self.call("GET", "/v2/%s/tags/list" % self.repo)
        self.assertTrue(status == 404 or json.loads(body)["tags"] == [], body)
        self.assertIn(self.call("DELETE", "/v2/%s/manifests/%s" % (self.repo, digest))[0], (202, 404))

    def test_delete_blob(self):
        """DELETE blob: refused (409 DENIED) while a manifest of the repository needs it; once the
        manifest is deleted, 202 and then GET 404 (the conformance suite deletes manifests first)."""
        digest = digest_of(self.layer)
        status, _, body = self.call("DELETE", "/v2/%s/blobs/%s" % (self.repo, digest))
        self.assertEqual((status, self.error_codes(body)), (409, ["DENIED"]))
        self.assertEqual(self.call("GET", "/v2/%s/manifests/keep" % self.repo)[0], 200)
        self.assertEqual(self.call("DELETE", "/v2/%s/manifests/%s" % (self.repo, digest_of(self.body)))[0], 202)
        self.assertEqual(self.call("DELETE", "/v2/%s/blobs/%s" % (self.repo, digest))[0], 202)
        self.assertEqual(self.call("GET", "/v2/%s/blobs/%s" % (self.repo, digest))[0], 404)

    def test_delete_through_another_name_keeps_the_blob(self):
        """A blob DELETE through a repository that does not hold it is 404 and the layer stays pullable."""
        digest = digest_of(self.layer)
        token = push_support.registry_token(self.server, *push_support.WRITER, "repository:conformance/x:delete")
        status, _, body = self.call(
            "DELETE", "/v2/conformance/x/blobs/%s" % digest, headers={"Authorization": "Bearer " + token}
        )
        self.assertEqual((status, self.error_codes(body)), (404, ["BLOB_UNKNOWN"]))
        self.assertEqual(self.call("GET", "/v2/%s/blobs/%s" % (self.repo, digest))[0], 200)

    def test_read_only_may_not_delete(self):
        """A read-only user's DELETE is refused."""
        push_support.ensure_user(self.server, *push_support.READER, "read-only")
        status, _, _ = self.call(
            "DELETE", "/v2/%s/manifests/keep" % self.repo, headers=push_support.basic_header(*push_support.READER)
        )
        self.assertEqual(status, 403)
