"""The hosted registry through the /v2 front: uploads, manifest pushes, listings, deletes."""

from __future__ import annotations

import json
import os

from twisted.internet.defer import Deferred

from harbor_cache.core.hosted import uploads as hosted_module
from harbor_cache.oci.hosted import parse_content_range
from tests.unit.base import OCI_INDEX, OCI_MANIFEST, USERS, HostedRegistryCase, error_code, header, sha256

NAME = "team/app"


class UploadTests(HostedRegistryCase):
    def start(self, name=NAME):
        response, body = self.fetch("POST", f"/v2/{name}/blobs/uploads/")
        self.assertEqual(response.code, 202, body)
        return header(response, "Location")

    def sessions(self):
        """How many upload sessions exist (each has its file from the moment it is recorded)."""
        return len(os.listdir(self.app.hosted.files.dir))

    def patch(self, location, data, content_range=None):
        headers = {"Content-Type": "application/octet-stream"}
        if content_range is not None:
            headers["Content-Range"] = content_range
        return self.fetch("PATCH", location, data, headers)

    def test_start_answers_202_with_session_headers(self):
        """POST starts a session: 202, Location, Docker-Upload-UUID and Range 0-0."""
        response, _ = self.fetch("POST", f"/v2/{NAME}/blobs/uploads/")
        self.assertEqual(response.code, 202)
        uuid = header(response, "Docker-Upload-UUID")
        self.assertEqual(header(response, "Location"), f"/v2/{NAME}/blobs/uploads/{uuid}")
        self.assertEqual(header(response, "Range"), "0-0")

    def test_chunks_in_order_then_put(self):
        """Chunks with matching Content-Range append; PUT ?digest= commits and the blob is served."""
        data = os.urandom(3000)
        location = self.start()
        response, _ = self.patch(location, data[:1000], "0-999")
        self.assertEqual(response.code, 202)
        self.assertEqual(header(response, "Range"), "0-999")
        response, _ = self.patch(location, data[1000:2500], "1000-2499")
        self.assertEqual(header(response, "Range"), "0-2499")
        response, body = self.fetch("PUT", f"{location}?digest={sha256(data)}", data[2500:])
        self.assertEqual(response.code, 201, body)
        self.assertEqual(header(response, "Location"), f"/v2/{NAME}/blobs/{sha256(data)}")
        self.assertEqual(header(response, "Docker-Content-Digest"), sha256(data))
        response, body = self.fetch("GET", f"/v2/{NAME}/blobs/{sha256(data)}")
        self.assertEqual((response.code, body), (200, data))
        entry = self.successResultOf(Deferred.fromCoroutine(self.app.index.get_entry("blob", "", sha256(data))))
        self.assertEqual(entry.kind, "hosted")

    def test_chunk_without_content_range_streams(self):
        """A PATCH without Content-Range (podman's streamed upload) appends at the end."""
        data = os.urandom(200_000)  # above Twisted's in-memory body limit: a temp file
        location = self.start()
        response, _ = self.patch(location, data)
        self.assertEqual(header(response, "Range"), f"0-{len(data) - 1}")
        response, _ = self.fetch("PUT", f"{location}?digest={sha256(data)}")
        self.assertEqual(response.code, 201)

    def test_gap_is_416(self):
        """A chunk that starts after the session's end is refused with 416 and not written."""
        location = self.start()
        self.patch(location, b"a" * 10, "0-9")
        response, body = self.patch(location, b"b" * 10, "11-20")
        self.assertEqual(response.code, 416)
        self.assertEqual(error_code(body), "BLOB_UPLOAD_INVALID")
        response, _ = self.fetch("GET", location)
        self.assertEqual((response.code, header(response, "Range")), (204, "0-9"))

    def test_overlap_is_416(self):
        """A chunk that starts inside what was already received is refused with 416."""
        location = self.start()
        self.patch(location, b"a" * 10, "0-9")
        response, _ = self.patch(location, b"b" * 10, "5-14")
        self.assertEqual(response.code, 416)

    def test_range_not_matching_body_is_416(self):
        """A Content-Range whose length differs from the body is refused."""
        location = self.start()
        response, _ = self.patch(location, b"a" * 10, "0-19")
        self.assertEqual(response.code, 416)

    def test_malformed_content_range_is_416(self):
        """Garbage, thousands of digits or non-ASCII digits in Content-Range are refused with 416."""
        location = self.start()
        for value in ("one-two", "0-" + "9" * 5000, "9" * 5000 + "-" + "9" * 5001, "\u0660-\u0660"):
            response, body = self.patch(location, b"a", value)
            self.assertEqual(response.code, 416, value[:20])
            self.assertEqual(error_code(body), "BLOB_UPLOAD_INVALID")

    def test_digest_mismatch_stores_nothing(self):
        """PUT with the wrong digest: 400 DIGEST_INVALID, no blob, the session is over, no temp file left."""
        location = self.start()
        self.patch(location, b"hello", "0-4")
        wrong = sha256(b"other")
        response, body = self.fetch("PUT", f"{location}?digest={wrong}")
        self.assertEqual(response.code, 400)
        self.assertEqual(error_code(body), "DIGEST_INVALID")
        self.assertEqual(self.fetch("GET", f"/v2/{NAME}/blobs/{wrong}")[0].code, 404)
        self.assertEqual(self.fetch("GET", f"/v2/{NAME}/blobs/{sha256(b'hello')}")[0].code, 404)
        self.assertEqual(self.fetch("GET", location)[0].code, 404)
        self.assertEqual(os.listdir(self.app.storage.tmp_dir), [])

    def test_monolithic_digest_mismatch(self):
        """POST ?digest= with a body that does not match: DIGEST_INVALID, nothing stored."""
        response, body = self.fetch("POST", f"/v2/{NAME}/blobs/uploads/?digest={sha256(b'x')}", b"y")
        self.assertEqual((response.code, error_code(body)), (400, "DIGEST_INVALID"))
        self.assertEqual(self.fetch("GET", f"/v2/{NAME}/blobs/{sha256(b'y')}")[0].code, 404)

    def test_bad_digests(self):
        """Malformed, wrong-length and unsupported digests are DIGEST_INVALID."""
        location = self.start()
        for digest in ("sha256:xyz", "sha256:" + "a" * 63, "md5:" + "a" * 32, "sha512:" + "a" * 128):
            response, body = self.fetch("PUT", f"{location}?digest={digest}")
            self.assertEqual((response.code, error_code(body)), (400, "DIGEST_INVALID"), digest)
        response, body = self.fetch("PUT", location)
        self.assertEqual(error_code(body), "DIGEST_INVALID")

    def test_bad_names(self):
        """Names outside the distribution grammar are NAME_INVALID before anything happens."""
        for name in ("UPPER/case", "a//b", "-lead", "x" * 256):
            response, body = self.fetch("POST", f"/v2/{name}/blobs/uploads/")
            self.assertEqual((response.code, error_code(body)), (400, "NAME_INVALID"), name)
        self.assertEqual(self.sessions(), 0)

    def test_unknown_session(self):
        """PATCH/PUT/GET/DELETE of an unknown session, or one of another repository, is BLOB_UPLOAD_UNKNOWN."""
        location = self.start()
        other = location.replace(NAME, "other/repo")
        for method in ("PATCH", "GET", "DELETE"):
            response, body = self.fetch(method, other)
            self.assertEqual((response.code, error_code(body)), (404, "BLOB_UPLOAD_UNKNOWN"))
        response, _ = self.fetch("GET", f"/v2/{NAME}/blobs/uploads/nope")
        self.assertEqual(response.code, 404)

    def test_cancel(self):
        """DELETE cancels: 204, the session is gone, its file removed."""
        location = self.start()
        self.patch(location, b"abc", "0-2")
        self.assertEqual(len(os.listdir(self.app.hosted.files.dir)), 1)
        response, _ = self.fetch("DELETE", location)
        self.assertEqual(response.code, 204)
        self.assertEqual(self.fetch("GET", location)[0].code, 404)
        self.assertEqual(os.listdir(self.app.hosted.files.dir), [])
        self.assertEqual(os.listdir(self.app.storage.tmp_dir), [])

    def test_abandoned_sessions_expire(self):
        """A session idle past uploads.idle_seconds is dropped with its file; an active one stays."""
        old = self.start()
        self.patch(old, b"abc", "0-2")
        self.clock.advance(hosted_module.UPLOAD_IDLE_SECONDS - 10)
        fresh = self.start()
        self.clock.advance(20)
        self.assertEqual(self.successResultOf(Deferred.fromCoroutine(self.app.hosted.expire_uploads())), 1)
        self.assertEqual(self.fetch("GET", old)[0].code, 404)
        self.assertEqual(self.fetch("GET", fresh)[0].code, 204)
        self.assertEqual(len(os.listdir(self.app.hosted.files.dir)), 1)

    def test_mount_existing_blob(self):
        """POST ?mount=&from= of a blob we hold answers 201 without a session."""
        digest = self.push_blob("src/repo", b"shared layer")
        response, _ = self.fetch("POST", f"/v2/{NAME}/blobs/uploads/?mount={digest}&from=src/repo")
        self.assertEqual(response.code, 201)
        self.assertEqual(header(response, "Docker-Content-Digest"), digest)
        self.assertEqual(self.sessions(), 0)

    def test_mount_unknown_blob_falls_back_to_session(self):
        """Mounting a blob we do not hold starts an ordinary session (202)."""
        response, _ = self.fetch("POST", f"/v2/{NAME}/blobs/uploads/?mount={sha256(b'zz')}&from=src/repo")
        self.assertEqual(response.code, 202)
        self.assertIsNotNone(header(response, "Docker-Upload-UUID"))

    def test_push_metrics(self):
        """Pushed blobs and their bytes are counted."""
        self.push_blob(NAME, b"12345")
        self.assertEqual(self.app.metrics.pushes.labels("blob")._value.get(), 1)
        self.assertEqual(self.app.metrics.push_bytes._value.get(), 5)

    def test_parse_content_range(self):
        """Content-Range forms clients send are understood."""
        self.assertEqual(parse_content_range("0-99"), (0, 99))
        self.assertEqual(parse_content_range("bytes=5-9"), (5, 9))
        self.assertEqual(parse_content_range("bytes 5-9/100"), (5, 9))
        self.assertIsNone(parse_content_range(None))


