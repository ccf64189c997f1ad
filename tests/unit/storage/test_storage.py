"""Storage: verified atomic commits, crash safety, and readers of a growing file."""

import hashlib
import os

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.storage import BlobCorrupt, RangeProducer, SourceFailed, Storage
from harbor_cache.testing import InlineIO


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class PausingConsumer(StringTransport):
    """A slow client: pauses its producer after every ``every`` bytes."""

    def __init__(self, every: int):
        super().__init__()
        self.every = every
        self.since_pause = 0
        self.pauses = 0

    def write(self, data):
        super().write(data)
        self.since_pause += len(data)
        if self.since_pause >= self.every and self.producer is not None:
            self.since_pause = 0
            self.pauses += 1
            self.producer.pauseProducing()


class StorageTests(SynchronousTestCase):
    def setUp(self):
        self.root = self.mktemp()
        self.storage = Storage(self.root, InlineIO())

    def test_commit_puts_file_under_digest(self):
        """A finished temp file is renamed to blobs/sha256/ab/<hex> and tmp/ is left empty."""
        data = b"hello world" * 1000
        temp = self.storage.new_temp(len(data))
        temp.write(data)
        digest = self.successResultOf(self._finish(temp, sha(data)))
        self.assertEqual(digest, sha(data))
        path = self.storage.blob_path(digest)
        self.assertTrue(path.endswith(os.path.join("sha256", digest[7:9], digest[7:])))
        with open(path, "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(os.listdir(self.storage.tmp_dir), [])

    def _finish(self, temp, expected=None):
        from twisted.internet.defer import Deferred

        return Deferred.fromCoroutine(temp.finish(expected))

    def test_mismatch_stores_nothing(self):
        """A digest mismatch leaves no file under either name."""
        temp = self.storage.new_temp()
        temp.write(b"corrupted")
        failure = self.failureResultOf(self._finish(temp, sha(b"original")), BlobCorrupt)
        self.assertIn("mismatch", str(failure.value))
        self.assertIsNone(self.storage.stat_blob(sha(b"corrupted")))
        self.assertIsNone(self.storage.stat_blob(sha(b"original")))
        self.assertEqual(os.listdir(self.storage.tmp_dir), [])

    def test_short_body_is_refused(self):
        """When a length was announced, fewer bytes is a failure, not a commit."""
        temp = self.storage.new_temp(100)
        temp.write(b"x" * 40)
        self.failureResultOf(self._finish(temp), SourceFailed)
        self.assertEqual(os.listdir(self.storage.tmp_dir), [])

    def test_extra_hash_verifies(self):
        """Maven files are verified by the upstream's sha1 when it is the expected digest."""
        data = b"jar bytes"
        temp = self.storage.new_temp(extra_hashes=("sha1",))
        temp.write(data)
        self.successResultOf(self._finish(temp, "sha1:" + hashlib.sha1(data).hexdigest()))
        self.assertEqual(temp.hashes["sha1"], hashlib.sha1(data).hexdigest())
        self.assertEqual(temp.hashes["sha256"], hashlib.sha256(data).hexdigest())

    def test_crash_leaves_only_temp_files_which_start_up_removes(self):
        """A writer that never finished leaves nothing under a digest; clean_temp removes its file."""
        temp = self.storage.new_temp(10)
        temp.write(b"12345")
        self.assertEqual(len(os.listdir(self.storage.tmp_dir)), 1)
        # "crash": a new process opens the same data directory
        again = Storage(self.root, InlineIO())
        self.assertEqual(again.clean_temp(), 1)
        self.assertEqual(os.listdir(again.tmp_dir), [])
        self.assertEqual(os.listdir(os.path.join(self.root, "blobs")), [])

    def test_store_and_read_bytes(self):
        """Small bodies go through the same verified path and read back off-reactor."""
        from twisted.internet.defer import Deferred

        digest = self.successResultOf(Deferred.fromCoroutine(self.storage.store_bytes(b"{}", sha(b"{}"))))
        self.assertEqual(self.successResultOf(Deferred.fromCoroutine(self.storage.read_bytes(digest))), b"{}")

    def test_blob_path_rejects_traversal(self):
        """A digest can never name a path outside the store."""
        for bad in ("sha256:../../etc", "sha256/x:ab", "nodigest"):
            self.assertRaises(ValueError, self.storage.blob_path, bad)


class NodeTempTests(SynchronousTestCase):
    def test_a_starting_node_never_removes_another_nodes_temp_files(self):
        """Nodes on one data directory write under tmp/<node>; clean_temp empties only its own."""
        root = self.mktemp()
        a, b = Storage(root, InlineIO(), node="a"), Storage(root, InlineIO(), node="b")
        in_flight_on_b = b.new_temp(3)
        in_flight_on_b.write(b"abc")
        a.new_temp(1)  # a's own leftover from "before its restart"
        self.assertEqual(Storage(root, InlineIO(), node="a").clean_temp(), 1)
        self.assertEqual(os.listdir(b.tmp_dir), [os.path.basename(in_flight_on_b.path)])
        self.assertEqual(os.path.dirname(b.tmp_dir), os.path.join(os.path.abspath(root), "tmp"))


class GrowingReaderTests(SynchronousTestCase):
    def setUp(self):
        self.storage = Storage(self.mktemp(), InlineIO())
        self.data = os.urandom(300_000)
        self.temp = self.storage.new_temp(len(self.data))

    def _finish(self):
        from twisted.internet.defer import Deferred

        return Deferred.fromCoroutine(self.temp.finish(sha(self.data)))

    def test_reader_follows_writer_and_holds_back_last_byte(self):
        """A reader streams what is on disk, but never the final byte before verification."""
        consumer = StringTransport()
        producer = RangeProducer(self.temp, consumer)
        done = producer.start()
        self.assertEqual(consumer.value(), b"")
        self.temp.write(self.data[:1000])
        self.assertEqual(consumer.value(), self.data[:1000])
        self.temp.write(self.data[1000:])
        # everything is on disk but unverified: the last byte waits
        self.assertEqual(consumer.value(), self.data[:-1])
        self.assertNoResult(done)
        self.successResultOf(self._finish())
        self.assertEqual(consumer.value(), self.data)
        self.successResultOf(done)
        self.assertIsNone(consumer.producer)

    def test_slow_consumer_pauses_only_itself(self):
        """A paused reader sends nothing; another reader and the writer carry on."""
        slow = PausingConsumer(every=50_000)
        fast = StringTransport()
        slow_done = RangeProducer(self.temp, slow).start()
        fast_done = RangeProducer(self.temp, fast).start()
        for i in range(0, len(self.data), 10_000):
            self.temp.write(self.data[i : i + 10_000])
        self.successResultOf(self._finish())
        self.successResultOf(fast_done)
        self.assertEqual(fast.value(), self.data)
        # the slow one stopped at its first pause, after 50 kB
        self.assertEqual(len(slow.value()), 50_000)
        self.assertNoResult(slow_done)
        while not slow_done.called:
            slow.producer.resumeProducing()
        self.assertEqual(slow.value(), self.data)
        self.assertEqual(slow.pauses, 2)  # once while growing, once on the 1 MiB catch-up read

    def test_late_joiner_after_commit(self):
        """A reader that starts after the rename reads the committed file."""
        self.temp.write(self.data)
        self.successResultOf(self._finish())
        consumer = StringTransport()
        self.successResultOf(RangeProducer(self.temp, consumer).start())
        self.assertEqual(consumer.value(), self.data)

    def test_range_of_growing_file(self):
        """A range inside the file is served as soon as its bytes are on disk."""
        consumer = StringTransport()
        done = RangeProducer(self.temp, consumer, 10, 19).start()
        self.temp.write(self.data[:15])
        self.assertEqual(consumer.value(), self.data[10:15])
        self.temp.write(self.data[15:100])
        self.assertEqual(consumer.value(), self.data[10:20])
        self.successResultOf(done)

    def test_writer_failure_fails_readers(self):
        """When the download fails, readers get SourceFailed (the front then aborts the connection)."""
        consumer = StringTransport()
        done = RangeProducer(self.temp, consumer).start()
        self.temp.write(self.data[:5000])
        self.temp.abort(RuntimeError("upstream went away"))
        self.failureResultOf(done, SourceFailed)
        self.assertEqual(consumer.value(), self.data[:5000])
        self.assertEqual(os.listdir(self.storage.tmp_dir), [])

    def test_corrupt_download_never_completes_a_body(self):
        """A digest mismatch at the end fails readers that had everything but the last byte."""
        consumer = StringTransport()
        done = RangeProducer(self.temp, consumer).start()
        self.temp.write(self.data)
        from twisted.internet.defer import Deferred

        self.failureResultOf(Deferred.fromCoroutine(self.temp.finish(sha(b"something else"))), BlobCorrupt)
        self.failureResultOf(done, SourceFailed)
        self.assertEqual(len(consumer.value()), len(self.data) - 1)

    def test_stop_producing_closes_and_detaches(self):
        """A client that goes away stops its producer and is no longer a live reader."""
        consumer = StringTransport()
        producer = RangeProducer(self.temp, consumer)
        done = producer.start()
        self.assertIn(producer, self.storage.live_readers)
        producer.stopProducing()
        self.successResultOf(done)
        self.assertNotIn(producer, self.storage.live_readers)
        self.temp.write(self.data)  # no reader left to wake
        self.assertEqual(consumer.value(), b"")

    def test_digests_being_read(self):
        """Eviction can see which committed digests are being streamed."""
        self.temp.write(self.data)
        self.successResultOf(self._finish())
        source = self.storage.open_stored(sha(self.data))
        consumer = PausingConsumer(every=1000)
        RangeProducer(source, consumer).start()
        self.assertEqual(self.storage.digests_being_read(), {sha(self.data)})
