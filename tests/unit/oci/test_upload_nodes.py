"""Chunked pushes across nodes that share the index and a bucket but no data directory.

Node B has a data directory of its own (its index file is a symlink to A's,
standing for the shared PostgreSQL); both have one in-memory bucket whose
client keeps objects in a dict.  A PATCH on A and the next PATCH and PUT on B
make one blob; a chunk the bucket cannot store answers 503 and leaves the
session where it was (a later PATCH continues it, on any node); a session
whose chunks are gone ends with BLOB_UPLOAD_UNKNOWN; the chunk objects go
with the commit and with expiry.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone

from harbor_cache.service import HarborApp
from harbor_cache.storage.s3 import S3NotFound, S3Unavailable
from tests.unit.base import HostedRegistryCase, header, sha256
from tests.unit.core.test_bucket_core import MemoryBucket

NAME = "team/app"


class _Transport:
    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...

    def stopProducing(self) -> None: ...


class _Response:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.length = len(data)

    def deliverBody(self, protocol: Any) -> None:
        protocol.makeConnection(_Transport())
        if self.data:
            protocol.dataReceived(self.data)
        protocol.connectionLost(Failure(ResponseDone()))


class MemoryS3:
    """The calls `UploadChunks` makes of an `S3Client`, on a dict; fails as after the retries while ``down``."""

    settings = SimpleNamespace(timeout=30.0)

    def __init__(self, bucket: ChunkBucket) -> None:
        self.bucket = bucket
        self.keys: dict[str, bytes] = {}

    def _check(self) -> None:
        if self.bucket.down:
            raise S3Unavailable("down", code="ConnectionError")

    async def put_file(self, key: str, path: str, *, offset: int = 0, length: int | None = None, **_: Any) -> str:
        self._check()
        with open(path, "rb") as f:
            f.seek(offset)
            self.keys[key] = f.read(-1 if length is None else length)
        return "etag"

    async def get_object(self, key: str) -> _Response:
        self._check()
        if key not in self.keys:
            raise S3NotFound("no such key", code="NoSuchKey", status=404, key=key)
        return _Response(self.keys[key])

    async def head_object(self, key: str) -> Any:
        self._check()
        data = self.keys.get(key)
        return None if data is None else SimpleNamespace(size=len(data))

    async def delete_objects(self, keys: list[str]) -> dict[str, str]:
        self._check()
        for key in keys:
            self.keys.pop(key, None)
        return {}


class ChunkBucket(MemoryBucket):
    def __init__(self, clock: Any) -> None:
        super().__init__()
        self.clock = clock
        self.client = MemoryS3(self)

    def _saw_failure(self, error: Exception) -> None:
        self.reachable = False


class UploadAcrossNodesTests(HostedRegistryCase):
    def setUp(self) -> None:
        super().setUp()
        self.bucket = ChunkBucket(self.clock)
        other = self.mktemp()
        os.makedirs(other)
        os.symlink(os.path.abspath(os.path.join(self.directory, "index.sqlite")), os.path.join(other, "index.sqlite"))
        self.a = self.app
        self.b = self.start_app(directory=other, node_name="b", migrate=False, current=False)
        self.set_up_registry(self.b, first=False)
        for app in (self.a, self.b):
            app.storage.use_bucket(self.bucket, 1 << 30)  # type: ignore[arg-type]
        self.assertNotEqual(self.a.storage.root, self.b.storage.root)

    def chunks(self) -> list[str]:
        return sorted(self.bucket.client.keys)

    def location(self, app: HarborApp) -> str:
        response, body = self.fetch("POST", f"/v2/{NAME}/blobs/uploads/", app=app)
        self.assertEqual(response.code, 202, body)
        location = header(response, "Location")
        assert location is not None
        return location

    def patch_chunk(self, app: HarborApp, location: str, data: bytes, start: int) -> tuple[Any, bytes]:
        return self.fetch("PATCH", location, data, {"Content-Range": f"{start}-{start + len(data) - 1}"}, app=app)

    def test_patch_on_a_patch_and_put_on_b(self) -> None:
        data = os.urandom(9000)
        location = self.location(self.a)
        self.assertEqual(self.patch_chunk(self.a, location, data[:4000], 0)[0].code, 202)
        session = location.rsplit("/", 1)[1]
        self.assertEqual(self.chunks(), [f"uploads/{session}/0"])
        response, body = self.patch_chunk(self.b, location, data[4000:7000], 4000)
        self.assertEqual((response.code, header(response, "Range")), (202, "0-6999"), body)
        self.assertEqual(self.chunks(), [f"uploads/{session}/0", f"uploads/{session}/4000"])
        response, body = self.fetch("PUT", f"{location}?digest={sha256(data)}", data[7000:], app=self.b)
        self.assertEqual(response.code, 201, body)
        self.assertEqual(self.chunks(), [], "the chunk objects go with the commit")
        self.assertEqual(self.bucket.objects[sha256(data)], data)
        for app in (self.a, self.b):
            self.assertEqual(self.fetch("GET", f"/v2/{NAME}/blobs/{sha256(data)}", app=app)[1], data)

    def test_a_chunk_the_bucket_cannot_store_leaves_the_session_where_it_was(self) -> None:
        data = os.urandom(6000)
        location = self.location(self.a)
        self.assertEqual(self.patch_chunk(self.a, location, data[:2000], 0)[0].code, 202)
        self.bucket.down = True
        response, body = self.patch_chunk(self.a, location, data[2000:4000], 2000)
        self.assertEqual((response.code, json.loads(body)["errors"][0]["code"]), (503, "STORAGE_UNAVAILABLE"))
        self.bucket.down = False
        response, _ = self.fetch("GET", location, app=self.b)
        self.assertEqual(header(response, "Range"), "0-1999")  # the index never moved past the failed chunk
        response, body = self.patch_chunk(self.b, location, data[2000:4000], 2000)  # the client tries again, elsewhere
        self.assertEqual(response.code, 202, body)
        # A's file still has the failed chunk's bytes after 2000: cut back and B's chunk fetched instead
        response, body = self.fetch("PUT", f"{location}?digest={sha256(data)}", data[4000:], app=self.a)
        self.assertEqual(response.code, 201, body)
        self.assertEqual(self.fetch("GET", f"/v2/{NAME}/blobs/{sha256(data)}", app=self.b)[1], data)

    def test_a_session_whose_chunks_are_gone_ends(self) -> None:
        location = self.location(self.a)
        self.assertEqual(self.patch_chunk(self.a, location, b"abc", 0)[0].code, 202)
        self.bucket.client.keys.clear()
        response, body = self.patch_chunk(self.b, location, b"def", 3)
        self.assertEqual((response.code, json.loads(body)["errors"][0]["code"]), (404, "BLOB_UPLOAD_UNKNOWN"))
        self.assertEqual(self.fetch("GET", location, app=self.a)[0].code, 404)

    def test_expiry_removes_the_chunks_and_every_nodes_file(self) -> None:
        location = self.location(self.a)
        self.assertEqual(self.patch_chunk(self.a, location, b"abc", 0)[0].code, 202)
        self.assertEqual(self.patch_chunk(self.b, location, b"def", 3)[0].code, 202)
        session = location.rsplit("/", 1)[1]
        self.assertTrue(os.path.exists(os.path.join(self.b.hosted.files.dir, session)))
        self.clock.advance(7200)
        for app in (self.b, self.a):  # B's timer expires the session; A's removes its own file
            os.utime(os.path.join(app.hosted.files.dir, session), (1, 1))
            self.successResultOf(Deferred.fromCoroutine(app.hosted.expire_uploads()))
        self.assertEqual(self.chunks(), [])
        for app in (self.a, self.b):
            self.assertEqual(os.listdir(app.hosted.files.dir), [])