class ManifestTests(HostedRegistryCase):
    def test_push_by_tag_then_pull(self):
        """PUT by tag: 201 with Location and digest; GET by tag and digest serve it; tag is hosted."""
        body = self.image_manifest(NAME, [b"layer one"])
        response, _ = self.put_manifest(NAME, "v1", body)
        digest = sha256(body)
        self.assertEqual(response.code, 201)
        self.assertEqual(header(response, "Docker-Content-Digest"), digest)
        self.assertEqual(header(response, "Location"), f"/v2/{NAME}/manifests/{digest}")
        for ref in ("v1", digest):
            response, got = self.fetch("GET", f"/v2/{NAME}/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
            self.assertEqual((response.code, got), (200, body))
            self.assertEqual(header(response, "Content-Type"), OCI_MANIFEST)
        tag = self.successResultOf(Deferred.fromCoroutine(self.app.index.get_tag(NAME, "v1")))
        self.assertEqual((tag.kind, tag.digest), ("hosted", digest))

    def test_hosted_tag_never_revalidated(self):
        """Long after the tag TTL a hosted tag is still served from here (no upstream exists at all)."""
        body = self.image_manifest(NAME, [b"l"])
        self.put_manifest(NAME, "v1", body)
        self.app.oci.forget_tag(NAME, "v1")
        self.clock.advance(10 * 86400)
        response, got = self.fetch("GET", f"/v2/{NAME}/manifests/v1")
        self.assertEqual((response.code, got), (200, body))

    def test_retag_moves_the_tag(self):
        """Pushing another manifest under the same tag moves it."""
        first = self.image_manifest(NAME, [b"a"])
        second = self.image_manifest(NAME, [b"b"])
        self.put_manifest(NAME, "latest", first)
        self.fetch("GET", f"/v2/{NAME}/manifests/latest")
        self.put_manifest(NAME, "latest", second)
        response, got = self.fetch("GET", f"/v2/{NAME}/manifests/latest")
        self.assertEqual(got, second)

    def test_push_by_digest_must_match(self):
        """PUT by digest: the body must hash to it, else DIGEST_INVALID and nothing stored."""
        body = self.image_manifest(NAME, [b"l"])
        response, _ = self.put_manifest(NAME, sha256(body), body)
        self.assertEqual(response.code, 201)
        wrong = sha256(b"not it")
        response, err = self.put_manifest(NAME, wrong, body)
        self.assertEqual((response.code, error_code(err)), (400, "DIGEST_INVALID"))
        self.assertEqual(self.fetch("GET", f"/v2/{NAME}/manifests/{wrong}")[0].code, 404)

    def test_missing_blob(self):
        """A manifest naming a layer we do not hold: 400 MANIFEST_BLOB_UNKNOWN."""
        body = json.loads(self.image_manifest(NAME, [b"l"]))
        body["layers"].append(
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(b"never pushed"), "size": 12}
        )
        response, err = self.put_manifest(NAME, "v1", json.dumps(body).encode())
        self.assertEqual((response.code, error_code(err)), (400, "MANIFEST_BLOB_UNKNOWN"))
        self.assertEqual(self.fetch("GET", f"/v2/{NAME}/manifests/v1")[0].code, 404)

    def test_missing_config(self):
        """A manifest whose config blob is missing is refused too."""
        body = json.loads(self.image_manifest(NAME, [b"l"]))
        body["config"]["digest"] = sha256(b"no config")
        response, err = self.put_manifest(NAME, "v1", json.dumps(body).encode())
        self.assertEqual(error_code(err), "MANIFEST_BLOB_UNKNOWN")

    def test_index_needs_its_children(self):
        """An index is accepted once its child manifests are in the repository, refused before."""
        child = self.image_manifest(NAME, [b"arm"])
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(child), "size": len(child)}],
            }
        ).encode()
        response, err = self.put_manifest(NAME, "multi", index, OCI_INDEX)
        self.assertEqual((response.code, error_code(err)), (400, "MANIFEST_BLOB_UNKNOWN"))
        self.assertEqual(self.put_manifest(NAME, sha256(child), child)[0].code, 201)
        response, _ = self.put_manifest(NAME, "multi", index, OCI_INDEX)
        self.assertEqual(response.code, 201)

    def test_oversized_manifest(self):
        """A body over 4 MiB is refused with 413 SIZE_INVALID before it is parsed."""
        body = b'{"schemaVersion": 2, "pad": "' + b"x" * (4 << 20) + b'"}'
        response, err = self.put_manifest(NAME, "big", body)
        self.assertEqual((response.code, error_code(err)), (413, "SIZE_INVALID"))

    def test_invalid_json(self):
        """Bodies that are not JSON objects are MANIFEST_INVALID."""
        for body in (b"not json", b"[1, 2]", b'{"schemaVersion": 2, "layers": "x", "config": {}}'):
            response, err = self.put_manifest(NAME, "bad", body)
            self.assertEqual((response.code, error_code(err)), (400, "MANIFEST_INVALID"), body)

    def test_media_type_mismatch(self):
        """Content-Type and the body's mediaType must agree."""
        body = self.image_manifest(NAME, [b"l"])
        response, err = self.put_manifest(NAME, "v1", body, "application/vnd.docker.distribution.manifest.v2+json")
        self.assertEqual(error_code(err), "MANIFEST_INVALID")

    def test_content_type_schema_version_and_sizes_are_checked(self):
        """text/plain, schema 1, a missing/odd schemaVersion, a size that differs from the stored blob:
        400 MANIFEST_INVALID and nothing stored."""
        good = json.loads(self.image_manifest(NAME, [b"layer"]))
        wrong_size = json.loads(json.dumps(good))
        wrong_size["layers"][0]["size"] = 999
        wrong_config_size = json.loads(json.dumps(good))
        wrong_config_size["config"]["size"] = 0
        no_size = json.loads(json.dumps(good))
        del no_size["layers"][0]["size"]
        for body, content_type in (
            (good, "text/plain"),
            ({"schemaVersion": 1}, "text/plain"),
            ({"schemaVersion": 1}, "application/vnd.docker.distribution.manifest.v1+prettyjws"),
            ({**good, "schemaVersion": 1}, OCI_MANIFEST),
            ({**good, "schemaVersion": "2"}, OCI_MANIFEST),
            ({k: v for k, v in good.items() if k != "schemaVersion"}, OCI_MANIFEST),
            (wrong_size, OCI_MANIFEST),
            (wrong_config_size, OCI_MANIFEST),
            (no_size, OCI_MANIFEST),
        ):
            response, err = self.put_manifest(NAME, "v1", json.dumps(body).encode(), content_type)
            self.assertEqual((response.code, error_code(err)), (400, "MANIFEST_INVALID"), (body, content_type))
        self.assertEqual(self.fetch("GET", f"/v2/{NAME}/manifests/v1")[0].code, 404)
        self.assertEqual(self.put_manifest(NAME, "v1", json.dumps(good).encode())[0].code, 201)

    def test_index_child_size_is_checked(self):
        """An index whose child descriptor states another size than the stored manifest: MANIFEST_INVALID."""
        child = self.image_manifest(NAME, [b"arm"])
        self.assertEqual(self.put_manifest(NAME, sha256(child), child)[0].code, 201)
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(child), "size": len(child) + 1}],
            }
        ).encode()
        response, err = self.put_manifest(NAME, "multi", index, OCI_INDEX)
        self.assertEqual((response.code, error_code(err)), (400, "MANIFEST_INVALID"))

    def test_bad_tag_and_digest_references(self):
        """A tag outside the grammar is TAG_INVALID, a malformed digest DIGEST_INVALID."""
        body = self.image_manifest(NAME, [b"l"])
        self.assertEqual(error_code(self.put_manifest(NAME, "-bad", body)[1]), "TAG_INVALID")
        self.assertEqual(error_code(self.put_manifest(NAME, "sha256:abc", body)[1]), "DIGEST_INVALID")

    def test_pushed_manifest_pins_proxy_blobs(self):
        """Blobs the cache holds as proxy become hosted once a pushed manifest uses them."""
        layer = b"cached layer"
        digest = sha256(layer)
        stored = self.successResultOf(Deferred.fromCoroutine(self.app.storage.store_bytes(layer)))
        self.successResultOf(
            Deferred.fromCoroutine(
                self.app.index.put_entry(
                    kind="proxy", type_="blob", repository="", key=stored, digest=stored, size=len(layer), now=1.0
                )
            )
        )
        config = self.push_blob(NAME, b"{}")
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
                "layers": [{"mediaType": "x", "digest": digest, "size": len(layer)}],
            }
        ).encode()
        self.assertEqual(self.put_manifest(NAME, "v1", body)[0].code, 201)
        entry = self.successResultOf(Deferred.fromCoroutine(self.app.index.get_entry("blob", "", digest)))
        self.assertEqual(entry.kind, "hosted")


