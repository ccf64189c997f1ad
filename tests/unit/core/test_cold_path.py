"""The cold download path's cheap parts (issue 17): reused receive buffers, write-behind, the idle watchdog, sendfile."""

from __future__ import annotations

import hashlib
import os
import socket

from twisted.internet import defer, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web import resource, server
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone, readBody
from twisted.web.http_headers import Headers

from harbor_cache.http import serving
from harbor_cache.http.serving import serve_source
from harbor_cache.storage import RangeProducer, SourceFailed, Storage, StoredSource, disk, writer
from harbor_cache.storage.errors import BlobCorrupt
from harbor_cache.testing import InlineIO
from harbor_cache.upstream.body import UpstreamStalled, stream_to_temp
from harbor_cache.upstream.recv import MIN_ROOM, BufferPool, DirectReader
from tests.unit.core.test_faults import FakeResponse, ManualIO

MIB = 1 << 20


class ReleaseTicketTests(SynchronousTestCase):
    """A reused buffer is handed back only when the file and every hash are done with it."""

    def setUp(self):
        self.io = ManualIO()
        self.storage = Storage(self.mktemp(), self.io)

    def test_release_waits_for_the_batch_to_be_written_and_hashed(self):
        temp = self.storage.new_temp(8)
        released = []
        temp.write(memoryview(b"abcd"), lambda: released.append(1))
        temp.write(memoryview(b"efgh"), lambda: released.append(2))
        self.assertEqual(len(self.io.jobs), 1)  # one lane: write, then hash, the first chunk
        self.io.step()
        self.assertEqual(released, [1])
        self.io.run_all()
        self.assertEqual(released, [1, 2])
        d = defer.Deferred.fromCoroutine(temp.finish())
        self.io.run_all()
        self.assertEqual(self.successResultOf(d), "sha256:" + hashlib.sha256(b"abcdefgh").hexdigest())

    def test_release_waits_for_every_lane_when_they_run_side_by_side(self):
        self.patch(writer, "PARALLEL_LANES", True)
        temp = self.storage.new_temp(8)
        released = []
        temp.write(memoryview(b"abcd"), lambda: released.append(1))
        temp.write(memoryview(b"efgh"), lambda: released.append(2))
        self.assertEqual(len(self.io.jobs), 2)  # the write lane and the sha256 lane, first chunk each
        self.io.step()  # the file has "abcd"
        self.assertEqual(released, [])
        self.io.step()  # sha256 has "abcd" too
        self.assertEqual(released, [1])
        self.io.run_all()
        self.assertEqual(released, [1, 2])
        d = defer.Deferred.fromCoroutine(temp.finish())
        self.io.run_all()
        self.assertEqual(self.successResultOf(d), "sha256:" + hashlib.sha256(b"abcdefgh").hexdigest())

    def test_a_failed_blob_never_hands_a_buffer_back(self):
        """After a failure a lane may still be reading the buffer on the pool: it must not be reused."""
        temp = self.storage.new_temp(8)
        released = []
        temp.write(memoryview(b"abcd"), lambda: released.append(1))
        temp.abort(Exception("disk gone"))
        self.io.run_all()
        self.assertEqual(released, [])
        self.assertFalse(temp.write(memoryview(b"efgh"), lambda: released.append(2)))


class WriteBehindTests(SynchronousTestCase):
    def test_writeback_is_started_every_few_mib(self):
        """So the fsync before the rename only waits for the tail of the file."""
        calls = []
        self.patch(disk, "start_writeback", lambda fd, offset, length: calls.append((offset, length)))
        storage = Storage(self.mktemp(), ManualIO())
        temp = storage.new_temp()
        chunk = b"x" * MIB
        for _ in range(10):
            temp.write(chunk)
            storage.io.run_all()
        step = disk.WRITEBACK_STEP
        self.assertEqual(calls, [(0, step), (step, step)])

    def test_start_writeback_on_a_real_file(self):
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"x" * 4096)
            disk.start_writeback(f.fileno(), 0, 4096)  # a hint: no error, no effect on the content
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"x" * 4096)


