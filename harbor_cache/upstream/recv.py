"""Receive a large upstream body with ``recv_into`` reused buffers instead of a new ``bytes`` per read.

Twisted's TCP transport reads with ``socket.recv(bufferSize)``: every read
allocates a fresh buffer (1 MiB here), so each byte of a cold blob costs a
page fault and the kernel zeroing a page on top of the copy; that was the
largest single cost of a cold download (bench/RESULTS.md, "Where the CPU
goes"). While a body of known length is streamed to a `TempBlob`,
`DirectReader` takes over the connection's ``doRead``: it reads straight into
a few reused buffers and hands each read to the sink as a ``memoryview``; the
sink gives a buffer back once every lane of the temp file is done with it.

The HTTP client's parser is kept in step: the bytes read here are taken off
the identity decoder's remaining ``contentLength`` exactly as its own
``dataReceived`` would, and the last byte of the body is always left to the
normal path, so the end of the response (the connection going back to the
pool, `ResponseDone`) is Twisted's own code. Anything unusual (TLS, chunked
or close-delimited bodies, another Twisted's internals) leaves the normal
path in place: `DirectReader.attach` returns None.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from twisted.internet import main, tcp
from twisted.logger import Logger
from twisted.web._newclient import HTTP11ClientProtocol
from twisted.web.http import _IdentityTransferDecoder

log = Logger()

BUFFER_SIZE = 1 << 20
# Below this much room left in a buffer, the next read starts a fresh one.
MIN_ROOM = 64 << 10


class BufferPool:
    """Reusable receive buffers of one download.

    `room` is the free tail of the buffer being filled; `take(n)` marks ``n``
    bytes of it as filled and returns them as a view plus the callback that
    gives them back. A buffer is reused once every view of it was given back
    and it is not the one being filled; at most as many buffers exist as
    there are views outstanding (the temp file's backpressure bounds that).
    """

    def __init__(self, size: int = BUFFER_SIZE):
        self.size = size
        self._free: list[_Buffer] = []
        self._current: _Buffer | None = None
        self.allocated = 0

    def room(self) -> memoryview:
        cur = self._current
        if cur is None or self.size - cur.filled < MIN_ROOM:
            if cur is not None:
                cur.current = False
                cur.maybe_free()
            cur = self._free.pop() if self._free else self._new()
            cur.filled = 0
            cur.current = True
            self._current = cur
        return cur.view[cur.filled :]

    def take(self, n: int) -> tuple[memoryview, Callable[[], None]]:
        cur = self._current
        assert cur is not None and n <= self.size - cur.filled
        view = cur.view[cur.filled : cur.filled + n]
        cur.filled += n
        cur.users += 1
        return view, cur.release

    def _new(self) -> _Buffer:
        self.allocated += 1
        return _Buffer(self)


class _Buffer:
    def __init__(self, pool: BufferPool):
        self.pool = pool
        self.view = memoryview(bytearray(pool.size))
        self.filled = 0
        self.users = 0
        self.current = False

    def release(self) -> None:
        self.users -= 1
        self.maybe_free()

    def maybe_free(self) -> None:
        if self.users == 0 and not self.current:
            self.pool._free.append(self)


class DirectReader:
    """Reads a connection's body bytes into a `BufferPool` and gives them to ``deliver``.

    ``deliver(view, release)`` gets each read; ``release`` must be called once
    the view's bytes are no longer needed. Installed on the TCP connection as
    an instance ``doRead``; `detach` (idempotent) puts Twisted's back.
    """

    def __init__(
        self, conn: Any, decoder: Any, response: Any, sink: Any, deliver: Callable[..., None], pool: BufferPool
    ):
        self.conn = conn
        self.decoder = decoder
        self.response = response
        self.sink = sink
        self.deliver = deliver
        self.pool = pool
        self.attached = False

    @classmethod
    def attach(
        cls, transport: Any, sink: Any, deliver: Callable[..., None], pool: BufferPool | None = None
    ) -> DirectReader | None:
        """Take over the reads of ``sink``'s body when it is safe to, else None.

        ``transport`` is what `Response.deliverBody` gave the body protocol
        ``sink`` (a TransportProxyProducer around the TCP connection).
        """
        conn = getattr(transport, "_producer", None)
        if not isinstance(conn, tcp.Connection) or not hasattr(conn.socket, "recv_into"):
            return None
        proto: Any = conn.protocol
        proto = getattr(proto, "_wrappedProtocol", proto)  # endpoints wrap the client protocol
        if not isinstance(proto, HTTP11ClientProtocol):
            return None  # e.g. TLS: the socket carries records, not the body
        parser = getattr(proto, "_parser", None)
        decoder = getattr(parser, "bodyDecoder", None)
        if type(decoder) is not _IdentityTransferDecoder or not isinstance(decoder.contentLength, int):
            return None  # chunked or close-delimited: Twisted decodes it
        response = getattr(decoder.dataCallback, "__self__", None)
        if response is None or not hasattr(response, "_bodyProtocol"):
            return None  # (``sink`` becomes its body protocol just after connectionMade; each read checks)
        reader = cls(conn, decoder, response, sink, deliver, pool or BufferPool())
        conn.doRead = reader.doRead  # type: ignore[method-assign]  # an instance attribute wins
        reader.attached = True
        return reader

    def detach(self) -> None:
        """Give the connection back its own ``doRead`` (unless Twisted replaced ours meanwhile, as aborting does)."""
        if self.attached:
            self.attached = False
            if vars(self.conn).get("doRead") == self.doRead:
                del self.conn.doRead

    def _ours(self) -> bool:
        """Whether the next bytes on the socket are body bytes that may skip the parser."""
        dec = self.decoder
        left = dec.contentLength
        return (
            left is not None
            and left > 1
            and dec.dataCallback is not None
            and self.response._state == "CONNECTED"
            and self.response._bodyProtocol is self.sink
        )

    def doRead(self):
        """One read for the reactor, as ``tcp.Connection.doRead`` does it, minus the new buffer."""
        if not self._ours():
            # The last byte (or anything unexpected) goes through Twisted's parser.
            self.detach()
            return self.conn.doRead()
        dec = self.decoder
        room = self.pool.room()
        want = min(len(room), dec.contentLength - 1)
        try:
            n = self.conn.socket.recv_into(room, want)
        except OSError as se:
            if se.args[0] == errno.EWOULDBLOCK:
                return None
            return main.CONNECTION_LOST
        if not n:
            return main.CONNECTION_DONE
        dec.contentLength -= n
        view, release = self.pool.take(n)
        self.deliver(view, release)
        return None