class ListingAndDeleteTests(HostedRegistryCase):
    def setUp(self):
        super().setUp()
        self.body = self.image_manifest(NAME, [b"l"])
        for tag in ("c", "a", "b", "d"):
            self.put_manifest(NAME, tag, self.body)

    def test_tags_list(self):
        """All tags in lexical order."""
        response, body = self.fetch("GET", f"/v2/{NAME}/tags/list")
        self.assertEqual(json.loads(body), {"name": NAME, "tags": ["a", "b", "c", "d"]})

    def test_tags_pagination(self):
        """n and last page through the tags; Link points at the next page."""
        response, body = self.fetch("GET", f"/v2/{NAME}/tags/list?n=2")
        self.assertEqual(json.loads(body)["tags"], ["a", "b"])
        self.assertEqual(header(response, "Link"), f'</v2/{NAME}/tags/list?n=2&last=b>; rel="next"')
        response, body = self.fetch("GET", f"/v2/{NAME}/tags/list?n=2&last=b")
        self.assertEqual(json.loads(body)["tags"], ["c", "d"])
        self.assertIsNone(header(response, "Link"))
        response, body = self.fetch("GET", f"/v2/{NAME}/tags/list?n=0")
        self.assertEqual(json.loads(body)["tags"], [])
        for bad in ("99999999999999999999", "9" * 5000, "%C2%B2", "%D9%A3", "-1", "1.5"):
            for path in (f"/v2/{NAME}/tags/list?n={bad}", f"/v2/_catalog?n={bad}"):
                response, body = self.fetch("GET", path)
                self.assertEqual((response.code, error_code(body)), (400, "PAGINATION_NUMBER_INVALID"), path)

    def test_tags_of_unknown_repository(self):
        """A repository with nothing in it is NAME_UNKNOWN."""
        response, body = self.fetch("GET", "/v2/nothing/here/tags/list")
        self.assertEqual((response.code, error_code(body)), (404, "NAME_UNKNOWN"))

    def test_catalog(self):
        """The catalog lists repositories with manifests, paginated."""
        self.put_manifest("another/one", "x", self.image_manifest("another/one", [b"z"]))
        response, body = self.fetch("GET", "/v2/_catalog")
        self.assertEqual(json.loads(body), {"repositories": ["another/one", NAME]})
        response, body = self.fetch("GET", "/v2/_catalog?n=1")
        self.assertEqual(json.loads(body)["repositories"], ["another/one"])
        self.assertIn("last=another%2Fone", header(response, "Link"))

    def test_catalog_page_is_bounded(self):
        """Without n, or with a larger n, one response lists at most CATALOG_PAGE names and links to the rest."""
        from harbor_cache.oci import hosted

        self.patch(hosted, "CATALOG_PAGE", 1)
        self.put_manifest("another/one", "x", self.image_manifest("another/one", [b"z"]))
        for query in ("", "?n=5"):
            response, body = self.fetch("GET", "/v2/_catalog" + query)
            self.assertEqual(json.loads(body)["repositories"], ["another/one"])
            self.assertIn("last=another%2Fone", header(response, "Link"))

    def test_delete_manifest_by_digest(self):
        """DELETE by digest: 202, manifest and its tags gone (404 afterwards)."""
        digest = sha256(self.body)
        response, _ = self.fetch("DELETE", f"/v2/{NAME}/manifests/{digest}")
        self.assertEqual(response.code, 202)
        self.assertEqual(self.fetch("GET", f"/v2/{NAME}/manifests/{digest}")[0].code, 404)
        self.assertEqual(self.fetch("GET", f"/v2/{NAME}/manifests/a")[0].code, 404)
        self.assertEqual(self.fetch("DELETE", f"/v2/{NAME}/manifests/{digest}")[0].code, 404)

    def test_delete_tag(self):
        """DELETE by tag removes only that tag."""
        response, _ = self.fetch("DELETE", f"/v2/{NAME}/manifests/a")
        self.assertEqual(response.code, 202)
        response, body = self.fetch("GET", f"/v2/{NAME}/tags/list")
        self.assertEqual(json.loads(body)["tags"], ["b", "c", "d"])
        self.assertEqual(self.fetch("GET", f"/v2/{NAME}/manifests/b")[0].code, 200)

    def test_delete_proxy_content_refused(self):
        """Cached (proxy) manifests and blobs are not deleted through /v2 (405)."""
        stored = self.successResultOf(Deferred.fromCoroutine(self.app.storage.store_bytes(b"cached")))
        for type_, repo in (("blob", ""), ("manifest", NAME)):
            self.successResultOf(
                Deferred.fromCoroutine(
                    self.app.index.put_entry(
                        kind="proxy",
                        type_=type_,
                        repository=repo,
                        key=stored,
                        digest=stored,
                        size=6,
                        now=1.0,
                        media_type=OCI_MANIFEST,
                    )
                )
            )
        self.assertEqual(self.fetch("DELETE", f"/v2/{NAME}/blobs/{stored}")[0].code, 405)
        self.assertEqual(self.fetch("DELETE", f"/v2/{NAME}/manifests/{stored}")[0].code, 405)
        self.assertIsNotNone(self.app.storage.stat_blob(stored))

    def test_delete_blob(self):
        """DELETE of a hosted blob: 202, then 404; the file is removed."""
        digest = self.push_blob(NAME, b"to delete")
        self.assertEqual(self.fetch("DELETE", f"/v2/{NAME}/blobs/{digest}")[0].code, 202)
        self.assertEqual(self.fetch("GET", f"/v2/{NAME}/blobs/{digest}")[0].code, 404)
        self.assertIsNone(self.app.storage.stat_blob(digest))

    def test_blob_needed_by_another_repositorys_manifest_survives_delete(self):
        """DELETE through another repository name removes only that name's claim; the manifest that
        needs the blob keeps working, and the file goes only when nothing holds it any more."""
        layer = b"shared layer"
        body = self.image_manifest("team/a", [layer])
        self.assertEqual(self.put_manifest("team/a", "v1", body)[0].code, 201)
        digest = sha256(layer)
        # A repository that never held the blob cannot delete it.
        response, err = self.fetch("DELETE", f"/v2/team/other/blobs/{digest}")
        self.assertEqual((response.code, error_code(err)), (404, "BLOB_UNKNOWN"))
        # Another repository pushed it too: its DELETE drops its own claim only.
        self.push_blob("team/b", layer)
        self.assertEqual(self.fetch("DELETE", f"/v2/team/b/blobs/{digest}")[0].code, 202)
        self.assertIsNotNone(self.app.storage.stat_blob(digest))
        self.assertEqual(self.fetch("GET", f"/v2/team/a/blobs/{digest}")[0].code, 200)
        # The repository whose manifest needs it: 409 DENIED until the manifest is gone.
        response, err = self.fetch("DELETE", f"/v2/team/a/blobs/{digest}")
        self.assertEqual((response.code, error_code(err)), (409, "DENIED"))
        self.assertEqual(self.fetch("GET", "/v2/team/a/manifests/v1")[0].code, 200)
        self.assertEqual(self.fetch("DELETE", f"/v2/team/a/manifests/{sha256(body)}")[0].code, 202)
        self.assertEqual(self.fetch("DELETE", f"/v2/team/a/blobs/{digest}")[0].code, 202)
        self.assertIsNone(self.app.storage.stat_blob(digest))
        self.assertEqual(self.fetch("GET", f"/v2/team/a/blobs/{digest}")[0].code, 404)

    def test_manifests_pushed_before_claims_are_recorded_at_start(self):
        """A manifest pushed before blob_refs existed gets its blobs recorded at start; its layer is then safe."""
        layer = b"legacy layer"
        body = self.image_manifest("team/old", [layer])
        self.assertEqual(self.put_manifest("team/old", "v1", body)[0].code, 201)
        self.app.db_pool.conn.execute("DELETE FROM blob_refs")  # as an index from before migration 6 left it
        self.app.db_pool.conn.commit()
        recorded = self.successResultOf(Deferred.fromCoroutine(self.app.hosted.record_legacy_blob_refs()))
        self.assertGreaterEqual(recorded, 1)  # this one, and the manifest setUp pushed
        response, err = self.fetch("DELETE", f"/v2/team/old/blobs/{sha256(layer)}")
        self.assertEqual((response.code, error_code(err)), (409, "DENIED"))
        self.assertEqual(self.successResultOf(Deferred.fromCoroutine(self.app.hosted.record_legacy_blob_refs())), 0)

    def test_mounted_blob_is_claimed(self):
        """A blob mounted into a repository is that repository's to delete (and the source keeps it)."""
        digest = self.push_blob("team/src", b"mounted")
        response, _ = self.fetch("POST", f"/v2/team/dst/blobs/uploads/?mount={digest}&from=team/src")
        self.assertEqual(response.code, 201)
        self.assertEqual(self.fetch("DELETE", f"/v2/team/dst/blobs/{digest}")[0].code, 202)
        self.assertEqual(self.fetch("GET", f"/v2/team/src/blobs/{digest}")[0].code, 200)
        self.assertEqual(self.fetch("DELETE", f"/v2/team/src/blobs/{digest}")[0].code, 202)
        self.assertIsNone(self.app.storage.stat_blob(digest))

    def test_referrers(self):
        """A manifest with a subject shows up in the subject's referrers, filterable by artifactType."""
        subject = sha256(self.body)
        sig = json.loads(self.image_manifest(NAME, [b"sig"]))
        sig["artifactType"] = "application/example.sig"
        sig["subject"] = {"mediaType": OCI_MANIFEST, "digest": subject, "size": len(self.body)}
        sig_body = json.dumps(sig).encode()
        response, _ = self.put_manifest(NAME, sha256(sig_body), sig_body)
        self.assertEqual(header(response, "OCI-Subject"), subject)
        response, body = self.fetch("GET", f"/v2/{NAME}/referrers/{subject}")
        index = json.loads(body)
        self.assertEqual(header(response, "Content-Type"), OCI_INDEX)
        self.assertEqual(
            [(m["digest"], m["artifactType"]) for m in index["manifests"]],
            [(sha256(sig_body), "application/example.sig")],
        )
        response, body = self.fetch("GET", f"/v2/{NAME}/referrers/{subject}?artifactType=other")
        self.assertEqual(json.loads(body)["manifests"], [])
        self.assertEqual(header(response, "OCI-Filters-Applied"), "artifactType")


