"""Faults and races that used to cost data or time (issue 11): each test fails on the code before its fix."""

from __future__ import annotations

import errno
import hashlib
import os

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH

from harbor_cache.core.flight.downloads import Downloads, Opened
from harbor_cache.metrics import Metrics
from harbor_cache.storage import RangeProducer, SourceFailed, Storage, disk
from harbor_cache.testing import InlineIO
from tests.unit.base import MavenCacheCase, OciCacheCase, app_evictor


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ManualIO:
    """File work queued until the test runs it: to stop between "done on the pool" and "reported back"."""

    def __init__(self):
        self.jobs: list = []

    def run(self, fn, *args):
        d = defer.Deferred()
        self.jobs.append((fn, args, d))
        return d

    def step(self, report: bool = True):
        """Run the next job; report its result back now, or return its Deferred and result to do it later."""
        fn, args, d = self.jobs.pop(0)
        result = fn(*args)
        if report:
            d.callback(result)
            return None
        return d, result

    def run_all(self):
        while self.jobs:
            self.step()


class FakeTransport:
    def __init__(self):
        self.paused = False
        self.stopped = False

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False

    def stopProducing(self):
        self.stopped = True


class FakeResponse:
    """An upstream 200 whose body the test delivers by hand."""

    code = 200

    def __init__(self, length=UNKNOWN_LENGTH):
        self.length = length
        self.headers = Headers()
        self.transport = FakeTransport()
        self.protocol = None

    def deliverBody(self, protocol):
        self.protocol = protocol
        protocol.makeConnection(self.transport)

    def send(self, data: bytes):
        self.protocol.dataReceived(data)

    def end(self, reason):
        self.protocol.connectionLost(Failure(reason))


class DownloadFaultTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.storage = Storage(self.mktemp(), InlineIO())
        self.downloads = Downloads(self.storage, self.clock, Metrics(), idle_timeout=30)
        self.committed = []

    def start(self, response, expected=None, key="k"):
        test = self

        class Job:
            front = "maven"
            source = "up"
            extra_hashes = ()
            adoptable = False

            def __init__(self):
                self.key = key

            async def open(self):
                return Opened(response, "up")

            async def expected_digest(self):
                return expected

            async def commit(self, dl):
                test.committed.append(dl.temp.digest)
                return dl.temp.digest

            async def adopt(self):
                return None

        dl = self.downloads.start(Job())
        return dl, dl.committed.observe()

    def test_body_ended_by_close_without_checksum_is_not_committed(self):
        """No Content-Length, the connection closes (PotentialDataLoss), nothing verifies it: not committed."""
        response = FakeResponse()
        dl, committed = self.start(response)
        response.send(b"half of a jar")
        response.end(PotentialDataLoss())
        self.failureResultOf(committed)
        self.assertEqual(self.committed, [])
        self.assertIsNotNone(dl.temp.failure)  # readers abort their connections
        self.assertEqual(os.listdir(self.storage.tmp_dir), [])
        self.assertNotIn("k", self.downloads.inflight)

    def test_body_ended_by_close_with_matching_checksum_is_committed(self):
        """The same close-delimited body is kept when a checksum proved it whole."""
        response = FakeResponse()
        dl, committed = self.start(response, expected=sha256(b"a whole jar"))
        response.send(b"a whole jar")
        response.end(PotentialDataLoss())
        self.assertEqual(self.successResultOf(committed).temp.digest, sha256(b"a whole jar"))
        self.assertEqual(self.committed, [sha256(b"a whole jar")])

    def test_body_with_certain_end_is_committed_without_checksum(self):
        """A body whose end is certain (length or chunking) needs no checksum."""
        response = FakeResponse()
        dl, committed = self.start(response)
        response.send(b"chunked body")
        response.end(ResponseDone())
        self.successResultOf(committed)
        self.assertEqual(self.committed, [sha256(b"chunked body")])

    def test_a_download_asks_for_no_early_writeback_a_push_does(self):
        """A download's readers finish before the fsync, so it writes without write-behind; a push keeps it."""
        calls = []
        self.patch(disk, "start_writeback", lambda fd, offset, length: calls.append(length))
        data = os.urandom(3 * disk.WRITEBACK_STEP)
        response = FakeResponse(len(data))
        dl, done = self.start(response)
        response.send(data)
        response.end(ResponseDone())
        self.successResultOf(done)
        self.assertEqual(self.committed, ["sha256:" + hashlib.sha256(data).hexdigest()])
        self.assertEqual(calls, [])
        pushed = self.storage.new_temp(len(data))  # what the hosted fronts use for a pushed blob
        pushed.write(data)
        self.successResultOf(defer.Deferred.fromCoroutine(pushed.finish()))
        self.assertEqual(calls, [len(data)])

    def test_local_write_error_stops_upstream_and_frees_the_key(self):
        """A failed disk write ends the download at once: upstream transfer stopped, key free, temp gone."""

        def fail_write(fd, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        self.patch(disk, "write_all", fail_write)
        response = FakeResponse(length=1000)
        dl, committed = self.start(response, expected=sha256(b"x" * 1000))
        response.send(b"x" * 100)
        # The upstream has not finished (it never ends here): everything must already be over.
        self.assertTrue(response.transport.stopped)
        self.assertNotIn("k", self.downloads.inflight)
        self.failureResultOf(committed)
        self.assertEqual(os.listdir(self.storage.tmp_dir), [])
        # A new request starts a new download instead of joining the dead one.
        self.assertIsNone(self.downloads.get("k"))
        self.flushLoggedErrors(OSError)


class _Consumer(StringTransport):
    pass


class CommitRaceTests(SynchronousTestCase):
    def test_reader_joining_during_rename_gets_the_committed_file(self):
        """A reader that opens the temp path after the rename waits for the new path instead of failing."""
        io = ManualIO()
        store = Storage(self.mktemp(), io)
        data = os.urandom(5000)
        temp = store.new_temp(len(data))
        temp.write(data)
        io.run_all()  # write and hash lanes
        finished = defer.Deferred.fromCoroutine(temp.finish(sha256(data)))
        io.step()  # fsync (or close, before the fix)
        while io.jobs and io.jobs[0][0] != store._install:
            io.step()
        install_done, _ = io.step(report=False)  # renamed on the pool, not yet reported to the reactor
        self.assertFalse(os.path.exists(temp.path))
        consumer = _Consumer()
        reader = RangeProducer(temp, consumer)
        done = reader.start()
        self.assertNoResult(done)
        install_done.callback(None)
        io.run_all()
        self.successResultOf(finished)
        self.successResultOf(done)
        self.assertEqual(consumer.value(), data)

    def test_reader_waiting_for_rename_fails_when_the_commit_fails(self):
        """If the rename never completes, the waiting reader fails (its client is aborted), never hangs."""
        io = ManualIO()
        store = Storage(self.mktemp(), io)
        temp = store.new_temp(4)
        temp.write(b"abcd")
        io.run_all()
        os.unlink(temp.path)  # as if it had just been renamed
        reader = RangeProducer(temp, _Consumer())
        done = reader.start()
        self.assertNoResult(done)
        temp.abort(Exception("commit failed"))
        io.run_all()
        self.failureResultOf(done, SourceFailed)


class DurabilityTests(SynchronousTestCase):
    def test_file_fsynced_before_rename_and_directory_after(self):
        """finish() fsyncs the temp file before the rename and the receiving directories after it."""
        store = Storage(self.mktemp(), InlineIO())
        events = []
        real_sync_file, real_sync_dir = disk.sync_file, disk.sync_dir
        temp = store.new_temp(3)
        final = store.blob_path(sha256(b"abc"))

        def sync_file(fd):
            events.append(("file", os.path.exists(temp.path), os.path.exists(final)))
            real_sync_file(fd)

        def sync_dir(path):
            events.append(("dir", path, os.path.exists(final)))
            real_sync_dir(path)

        self.patch(disk, "sync_file", sync_file)
        self.patch(disk, "sync_dir", sync_dir)
        temp.write(b"abc")
        self.successResultOf(defer.Deferred.fromCoroutine(temp.finish(sha256(b"abc"))))
        self.assertEqual(events[0], ("file", True, False))
        self.assertIn(("dir", os.path.dirname(final), True), events)
        # The two-hex-digit directory was new: its parent is synced too.
        self.assertIn(("dir", os.path.dirname(os.path.dirname(final)), True), events)

    def test_fsync_failure_commits_nothing(self):
        """An fsync error (EIO, ENOSPC on some filesystems) fails the blob: no file under the digest."""
        store = Storage(self.mktemp(), InlineIO())

        def sync_file(fd):
            raise OSError(errno.EIO, "Input/output error")

        self.patch(disk, "sync_file", sync_file)
        temp = store.new_temp(3)
        temp.write(b"abc")
        self.failureResultOf(defer.Deferred.fromCoroutine(temp.finish(sha256(b"abc"))))
        self.assertIsNone(store.stat_blob(sha256(b"abc")))
        self.assertEqual(os.listdir(store.tmp_dir), [])


class HeadInFlightTests(OciCacheCase):
    def setUp(self):
        super().setUp()
        self.layer = os.urandom(100_000)
        self.digest = self.upstream.add_blob(self.layer)

    def test_head_of_a_blob_in_flight_waits_for_its_commit(self):
        """HEAD of a blob still downloading answers only once it is committed (a push would skip it otherwise)."""
        self.upstream.hold[self.digest] = 10_000
        get = self.request("GET", "/v2/library/app/blobs/" + self.digest)
        body = self.read_body(self.successResultOf(get))
        head = self.request("HEAD", "/v2/other/name/blobs/" + self.digest)
        self.assertNoResult(head)
        self.upstream.release()
        self.flush()
        response = self.successResultOf(head)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"Content-Length"), [b"%d" % len(self.layer)])
        self.assertEqual(self.successResultOf(body), self.layer)
        self.assertIsNotNone(self.app.storage.stat_blob(self.digest))

    def test_head_of_a_blob_whose_download_fails_asks_upstream(self):
        """If the download it waited for fails, the HEAD answers what the upstream says."""
        self.upstream.hold[self.digest] = 10_000
        get = self.request("GET", "/v2/library/app/blobs/" + self.digest)
        body = self.read_body(self.successResultOf(get))
        head = self.request("HEAD", "/v2/library/app/blobs/" + self.digest)
        self.assertNoResult(head)
        self.upstream.release(fail=True)
        self.flush()
        self.failureResultOf(body)
        self.assertEqual(self.successResultOf(head).code, 200)
        self.assertEqual(self.upstream.count("HEAD", "/blobs/"), 1)
        self.assertIsNone(self.app.storage.stat_blob(self.digest))


