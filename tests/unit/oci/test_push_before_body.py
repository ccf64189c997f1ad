"""Pushes are answered from their headers before the body is read; a disk that fills midway is 507.

Issue 24 (4): a blob upload or a Maven deploy that the headers and the path
already decide - over ``max_upload_bytes``, a release redeploy under
``redeploy = "deny"``, no room above ``cache.min_free_bytes`` - gets its answer
with the body unread: each test sends the head only, over an in-memory
transport into the real `HarborSite` of a whole app, and checks that the
response is written, the socket was never resumed (`StringTransport`'s
producer state) and the connection closes.  A body that runs out of space
midway gets 507 ``INSUFFICIENT_STORAGE`` in the error format; nothing is kept
and the next request is served.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import shutil
import tempfile

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.http.channel import LINGER_SECONDS
from harbor_cache.http.client_limits import ClientLimits
from harbor_cache.http.site import HarborSite
from harbor_cache.settings.startup import MavenRepositoryConfig
from harbor_cache.storage import disk
from harbor_cache.testing import PlainPasswords, build_app

ADDR = IPv4Address("TCP", "127.0.0.1", 40000)
WRITER = "Basic " + base64.b64encode(b"writer:writer-pw").decode()
RELEASE = "/artifacts/releases/org/example/lib/1.0/lib-1.0.jar"
GIB = 1 << 30


def head(method: str, path: str, *headers: str) -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: x", f"Authorization: {WRITER}", *headers, "", ""]).encode()


def parse(raw: bytes) -> tuple[int, bytes, bytes]:
    head_part, _, body = raw.partition(b"\r\n\r\n")
    if b"Transfer-Encoding: chunked" in head_part:
        out = b""
        while body:
            size, _, rest = body.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out, body = out + rest[:n], rest[n + 2 :]
        body = out
    return int(head_part.split(b" ", 2)[1]), head_part, body


def error_code(body: bytes) -> str:
    return json.loads(body)["errors"][0]["code"]


class Wire:
    """A whole app (inline index and I/O) behind a real `HarborSite` on a `Clock`."""

    def __init__(self, case: SynchronousTestCase, **limits):
        self.case = case
        self.dir = tempfile.mkdtemp(prefix="harbor-push-test-")
        case.addCleanup(shutil.rmtree, self.dir, True)
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.app = build_app(
            self.dir,
            clock=self.clock,
            passwords=PlainPasswords,
            maven_repositories=(MavenRepositoryConfig(id="releases", type="hosted"),),
        )
        case.addCleanup(self.app.db_pool.close)
        case.successResultOf(Deferred.fromCoroutine(self._setup()))
        self.site = HarborSite(self.app.root, self.app.metrics, limits=ClientLimits(**limits), reactor=self.clock)
        self.free = 100 * GIB
        case.patch(self.app.storage, "free_bytes", lambda: self.free)

    async def _setup(self) -> None:
        await self.app.settings.load()
        await self.app.index.create_user("writer", "writer-pw", "read-write", self.clock.seconds())

    def connect(self) -> tuple:
        channel = self.site.buildProtocol(ADDR)
        transport = StringTransport()
        channel.makeConnection(transport)
        return channel, transport

    def send(self, data: bytes) -> tuple[int, bytes, bytes]:
        """One request on a fresh connection; the response (it must be complete)."""
        channel, transport = self.connect()
        channel.dataReceived(data)
        return parse(transport.value())

    def answered_unread(self, data: bytes) -> tuple[int, bytes]:
        """Send ``data``, a head announcing a body (and asking for 100-continue): the answer comes without
        a byte of the body sent and without the body being asked for (no 100 Continue); then the connection closes.
        """
        channel, transport = self.connect()
        channel.dataReceived(data[:-2] + b"Expect: 100-continue\r\n\r\n")
        raw = transport.value()
        self.case.assertTrue(raw, "no answer before the body")
        self.case.assertFalse(raw.startswith(b"HTTP/1.1 100"), "the body was asked for")
        status, headers, body = parse(raw)
        self.case.assertIn(b"Connection: close", headers)
        if not transport.disconnecting:
            self.clock.advance(LINGER_SECONDS)
        self.case.assertTrue(transport.disconnecting)
        return status, body

    def start_session(self) -> str:
        status, headers, _ = self.send(head("POST", "/v2/hosted/x/blobs/uploads/", "Content-Length: 0"))
        self.case.assertEqual(status, 202)
        return [line.split(b": ", 1)[1] for line in headers.split(b"\r\n") if line.startswith(b"Location:")][0].decode()

    def tmp_files(self) -> list[str]:
        found = []
        for sub in ("tmp", "uploads"):
            for root, _, files in os.walk(os.path.join(self.app.data_dir, sub)):
                found += [os.path.join(root, f) for f in files if os.path.getsize(os.path.join(root, f))]
        return found


class AnsweredFromHeadersTests(SynchronousTestCase):
    def test_patch_over_the_upload_limit_is_413_unread(self):
        """A PATCH announcing more than max_upload_bytes: 413 SIZE_INVALID, body unread, session untouched."""
        w = Wire(self, max_upload_bytes=1 << 20)
        location = w.start_session()
        status, body = w.answered_unread(head("PATCH", location, f"Content-Length: {64 * GIB}"))
        self.assertEqual((status, error_code(body)), (413, "SIZE_INVALID"))
        self.assertEqual(json.loads(body)["errors"][0]["detail"], {"size": 64 * GIB, "limit": 1 << 20})
        self.assertEqual(w.tmp_files(), [])

    def test_maven_put_over_the_upload_limit_is_413_unread(self):
        w = Wire(self, max_upload_bytes=1 << 20)
        status, body = w.answered_unread(head("PUT", RELEASE, "Content-Length: %d" % (2 << 20)))
        self.assertEqual((status, error_code(body)), (413, "SIZE_INVALID"))

    def test_patch_that_would_end_below_the_floor_is_507_unread(self):
        """Free space minus the Content-Length below cache.min_free_bytes (1 GiB): 507 before the body."""
        w = Wire(self)
        location = w.start_session()
        w.free = 2 * GIB
        status, body = w.answered_unread(head("PATCH", location, f"Content-Length: {GIB + (1 << 20)}"))
        self.assertEqual((status, error_code(body)), (507, "INSUFFICIENT_STORAGE"))
        # a chunk that fits is taken on the same session
        status, _, _ = w.send(head("PATCH", location, "Content-Length: 3") + b"abc")
        self.assertEqual(status, 202)

    def test_monolithic_post_and_put_below_the_floor_are_507_unread(self):
        w = Wire(self)
        location = w.start_session()
        w.free = GIB
        digest = "sha256:" + hashlib.sha256(b"x").hexdigest()
        for method, path in (
            ("POST", "/v2/hosted/x/blobs/uploads/?digest=" + digest),
            ("PUT", location + "?digest=" + digest),
        ):
            status, body = w.answered_unread(head(method, path, "Content-Length: 1048576"))
            self.assertEqual((method, status, error_code(body)), (method, 507, "INSUFFICIENT_STORAGE"))

    def test_maven_deploy_below_the_floor_is_507_unread(self):
        w = Wire(self)
        w.free = GIB + 100
        status, body = w.answered_unread(head("PUT", RELEASE, "Content-Length: 1000"))
        self.assertEqual((status, error_code(body)), (507, "INSUFFICIENT_STORAGE"))

    def test_release_redeploy_is_409_unread(self):
        """Under redeploy = "deny" a second PUT of a release gets 409 before its 50 MiB body is read."""
        w = Wire(self)
        status, _, _ = w.send(head("PUT", RELEASE, "Content-Length: 4") + b"jar1")
        self.assertEqual(status, 201)
        status, body = w.answered_unread(head("PUT", RELEASE, "Content-Length: %d" % (50 << 20)))
        self.assertEqual((status, error_code(body)), (409, "CONFLICT"))

    def test_anonymous_deploy_is_401_unread(self):
        w = Wire(self)
        data = b"PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (RELEASE.encode(), 50 << 20)
        status, body = w.answered_unread(data)
        self.assertEqual((status, error_code(body)), (401, "UNAUTHORIZED"))


class DiskFullMidwayTests(SynchronousTestCase):
    def fill_after(self, limit: int) -> None:
        """Writes to the disk fail with ENOSPC once ``limit`` bytes went through `disk.write_all`."""
        written = [0]
        real = disk.write_all

        def write_all(fd, data):
            written[0] += len(data)
            if written[0] > limit:
                raise OSError(errno.ENOSPC, "No space left on device")
            real(fd, data)

        self.patch(disk, "write_all", write_all)

    def test_patch_running_out_of_space_is_507_and_the_server_goes_on(self):
        w = Wire(self)
        location = w.start_session()
        self.fill_after(1 << 20)
        channel, transport = w.connect()
        channel.dataReceived(head("PATCH", location, "Content-Length: %d" % (4 << 20)))
        for _ in range(4):
            if transport.value():
                break
            channel.dataReceived(b"z" * (1 << 20))
        status, _, body = parse(transport.value())
        self.assertEqual((status, error_code(body)), (507, "INSUFFICIENT_STORAGE"))
        self.assertEqual(w.tmp_files(), [])
        status, _, _ = w.send(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n" % WRITER.encode())
        self.assertEqual(status, 200)

    def test_monolithic_upload_running_out_of_space_is_507_nothing_kept(self):
        w = Wire(self)
        self.fill_after(1 << 20)
        data = os.urandom(3 << 20)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, _, body = w.send(
            head("POST", "/v2/hosted/x/blobs/uploads/?digest=" + digest, "Content-Length: %d" % len(data)) + data
        )
        self.assertEqual((status, error_code(body)), (507, "INSUFFICIENT_STORAGE"))
        self.assertEqual(w.tmp_files(), [])
        self.assertIsNone(w.app.storage.stat_blob(digest))

    def test_maven_deploy_running_out_of_space_is_507_nothing_kept(self):
        w = Wire(self)
        self.fill_after(1 << 20)
        data = os.urandom(3 << 20)
        status, _, body = w.send(head("PUT", RELEASE, "Content-Length: %d" % len(data)) + data)
        self.assertEqual((status, error_code(body)), (507, "INSUFFICIENT_STORAGE"))
        self.assertEqual(w.tmp_files(), [])
        entry = w.case.successResultOf(
            Deferred.fromCoroutine(w.app.index.get_entry("maven", "releases", RELEASE.split("/", 3)[3]))
        )
        self.assertIsNone(entry)