class BufferPoolTests(SynchronousTestCase):
    def test_a_buffer_is_reused_once_every_view_is_back(self):
        pool = BufferPool(size=MIN_ROOM * 2)
        room = pool.room()
        room[:4] = b"abcd"
        view1, release1 = pool.take(4)
        self.assertEqual(bytes(view1), b"abcd")
        # Less than MIN_ROOM left after the next take: the read after it starts a fresh buffer.
        pool.room()
        view2, release2 = pool.take(MIN_ROOM + 1)
        fresh = pool.room()
        self.assertEqual(pool.allocated, 2)
        pool.take(len(fresh))
        release1()
        pool.room()  # the first buffer still has a view out: a third one
        self.assertEqual(pool.allocated, 3)
        release2()
        pool.room()  # the third buffer is current; the first is free again and is next
        pool.take(MIN_ROOM * 2 - 1)
        pool.room()
        self.assertEqual(pool.allocated, 3)


class _Body(resource.Resource):
    isLeaf = True

    def __init__(self, body: bytes):
        super().__init__()
        self.body = body

    def render_GET(self, request):
        if request.args.get(b"chunked"):
            request.write(self.body)  # no Content-Length: chunked
            request.finish()
            return server.NOT_DONE_YET
        return self.body


class _Sink(Protocol):
    def __init__(self):
        self.done: defer.Deferred = defer.Deferred()
        self.normal = bytearray()
        self.direct = bytearray()
        self.reader = None
        self.reason = None

    def connectionMade(self):
        self.reader = DirectReader.attach(self.transport, self, self._direct)

    def _direct(self, view, release):
        self.direct += view
        release()

    def dataReceived(self, data):
        self.normal += data

    def connectionLost(self, reason):
        if self.reader is not None:
            self.reader.detach()
        self.reason = reason
        self.done.callback(None)