class MavenChecksumTests(MavenCacheCase):
    JAR = "org/example/lib/1.0/lib-1.0.jar"

    def test_sha1_answered_after_the_body_is_still_stored(self):
        """The upstream .sha1 used for verification is stored even when it arrives after the body."""
        up = self.upstream
        jar = os.urandom(50_000)
        up.put(self.JAR, jar)
        pending = defer.Deferred()
        upstream = self.app.maven.upstreams["central"]
        self.patch(upstream, "fetch_small", lambda path, limit=None: pending)
        got = self.drive(self.app.maven.get_file("central", self.JAR))
        f = self.successResultOf(got)
        self.assertFalse(f.source.verified)  # waits for the checksum
        pending.callback((hashlib.sha1(jar).hexdigest().encode(), None))
        self.flush()
        self.assertTrue(f.source.verified)
        entry = self.successResultOf(self.drive(self.app.index.get_entry("maven", "central", self.JAR + ".sha1")))
        self.assertIsNotNone(entry)
        self.assertEqual(entry.size, 40)

    def test_sha1_asked_before_the_commit_is_served_from_the_commit(self):
        """A client's .sha1 request that arrives before the jar's commit waits for it: no second upstream GET."""
        up = self.upstream
        jar = os.urandom(50_000)
        up.put(self.JAR, jar)
        pending = defer.Deferred()
        upstream = self.app.maven.upstreams["central"]
        self.patch(upstream, "fetch_small", lambda path, limit=None: pending)
        self.successResultOf(self.drive(self.app.maven.get_file("central", self.JAR)))
        sidecar = self.drive(self.app.maven.get_file("central", self.JAR + ".sha1"))
        pending.callback((hashlib.sha1(jar).hexdigest().encode(), None))
        self.flush()
        f = self.successResultOf(sidecar)
        self.assertEqual(up.count("GET", self.JAR + ".sha1"), 0)
        self.assertEqual(f.cache_status, "hit")


class DiskFullTests(OciCacheCase):
    def setUp(self):
        super().setUp()
        self.layer = os.urandom(100_000)
        self.digest = self.upstream.add_blob(self.layer)
        from harbor_cache.core.operations.diskspace import DiskSpace

        self.free = 10 << 30
        self.patch(self.app.storage, "free_bytes", lambda: self.free)
        self.space = DiskSpace(self.app.storage, self.app.settings)
        self.app.downloads.space = self.space

    def test_cold_blob_that_cannot_be_stored_is_507_in_oci_format(self):
        """With no room, a cold blob gets 507 INSUFFICIENT_STORAGE (not a reset) and upstream is not asked."""
        import json

        self.free = 1 << 20
        response = self.successResultOf(self.request("GET", "/v2/library/app/blobs/" + self.digest))
        self.assertEqual(response.code, 507)
        body = json.loads(self.successResultOf(self.read_body(response)))
        self.assertEqual(body["errors"][0]["code"], "INSUFFICIENT_STORAGE")
        self.assertEqual(self.upstream.count("GET", "/blobs/"), 0)
        self.assertEqual(self.app.downloads.inflight, {})
        self.free = 10 << 30
        response = self.successResultOf(self.request("GET", "/v2/library/app/blobs/" + self.digest))
        self.assertEqual((response.code, self.successResultOf(self.read_body(response))), (200, self.layer))

    def test_health_degraded_below_the_free_space_floor(self):
        """/health reports degraded with problem disk_space below cache.min_free_bytes."""
        import json

        from harbor_cache.api.health import HealthFront

        front = HealthFront(self.app.index, self.app.storage, self.app.metrics, space=self.space)
        self.app.root.mount(b"health", front.app.resource())
        self.free = 1 << 20
        response = self.successResultOf(self.request("GET", "/health"))
        body = json.loads(self.successResultOf(self.read_body(response)))
        self.assertEqual((body["status"], body["problems"]), ("degraded", ["disk_space"]))
        self.free = 10 << 30
        response = self.successResultOf(self.request("GET", "/health"))
        self.assertEqual(json.loads(self.successResultOf(self.read_body(response)))["status"], "healthy")


