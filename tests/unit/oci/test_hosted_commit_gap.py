"""Hosted pushes between "file moved into place" and "row written": no deleter takes the file meanwhile.

A push renames the verified bytes to ``blobs/<digest>`` before the core writes
the hosted row (`storage.commits`).  Each test runs a deleter at exactly that
moment (from inside the row write, before it writes): the garbage collector
removing the last row of the same bytes, or the orphan sweep finding the file
without a row.  The file must survive and be served once the row is there.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tests.unit.base import OCI_MANIFEST, HostedRegistryCase, basic, header, sha256

NAME = "team/app"


class CommitGapTests(HostedRegistryCase):
    def before_row(self, method: str, deleter: Any) -> list[str]:
        """Run ``deleter()`` inside the index's ``method`` (the push's row write), once, before the row is written."""
        index = self.app.index
        real = getattr(index, method)
        ran: list[str] = []

        async def hooked(*args: Any, **kwargs: Any) -> Any:
            if not ran:
                ran.append(method)
                await deleter()
            return await real(*args, **kwargs)

        self.patch(index, method, hooked)
        return ran

    def collect(self) -> Any:
        return self.app.gc.collect()

    def push_later(self, method: str, path: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
        """A request whose handler may wait for a cooperating deleter: fired by `settle`."""
        h: dict[Any, Any] = dict(basic("admin"))
        h.update(headers or {})
        response = self.successResultOf(self.settle(self.request(method, path, h, body)))
        return response, self.successResultOf(self.read_body(response))

    def on_disk(self, digest: str) -> bool:
        return os.path.exists(self.app.storage.blob_path(digest))

    def test_blob_pushed_again_survives_gc_of_its_old_row(self):
        """GC deletes the last row of D (unclaimed, older than the grace) while a monolithic push of the same
        bytes has D's file in place and its row on the way: the file stays, the blob is served."""
        data = os.urandom(2000)
        digest = self.push_blob(NAME, data)
        self.clock.advance(2 * 3600)  # past gc.grace_seconds: the old upload's row is garbage
        ran = self.before_row("put_entry", self.collect)
        response, body = self.push_later(
            "POST", f"/v2/{NAME}/blobs/uploads/?digest={digest}", data, {"Content-Type": "application/octet-stream"}
        )
        self.assertEqual((response.code, ran), (201, ["put_entry"]), body)
        self.assertTrue(self.on_disk(digest))
        response, body = self.fetch("GET", f"/v2/{NAME}/blobs/{digest}")
        self.assertEqual((response.code, body), (200, data))

    def test_chunked_put_survives_orphan_sweep(self):
        """A session whose last PATCH is older than cache.orphan_grace_seconds: its file, renamed into the store
        by the final PUT, looks like an old orphan until the row is written; the sweep leaves it."""
        data = os.urandom(3000)
        digest = sha256(data)
        response, _ = self.fetch("POST", f"/v2/{NAME}/blobs/uploads/")
        location = header(response, "Location")
        response, _ = self.fetch("PATCH", location, data, {"Content-Type": "application/octet-stream"})
        self.assertEqual(response.code, 202)
        storage = self.app.storage
        sweeper = self.app.evictor.orphans
        assert sweeper is not None

        async def sweep_an_old_file() -> None:
            old = self.clock.seconds() - 3600  # (the session file's last write, an hour ago)
            os.utime(storage.blob_path(digest), (old, old))
            await sweeper.sweep()

        ran = self.before_row("put_entry", sweep_an_old_file)
        response, body = self.push_later("PUT", f"{location}?digest={digest}", b"")
        self.assertEqual((response.code, ran), (201, ["put_entry"]), body)
        self.assertTrue(self.on_disk(digest))
        response, body = self.fetch("GET", f"/v2/{NAME}/blobs/{digest}")
        self.assertEqual((response.code, body), (200, data))

    def test_manifest_pushed_again_survives_gc_of_its_old_row(self):
        """An untagged manifest past the grace is collected while the same bytes are pushed again under a
        tag: the body's file, already in place, stays for the new row."""
        layer = os.urandom(500)
        manifest = self.image_manifest(NAME, [layer])
        digest = sha256(manifest)
        response, body = self.put_manifest(NAME, digest, manifest)
        self.assertEqual(response.code, 201, body)
        # a tagged image with the same layers keeps them: only the untagged manifest is garbage
        keeper = self.image_manifest(NAME, [layer], annotations={"keep": "yes"})
        self.assertEqual(self.put_manifest(NAME, "keep", keeper)[0].code, 201)
        self.clock.advance(2 * 3600)
        ran = self.before_row("put_hosted_manifest", self.collect)
        response, body = self.push_later("PUT", f"/v2/{NAME}/manifests/v1", manifest, {"Content-Type": OCI_MANIFEST})
        self.assertEqual((response.code, ran), (201, ["put_hosted_manifest"]), body)
        self.assertTrue(self.on_disk(digest))
        response, body = self.fetch("GET", f"/v2/{NAME}/manifests/v1", headers={"Accept": OCI_MANIFEST})
        self.assertEqual((response.code, json.loads(body)), (200, json.loads(manifest)))


class HoldTests(HostedRegistryCase):
    def test_holds_are_released_when_the_row_write_fails(self):
        """A push whose row write fails leaves nothing held (released in finally)."""
        data = os.urandom(100)

        async def failing(*args: Any, **kwargs: Any) -> Any:
            self.assertIn(sha256(data), self.app.storage.committing)
            raise RuntimeError("index away")

        self.patch(self.app.index, "put_entry", failing)
        response, _ = self.fetch(
            "POST",
            f"/v2/{NAME}/blobs/uploads/?digest={sha256(data)}",
            data,
            headers={"Content-Type": "application/octet-stream"},
        )
        self.assertEqual(response.code, 500)
        self.assertEqual(self.app.storage.committing.digests(), set())
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