class DirectReaderTests(TestCase):
    """Over real loopback TCP: the body arrives whole and in order, and the connection goes back to the pool."""

    def setUp(self):
        self.body = bytes(range(256)) * (12 * 1024)  # 3 MiB
        self.port = reactor.listenTCP(0, server.Site(_Body(self.body)), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.pool = HTTPConnectionPool(reactor)
        self.addCleanup(self.pool.closeCachedConnections)
        self.agent = Agent(reactor, pool=self.pool)
        self.url = b"http://127.0.0.1:%d/blob" % self.port.getHost().port

    async def _get(self, url):
        response = await self.agent.request(b"GET", url)
        sink = _Sink()
        response.deliverBody(sink)
        await sink.done
        return sink

    def test_body_of_known_length_is_read_into_reused_buffers(self):
        async def go():
            sink = await self._get(self.url)
            self.assertTrue(sink.reason.check(ResponseDone))
            self.assertGreater(len(sink.direct), len(self.body) // 2)
            self.assertGreaterEqual(len(sink.normal), 1)  # at least the last byte went through Twisted's parser
            # Normal reads come before the reader takes over and after it lets go: the body is their join.
            head = bytes(sink.normal[:-1]) if len(sink.normal) > 1 else b""
            self.assertEqual(len(sink.normal) + len(sink.direct), len(self.body))
            self.assertEqual(head + bytes(sink.direct) + bytes(sink.normal[-1:]), self.body)
            self.assertEqual(sink.reader.attached, False)
            # The connection went back to the pool and serves the next request.
            self.assertEqual(sum(len(c) for c in self.pool._connections.values()), 1)
            again = await self._get(self.url)
            self.assertEqual(len(again.normal) + len(again.direct), len(self.body))

        return defer.Deferred.fromCoroutine(go())

    def test_detach_leaves_an_aborted_connections_read_alone(self):
        """abortConnection swaps in its own doRead; detaching must not bring Twisted's reading back."""

        class Conn:
            def doRead(self):
                return "class"

        conn = Conn()
        reader = DirectReader(conn, None, None, None, lambda view, release: None, BufferPool())
        conn.doRead = reader.doRead
        reader.attached = True
        conn.doRead = lambda: "aborted"
        reader.detach()
        self.assertEqual(conn.doRead(), "aborted")
        conn.doRead = reader.doRead
        reader.attached = True
        reader.detach()
        self.assertEqual(conn.doRead(), "class")

    def test_chunked_body_stays_with_twisted(self):
        async def go():
            sink = await self._get(self.url + b"?chunked=1")
            self.assertIsNone(sink.reader)
            self.assertEqual(bytes(sink.normal), self.body)

        return defer.Deferred.fromCoroutine(go())


class IdleWatchdogTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.storage = Storage(self.mktemp(), ManualIO())

    def _stream(self):
        response = FakeResponse(length=100)
        temp = self.storage.new_temp(100)
        d = stream_to_temp(response, temp, self.clock, 30, lambda n: None)
        return response, temp, d

    def test_stalls_after_the_idle_timeout_counted_from_the_last_read(self):
        response, temp, d = self._stream()
        self.clock.advance(20)
        response.send(b"x")
        self.clock.advance(29)
        self.assertFalse(response.transport.stopped)
        self.clock.advance(1)
        self.assertTrue(response.transport.stopped)
        response.end(Exception("aborted"))
        self.failureResultOf(d, UpstreamStalled)

    def test_one_timer_not_one_per_read(self):
        response, temp, d = self._stream()
        for _ in range(10):
            response.send(b"x")
            self.clock.advance(1)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        response.end(ResponseDone())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_paused_body_is_not_stalled(self):
        """The disk being slow is not the upstream's fault."""
        response, temp, d = self._stream()
        response.send(b"x" * 10)
        sink = response.protocol
        sink.paused = True
        self.clock.advance(95)
        self.assertFalse(response.transport.stopped)
        sink.paused = False
        self.clock.advance(30)
        self.assertTrue(response.transport.stopped)
        response.end(Failure(Exception("aborted")).value)
        self.failureResultOf(d, UpstreamStalled)


class FakeSocket:
    """A `DirectSend` that copies file bytes into ``sent``; ``room`` bytes fit before it is full."""

    chunk = serving.SENDFILE_CHUNK

    def __init__(self, consumer, room: int | None = None, ready: bool = True):
        self.consumer = consumer
        self.sent = bytearray()
        self.room = room
        self.is_ready = ready
        self.waits = 0
        self.fail = False
        self.broke = False

    def ready(self):
        return self.is_ready

    def send(self, fd, offset, count):
        if self.fail:
            raise ConnectionResetError()
        if self.room is not None:
            count = min(count, self.room)
            self.room -= count
        data = os.pread(fd, count, offset)
        if not data and count:
            return -1
        self.sent += data
        return len(data)

    def wait(self):
        self.waits += 1

    def broken(self):
        self.broke = True


class DirectSendTests(SynchronousTestCase):
    """RangeProducer with a DirectSend: first chunk written (with the headers), the rest sent from the file."""

    def setUp(self):
        self.storage = Storage(self.mktemp(), InlineIO())
        self.data = os.urandom(3 * MIB + 5)
        self.temp = self.storage.new_temp(len(self.data))

    def _finish(self):
        return defer.Deferred.fromCoroutine(self.temp.finish("sha256:" + hashlib.sha256(self.data).hexdigest()))

    def test_rest_of_a_growing_file_goes_by_sendfile_and_the_last_byte_still_waits(self):
        consumer = StringTransport()
        sockets = []
        producer = RangeProducer(
            self.temp, consumer, direct=lambda: sockets.append(FakeSocket(consumer)) or sockets[-1]
        )
        done = producer.start()
        self.temp.write(self.data[:MIB])
        self.assertEqual(consumer.value(), self.data[:MIB])
        self.temp.write(self.data[MIB:])
        (sock,) = sockets
        self.assertEqual(bytes(consumer.value()) + bytes(sock.sent), self.data[:-1])  # held back
        self.assertNoResult(done)
        self.successResultOf(self._finish())
        self.successResultOf(done)
        self.assertEqual(consumer.value() + bytes(sock.sent), self.data)
        self.assertEqual(producer.sent, len(self.data))

    def test_a_full_socket_waits_for_writability(self):
        self.temp.write(self.data)
        self.successResultOf(self._finish())
        consumer = StringTransport()
        sock = FakeSocket(consumer, room=100_000)
        producer = RangeProducer(self.temp, consumer, direct=lambda: sock)
        done = producer.start()
        self.assertEqual((len(sock.sent), sock.waits, producer.paused), (100_000, 1, True))
        self.assertNoResult(done)
        sock.room = None
        producer.resumeProducing()  # what the transport does once it can write
        self.successResultOf(done)
        self.assertEqual(consumer.value() + bytes(sock.sent), self.data)

    def test_nothing_is_sent_past_data_still_queued_in_the_transport(self):
        self.temp.write(self.data)
        self.successResultOf(self._finish())
        consumer = StringTransport()
        sock = FakeSocket(consumer, ready=False)
        producer = RangeProducer(self.temp, consumer, direct=lambda: sock)
        done = producer.start()
        self.assertEqual((len(sock.sent), sock.waits), (0, 1))
        sock.is_ready = True
        producer.resumeProducing()
        self.successResultOf(done)
        self.assertEqual(consumer.value() + bytes(sock.sent), self.data)

    def test_a_broken_connection_is_left_to_the_transport(self):
        self.temp.write(self.data)
        self.successResultOf(self._finish())
        consumer = StringTransport()
        sock = FakeSocket(consumer)
        sock.fail = True
        producer = RangeProducer(self.temp, consumer, direct=lambda: sock)
        done = producer.start()
        self.assertTrue(sock.broke)
        self.assertNoResult(done)
        producer.stopProducing()  # the transport's connectionLost
        self.successResultOf(done)
        self.assertTrue(producer.consumer_gone)


class _Served(resource.Resource):
    isLeaf = True

    def __init__(self, path: str, size: int):
        super().__init__()
        self.path = path
        self.size = size
        self.requests: list = []
        self.served = 0

    def inc(self, n):
        self.served += n

    def render_GET(self, request):
        self.requests.append(request)
        d = defer.Deferred.fromCoroutine(
            serve_source(request, StoredSource(self.path, self.size), self.size, b"application/octet-stream", self)
        )
        d.addCallback(lambda _: request.finish())
        return server.NOT_DONE_YET


class SocketSendTests(TestCase):
    """Over real loopback TCP: a stored file served straight from the file, whole, counted, ranges too.

    Loopback clients get `LoopbackSend`: sendfile until their pace is judged, pread and send
    once judged slow.  With it switched off, the same connection shows `SocketSend` (sendfile),
    which clients on other hosts get.
    """

    def setUp(self):
        self.data = os.urandom(5 * MIB + 3)
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(self.data)
        self.resource = _Served(path, len(self.data))
        self.port = reactor.listenTCP(0, server.Site(self.resource), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.pool = HTTPConnectionPool(reactor)
        self.addCleanup(self.pool.closeCachedConnections)
        self.agent = Agent(reactor, pool=self.pool)
        self.url = b"http://127.0.0.1:%d/f" % self.port.getHost().port

    def test_whole_file_and_a_range_by_sendfile(self):
        """Another host's client (the switch off): sendfile, whole and ranged, counted."""
        self.patch(serving, "COPY_TO_LOOPBACK", False)
        return self._whole_file_and_a_range(os, "sendfile")

    def test_whole_file_and_a_range_by_pread_and_send_to_this_host(self):
        """A client on this host judged slow: pread and send, sendfile never called."""
        self.patch(serving.LoopbackSend, "start_copying", True)
        return self._whole_file_and_a_range(os, "preadv", unused=(os, "sendfile"))

    def test_a_client_on_this_host_starts_on_sendfile(self):
        """A client on this host whose pace is not judged yet gets sendfile."""
        self.patch(serving, "WATCH_WAITED", 3600.0)  # (its pace is judged in LoopbackSendTests)
        return self._whole_file_and_a_range(os, "sendfile", unused=(os, "preadv"))

    def _whole_file_and_a_range(self, module, name, unused=None):
        calls = []
        real = getattr(module, name)
        self.patch(module, name, lambda *a: calls.append(a) or real(*a))
        if unused is not None:
            self.patch(*unused, lambda *a: self.fail("%s called" % unused[1]))

        async def go():
            response = await self.agent.request(b"GET", self.url)
            body = await readBody(response)
            self.assertEqual(body, self.data)
            self.assertTrue(calls)
            self.assertEqual(self.resource.requests[-1].sentLength, len(self.data))  # the access log's bytes
            self.assertEqual(self.resource.served, len(self.data))
            response = await self.agent.request(b"GET", self.url, Headers({b"Range": [b"bytes=1048000-4000000"]}))
            self.assertEqual(response.code, 206)
            self.assertEqual(await readBody(response), self.data[1048000:4000001])

        return defer.Deferred.fromCoroutine(go())


class LoopbackTests(SynchronousTestCase):
    """Which peers count as this host for `SocketCopy`."""

    def test_loopback_addresses(self):
        for host, expected in (
            ("127.0.0.1", True),
            ("127.3.4.5", True),
            ("::1", True),
            ("::ffff:127.0.0.1", True),
            ("10.0.0.7", False),
            ("192.168.1.2", False),
            ("2001:db8::1", False),
            ("::ffff:10.0.0.7", False),
            ("not an address", False),
        ):
            transport = StringTransport(peerAddress=IPv4Address("TCP", host, 1234))
            self.assertEqual(serving._is_loopback(transport), expected, host)


class CompleteBeforeDurableTests(SynchronousTestCase):
    """The last byte leaves once the digest matches; the fsync and the rename into the store come after."""

    def setUp(self):
        self.io = ManualIO()
        self.storage = Storage(self.mktemp(), self.io)
        self.data = os.urandom(3 * MIB + 5)
        self.temp = self.storage.new_temp(len(self.data))
        self.consumer = StringTransport()
        self.done = RangeProducer(self.temp, self.consumer).start()
        self.temp.write(self.data)
        self.io.run_all()  # written and hashed
        self.assertEqual(self.consumer.value(), self.data[:-1])  # held back

    def finish(self, digest: str):
        return defer.Deferred.fromCoroutine(self.temp.finish(digest))

    def test_last_byte_leaves_before_the_fsync_and_the_rename(self):
        """Readers finish while the fsync is still queued; the file is in the store once the I/O ran."""
        synced = []
        self.patch(disk, "sync_file", lambda fd: synced.append(fd))
        finished = self.finish("sha256:" + hashlib.sha256(self.data).hexdigest())
        self.assertEqual((synced, self.temp.complete, self.temp.verified), ([], True, False))
        self.assertEqual(self.consumer.value(), self.data)
        self.successResultOf(self.done)
        self.io.run_all()  # fsync, close, rename
        self.assertEqual(len(synced), 1)
        digest = self.successResultOf(finished)
        self.assertTrue(self.temp.verified)
        with open(self.storage.blob_path(digest), "rb") as f:
            self.assertEqual(f.read(), self.data)

    def test_a_wrong_digest_never_lets_the_last_byte_go(self):
        """A mismatch aborts before anything is complete: the reader fails, one byte short."""
        finished = self.finish("sha256:" + "0" * 64)
        self.failureResultOf(finished, BlobCorrupt)
        self.assertFalse(self.temp.complete)
        self.failureResultOf(self.done, SourceFailed)
        self.assertEqual(self.consumer.value(), self.data[:-1])

    def test_a_failed_fsync_cuts_off_a_reader_still_sending(self):
        """Complete, then the fsync fails: a ranged reader not yet at its end is aborted, nothing is stored."""
        late = StringTransport()
        late_producer = RangeProducer(self.temp, late, start=0, end=len(self.data) - 1)
        late_producer.pauseProducing()
        late_done = late_producer.start()

        def broken(fd):
            raise OSError(5, "Input/output error")

        self.patch(disk, "sync_file", broken)
        finished = self.finish("sha256:" + hashlib.sha256(self.data).hexdigest())
        self.successResultOf(self.done)  # the first reader got every byte, verified
        while self.io.jobs:
            fn, args, d = self.io.jobs.pop(0)
            try:
                d.callback(fn(*args))
            except OSError as e:
                d.errback(e)
        self.failureResultOf(finished)
        late_producer.resumeProducing()  # its socket can take more: it sees the failure
        self.failureResultOf(late_done, SourceFailed)
        self.assertLess(len(late.value()), len(self.data))
        stored = self.storage.blob_path("sha256:" + hashlib.sha256(self.data).hexdigest())
        self.assertFalse(os.path.exists(stored))
        self.assertEqual(os.listdir(self.storage.tmp_dir), [])


class _Paced:
    """The transport side of a `LoopbackSend` over a real socket pair whose far end the test drains."""

    def __init__(self, test):
        self.socket, self.far = socket.socketpair()
        test.addCleanup(self.socket.close)
        test.addCleanup(self.far.close)
        for sock in (self.socket, self.far):
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 << 10)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        self.producerPaused = False
        self.writing = 0
        self.received = 0

    def startWriting(self):
        self.writing += 1

    def drain(self):
        while True:
            try:
                got = self.far.recv(1 << 20)
            except BlockingIOError:
                return
            self.received += len(got)


class LoopbackSendTests(SynchronousTestCase):
    """sendfile while the client keeps up; `send` from a buffer once its pace shows it is the slow end."""

    def setUp(self):
        path = self.mktemp()
        self.data = os.urandom(8 * MIB)
        with open(path, "wb") as f:
            f.write(self.data)
        self.fd = os.open(path, os.O_RDONLY)
        self.addCleanup(os.close, self.fd)
        self.now = [100.0]
        self.patch(serving.LoopbackSend, "clock", staticmethod(lambda: self.now[0]))
        self.transport = _Paced(self)
        self.request = type("Request", (), {"sentLength": 0})()
        self.sender = serving.LoopbackSend(self.request, self.transport)
        self.offset = 0

    def pump(self, seconds_per_wait: float, rounds: int) -> None:
        """Send until the socket is full, wait (the clock moves on), let the client drain; ``rounds`` times."""
        for _ in range(rounds):
            while self.offset < len(self.data):
                count = min(self.sender.chunk, len(self.data) - self.offset)
                n = self.sender.send(self.fd, self.offset, count)
                self.offset += max(n, 0)
                if n < count:
                    break
            self.sender.wait()
            self.now[0] += seconds_per_wait
            self.transport.drain()

    def test_a_slow_client_gets_send_after_the_watch(self):
        """Waiting 20 ms in all while the socket took a few hundred KiB: under 400 MB/s, so `send` from then on."""
        self.pump(seconds_per_wait=0.005, rounds=3)
        self.assertFalse(self.sender.copying)  # not yet 20 ms of waiting: still watching
        self.assertEqual(self.sender.chunk, serving.SENDFILE_CHUNK)
        rounds = 0
        while not self.sender.copying and rounds < 10:
            self.pump(seconds_per_wait=0.005, rounds=1)
            rounds += 1
        self.assertLessEqual(rounds, 3)
        preads = []
        real = os.preadv
        self.patch(os, "preadv", lambda *a: preads.append(a) or real(*a))
        self.pump(seconds_per_wait=0.005, rounds=1)
        self.assertEqual(self.sender.chunk, serving.COPY_CHUNK)
        self.assertTrue(preads)
        while self.offset < len(self.data):
            self.pump(seconds_per_wait=0.005, rounds=1)
        self.transport.drain()
        self.assertEqual((self.transport.received, self.request.sentLength), (len(self.data), len(self.data)))

    def test_a_client_that_keeps_up_stays_on_sendfile(self):
        """Waits of 10 us while the socket takes its buffer each time: far over 400 MB/s, sendfile to the end."""
        self.patch(serving, "WATCH_BYTES", 2 * MIB)
        self.patch(os, "preadv", lambda *a: self.fail("preadv called"))
        while self.offset < len(self.data):
            self.pump(seconds_per_wait=0.00001, rounds=1)
        self.assertFalse(self.sender.copying)
        self.assertFalse(self.sender._watching)  # decided after WATCH_BYTES
        self.transport.drain()
        self.assertEqual(self.transport.received, len(self.data))