class FullDiskEvictionTests(OciCacheCase):
    def setUp(self):
        from harbor_cache.core.operations.diskspace import DiskSpace

        super().setUp()
        self.digests = []
        for _ in range(3):
            d = self.upstream.add_blob(os.urandom(1000))
            self.digests.append(d)
            response = self.successResultOf(self.request("GET", "/v2/library/app/blobs/" + d))
            self.successResultOf(self.read_body(response))
        self.free = 10 << 30
        self.patch(self.app.storage, "free_bytes", lambda: self.free)
        self.space = DiskSpace(self.app.storage, self.app.settings)
        self.evictor = app_evictor(self)
        self.evictor.space = self.space

    def test_clear_on_a_full_disk_gives_back_the_reserve_and_works(self):
        """sqlite's "database or disk is full" on DELETE: the reserve is released and the clear succeeds."""
        import sqlite3

        self.assertTrue(self.app.storage.ensure_reserve(1 << 16))
        real = self.app.index.delete_proxy_entries
        calls = []

        async def full_once(ids):
            calls.append(ids)
            if len(calls) == 1:
                raise sqlite3.OperationalError("database or disk is full")
            return await real(ids)

        self.patch(self.app.index, "delete_proxy_entries", full_once)
        removed = self.successResultOf(defer.Deferred.fromCoroutine(self.evictor.clear_proxy()))
        self.assertEqual(removed, 3)
        self.assertFalse(os.path.exists(self.app.storage.reserve_path) and len(calls) < 2)
        for d in self.digests:
            self.assertIsNone(self.app.storage.stat_blob(d))

    def test_eviction_keeps_the_free_space_floor(self):
        """Below cache.min_free_bytes a pass evicts proxied content even under cache.max_size."""
        self.free = (1 << 30) - 1500  # 1500 bytes short of the default floor (1 GiB)
        real_delete = self.app.storage.delete_blob

        removed = self.successResultOf(defer.Deferred.fromCoroutine(self.evictor.run()))
        self.assertEqual(removed, 2)  # 1000 bytes each: two are needed
        left = [d for d in self.digests if self.app.storage.stat_blob(d) is not None]
        self.assertEqual(len(left), 1)
        del real_delete


class OrphanTests(OciCacheCase):
    def test_sweep_removes_old_unreferenced_files_only(self):
        """A file no row points at goes once older than the grace; indexed and young files stay; stats count them."""
        import time

        from harbor_cache.core.operations.orphans import OrphanSweeper

        up = self.upstream
        kept = up.add_blob(b"indexed")
        self.successResultOf(self.read_body(self.successResultOf(self.request("GET", "/v2/library/app/blobs/" + kept))))
        old = sha256(b"orphan left by kill -9")
        young = sha256(b"a commit in progress")
        for digest, data, age in ((old, b"orphan left by kill -9", 3600), (young, b"a commit in progress", 10)):
            path = self.app.storage.blob_path(digest)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            os.utime(path, (time.time() - age, time.time() - age))
        self.clock.advance(time.time() - self.clock.seconds())
        sweeper = OrphanSweeper(
            index=self.app.index, storage=self.app.storage, settings=self.app.settings, clock=self.clock
        )
        removed = self.successResultOf(defer.Deferred.fromCoroutine(sweeper.sweep()))
        self.assertEqual(removed, (1, len(b"orphan left by kill -9")))
        self.assertIsNone(self.app.storage.stat_blob(old))
        self.assertIsNotNone(self.app.storage.stat_blob(young))
        self.assertIsNotNone(self.app.storage.stat_blob(kept))
        self.assertEqual(sweeper.orphan_bytes, len(b"a commit in progress"))
