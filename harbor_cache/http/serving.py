"""Serving stored or growing files to HTTP clients: status, range headers, then bytes.

Shared by every front (OCI blobs, Maven files), split like twisted.web.static:
`ranges.parse_range` parses, `serve_source` sets status and headers (200, 206,
416), `storage.RangeProducer` only moves bytes; over plain TCP it moves them
straight from the file to the socket, by ``os.sendfile`` (`SocketSend`) or, to
a client on the same host that reads slower than we send, by ``pread`` into
one reused buffer and ``send`` (`LoopbackSend`, `SocketCopy`); the first
chunk, with the headers, still goes the ordinary way.
"""

from __future__ import annotations

import ipaddress
import os
import time

from twisted.internet import tcp
from twisted.logger import Logger

from harbor_cache.errors import ErrorCode
from harbor_cache.grammar.ranges import UnsatisfiableRange, content_range_header, parse_range, unsatisfied_range_header
from harbor_cache.http.responses import write_error
from harbor_cache.storage import READ_CHUNK, RangeProducer, SourceFailed
from harbor_cache.storage.bucket_range import BucketRange, RangeBody

log = Logger()


async def serve_source(request, source, size: int | None, content_type: bytes, served_counter) -> bytes | None:
    """Status and headers for a (possibly ranged) body, then stream it.

    Shared by every front that serves stored or growing files.  When the
    source fails mid-way the connection is aborted so the client can never
    mistake a partial body for a whole one.
    """
    start, end = 0, None
    range_header = request.getHeader(b"Range")
    request.setHeader(b"Content-Type", content_type)
    if size is not None:
        try:
            wanted = parse_range(range_header, size)
        except UnsatisfiableRange:
            return write_error(
                request,
                416,
                ErrorCode.RANGE_INVALID,
                "requested range not satisfiable",
                {"size": size},
                headers={"Content-Range": unsatisfied_range_header(size)},
            )
        if wanted is not None:
            start, end = wanted
            request.setResponseCode(206)
            request.setHeader(b"Content-Range", content_range_header(start, end, size).encode())
            request.setHeader(b"Content-Length", b"%d" % (end - start + 1))
        else:
            request.setHeader(b"Content-Length", b"%d" % size)
            if size == 0:
                return b""
            end = size - 1
    if request.method == b"HEAD":
        return b""
    transport = getattr(request, "transport", None)
    if transport is not None and hasattr(transport, "SEND_LIMIT"):
        # Let each send(2) take a whole read chunk instead of 128 KiB slices.
        transport.SEND_LIMIT = READ_CHUNK
    producer: RangeProducer | RangeBody
    if isinstance(source, BucketRange) and end is not None and source.covers(start, end):
        producer = source.producer(request)  # a tier miss's part, straight from the bucket's ranged answer
    else:
        producer = RangeProducer(source, request, start, end, direct=lambda: SocketSend.of(request))
    try:
        await producer.start()
    except SourceFailed as e:
        log.warn("aborting response for {path}: {error}", path=request.path.decode("latin-1"), error=e)
        request.cache_status = "aborted"
        request.transport.abortConnection()
        await _connection_gone(request)
        return None
    finally:
        served_counter.inc(producer.sent)
    if producer.consumer_gone:
        # The transport stopped us as its connection went (a client leaving,
        # or every connection closed at shutdown).  The request hears of it
        # just after; returning now would let Klein finish() a response whose
        # producer is still registered ("Producer was not unregistered").
        await _connection_gone(request)
    return None


async def _connection_gone(request) -> None:
    """Wait until the request knows its connection is lost (at once if it already does)."""
    if getattr(request, "_disconnected", False) or getattr(request, "finished", False):
        return
    try:
        await request.notifyFinish()
    except Exception:
        pass


# How much one sendfile call may move (the socket takes what fits; the rest waits for writability).
SENDFILE_CHUNK = 4 << 20
# How much `SocketCopy` reads per send: a socket that is taking bytes at all takes this
# much, so little is read twice when it takes less.
COPY_CHUNK = 256 << 10
# Whether clients on the same host get `LoopbackSend` instead of plain sendfile (tests switch it
# off to exercise sendfile over loopback).
COPY_TO_LOOPBACK = True
# `LoopbackSend`: a client on this host that takes bytes slower than this while we wait for its
# socket is the slow end of the transfer, and gets them by `send` (bytes per second).
SLOW_CLIENT_RATE = 400e6
# ... judged once this long has been spent waiting for its socket (seconds) ...
WATCH_WAITED = 0.02
# ... or, if it never made us wait that long, kept on sendfile after this many bytes.
WATCH_BYTES = 32 << 20