class RefusedPushAuditTests(HostedRegistryCase):
    """Refused pushes leave an image.push.refused record (issue 29); the anonymous challenge does not."""

    def refused(self) -> list[tuple[str | None, str | None, int]]:
        _, rows = self.successResultOf(
            Deferred.fromCoroutine(self.app.index.audit_page(offset=0, limit=10, action="image.push.refused"))
        )
        return [(r.actor, r.target, json.loads(r.detail or "{}")["status"]) for r in rows]

    def test_denied_and_bad_credentials_are_recorded(self) -> None:
        reader = [u for u, (_, role) in USERS.items() if role == "read-only"][0]
        response, _ = self.fetch("POST", f"/v2/{NAME}/blobs/uploads/", user=reader)
        self.assertEqual(response.code, 403)
        response, _ = self.fetch(
            "PUT", f"/v2/{NAME}/manifests/1", b"{}", {"Authorization": "Basic " + "YWRtaW46d3Jvbmc="}, user=None
        )  # admin:wrong
        self.assertEqual(response.code, 401)
        response, _ = self.fetch("POST", f"/v2/{NAME}/blobs/uploads/", user=None)
        self.assertEqual(response.code, 401)  # anonymous: the routine challenge, not recorded
        self.assertEqual(self.refused(), [("admin", NAME, 401), (reader, NAME, 403)])