class SocketSend:
    """`storage.reader.DirectSend` for a twisted.web response on a plain TCP connection.

    The bytes bypass the transport's buffer, so they are sent only while that
    buffer is empty (`ready`), and waiting for the socket uses the
    transport's own writability callback: marking its producer paused makes
    it call ``resumeProducing`` (down to the RangeProducer) once it could
    write. ``request.sentLength`` counts the bytes as ``request.write`` would
    (the access log reports it).
    """

    chunk = SENDFILE_CHUNK

    def __init__(self, request, transport: tcp.Connection):
        self.request = request
        self.transport = transport
        self.socket_fd = transport.socket.fileno()

    @classmethod
    def of(cls, request) -> SocketSend | None:
        """The request's socket when its body may bypass the transport: headers out, a length, no TLS or encoding.

        A `LoopbackSend` when the client is on this host (see there), a `SocketSend` otherwise.
        """
        if not hasattr(os, "sendfile") or not request.startedWriting or request.chunked:
            return None
        if request.method == b"HEAD" or getattr(request, "_encoder", None) is not None:
            return None
        transport = getattr(getattr(request, "channel", None), "transport", None)
        if not isinstance(transport, tcp.Connection) or transport.disconnecting:
            return None  # TLS, or a test's transport: write as usual
        if not all(hasattr(transport, a) for a in ("dataBuffer", "offset", "_tempDataLen", "producerPaused")):
            return None
        if COPY_TO_LOOPBACK and _is_loopback(transport):
            return LoopbackSend(request, transport)
        return cls(request, transport)

    def ready(self) -> bool:
        t = self.transport
        return len(t.dataBuffer) == t.offset and not t._tempDataLen

    def send(self, fd: int, offset: int, count: int) -> int:
        try:
            n = os.sendfile(self.socket_fd, fd, offset, count)
        except BlockingIOError:
            return 0
        if n == 0:
            return -1
        self.request.sentLength += n
        return n

    def wait(self) -> None:
        self.transport.producerPaused = True
        self.transport.startWriting()

    def broken(self) -> None:
        self.transport.abortConnection()


class SocketCopy(SocketSend):
    """`SocketSend` by ``pread`` into one reused buffer and ``send``: what `LoopbackSend` turns to for a slow client.

    Over loopback the receiving process copies the bytes out of whatever
    buffers the sender queued.  sendfile queues the file's page-cache pages
    themselves, and a client that does work on the bytes as it reads them,
    as every registry client does (it hashes them to check the digest),
    spends more CPU per byte on them than on the buffers ``send`` fills: a
    reader that hashes 32 KiB reads used 0.32 s of CPU for a 200 MiB blob
    over sendfile against 0.24 s over ``send``, and skopeo 1.57 s against
    1.39 s, which made it the slower end of the pull (bench/RESULTS.md,
    "Issue 17.2").  Only a client that throws the bytes away (``curl -o
    /dev/null``) is faster over sendfile.  Over a network the receiver never
    sees the sender's buffers, and sendfile's saved copy is a pure gain.  The
    buffer is shared: every send runs to completion on the reactor thread.
    """

    chunk = COPY_CHUNK
    _buffer = memoryview(bytearray(COPY_CHUNK))

    def send(self, fd: int, offset: int, count: int) -> int:
        view = self._buffer[: min(count, COPY_CHUNK)]
        n = os.preadv(fd, [view], offset)
        if n == 0:
            return -1
        try:
            sent = self.transport.socket.send(view[:n])
        except BlockingIOError:
            return 0
        self.request.sentLength += sent
        return sent


class LoopbackSend(SocketCopy):
    """For a client on this host: sendfile while it keeps up, `SocketCopy`'s ``send`` once it is the slow end.

    Which one costs less depends on the client. One that does work on the
    bytes as it reads them (every registry client hashes them) is the slow
    end of a loopback transfer and spends less CPU on what ``send`` queues
    (see `SocketCopy`); one that keeps up (``curl -o /dev/null``, or any
    client while it waits for a download in progress) leaves our side as
    the slow end, and sendfile's saved copy is worth more.  So the bytes go
    by sendfile while the client's pace is watched: the bytes its socket
    took (after it first filled) over the time we spent waiting for it.  Once `WATCH_WAITED` of
    waiting shows a pace under `SLOW_CLIENT_RATE`, the rest goes by
    ``send``; a client that has not made us wait that long after
    `WATCH_BYTES` keeps sendfile.  Either way the choice is made once.
    """

    clock = staticmethod(time.monotonic)
    # True: `send` from the first byte, no watching (tests use it to take that path over real loopback).
    start_copying = False

    def __init__(self, request, transport: tcp.Connection):
        super().__init__(request, transport)
        self.copying = self.start_copying
        self._watching = not self.start_copying
        self._wait_began: float | None = None
        self._waited = 0.0  # seconds spent waiting for the client's socket
        self._taken = 0  # bytes its socket took after the first wait (the first fill of its buffer is no pace)
        self._moved = 0

    @property
    def chunk(self) -> int:  # type: ignore[override]  # (a class attribute on the others)
        return COPY_CHUNK if self.copying else SENDFILE_CHUNK

    def send(self, fd: int, offset: int, count: int) -> int:
        if self.copying:
            return super().send(fd, offset, count)
        n = SocketSend.send(self, fd, offset, count)
        if self._watching:
            if self._wait_began is not None:
                self._waited += self.clock() - self._wait_began
                self._wait_began = None
            if n > 0:
                self._moved += n
                if self._waited:
                    self._taken += n
            if self._waited and self._waited >= WATCH_WAITED:
                self._watching = False
                self.copying = self._taken / self._waited < SLOW_CLIENT_RATE
            elif self._moved >= WATCH_BYTES:
                self._watching = False
        return n

    def wait(self) -> None:
        if self._watching:
            self._wait_began = self.clock()
        super().wait()


def _is_loopback(transport: tcp.Connection) -> bool:
    """Whether the connection's peer is this host (127.0.0.0/8, ::1, or IPv4-mapped loopback)."""
    try:
        address = ipaddress.ip_address(transport.getPeer().host)
    except (AttributeError, ValueError):
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
