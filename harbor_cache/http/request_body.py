"""Request bodies that the route decides about before a byte of them is read.

Twisted's `Request` reads the whole body before any handler runs (into memory,
or into a temp file above 100 kB).  `http.request.HarborRequest` replaces that:

* **Streamed routes** (blob upload PATCH/PUT/POST, manifest PUT, and whatever
  a front registers with `BodyRules.stream`) are handed to their handler as
  soon as the headers are in.  The socket stays paused until the handler asks
  for the body, so authorization, session and Content-Length checks all run
  before anything is read; an anonymous 1 GiB PUT gets its 401 having sent
  at most one socket read.  The handler then pulls the body with
  `StreamedBody.stream_to(sink)` (straight into an upload's file, with
  backpressure: the socket is paused while the sink's queue is full) or
  `read_all(limit)` (small documents such as manifests).
* **Every other route** gets its body buffered in memory up to
  ``limits.max_body_bytes`` (1 MiB by default): a larger Content-Length is
  refused with 413 before the body is read, a chunked body is counted and cut
  at the limit.

Handlers use one API whichever way the body came: `body_of(request)` returns
the `StreamedBody`, or wraps an already buffered ``request.content`` (tests
driving a plain Twisted `Request`) in a `BufferedBody` with the same methods.

The seam for the cores is the *sink*: anything with ``write(data) -> bool``
(True asks the producer to pause) and an ``on_drain`` attribute called once
it may write again.  `storage.TempBlob` is one; the upload session's file
lives behind it, so "append these bytes to session X" never needs to know
whether they come from a socket or a buffer.
"""

from __future__ import annotations

import io
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from twisted.internet import defer

from harbor_cache.errors import ErrorCode, HarborError, TooLarge
from harbor_cache.settings.client_limits import MAX_BODY_BYTES, MAX_UPLOAD_BYTES
from harbor_cache.storage.writer import drained


class BodyTooLarge(TooLarge):
    """A request body above its route's limit."""


class BodyTooSlow(HarborError):
    """A request body that did not arrive in time."""

    code = ErrorCode.REQUEST_TIMEOUT


class ClientGone(Exception):
    """The client disconnected before its body was complete."""


class BodySink(Protocol):
    on_drain: Callable[[], None] | None

    def write(self, data: bytes) -> bool: ...


@dataclass(frozen=True)
class _StreamRule:
    methods: frozenset[bytes]
    path: re.Pattern


class BodyRules:
    """Which (method, path) pairs get a streamed body; the rest are buffered up to a limit."""

    def __init__(self, max_body_bytes: int = MAX_BODY_BYTES, max_upload_bytes: int = MAX_UPLOAD_BYTES):
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self._streamed: list[_StreamRule] = []

    def stream(self, methods: tuple[str, ...], path_regex: str) -> None:
        """Hand requests matching ``methods`` and ``path_regex`` (on the raw path, no query) over unread."""
        self._streamed.append(_StreamRule(frozenset(m.encode() for m in methods), re.compile(path_regex.encode())))

    def streamed(self, method: bytes, path: bytes) -> bool:
        path = path.split(b"?", 1)[0]
        return any(method in r.methods and r.path.match(path) for r in self._streamed)


def default_rules(max_body_bytes: int = MAX_BODY_BYTES, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> BodyRules:
    """The write routes: OCI uploads (POST/PATCH/PUT), manifest PUT, and Maven deploys (PUT /artifacts/...)."""
    rules = BodyRules(max_body_bytes, max_upload_bytes)
    rules.stream(("POST", "PATCH", "PUT"), r"^/v2/.+/blobs/uploads/")
    rules.stream(("PUT",), r"^/v2/.+/manifests/[^/]+$")
    rules.stream(("PUT",), r"^/artifacts/")
    return rules


class _BytesSink:
    """Collects a small body in memory (`read_all`), refusing more than ``limit`` bytes."""

    on_drain: Callable[[], None] | None = None

    def __init__(self, limit: int):
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> bool:
        self.size += len(data)
        if self.size > self.limit:
            raise BodyTooLarge("request body too large", {"limit": self.limit})
        self.parts.append(data)
        return False


class StreamedBody:
    """A body read from the socket only while a handler pulls it.

    ``length`` is the Content-Length (None for a chunked body); ``received``
    counts what arrived.  Until `stream_to` or `read_all` is called the
    socket is paused; the bytes of the read that carried the headers are
    kept (at most one socket read).  ``pause``/``resume`` are the channel's.
    """

    def __init__(
        self,
        length: int | None,
        limit: int,
        pause: Callable[[], None],
        resume: Callable[[], None],
        send_continue: Callable[[], None] | None = None,
    ):
        self.length = length
        self.limit = limit
        self.received = 0
        self.complete = length == 0
        self.failure: Exception | None = None
        self.wanted = False  # a handler is pulling (the slow-body check only runs then)
        self._pause = pause
        self._resume = resume
        self._send_continue = send_continue
        self._early: deque[bytes] = deque()
        self._sink: BodySink | None = None
        self._sink_full = False  # the sink said "full"; we wait for its on_drain
        self._done: defer.Deferred | None = None
        self._paused = False
        if not self.complete:
            self._set_paused(True)

    # -- the channel's side -------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes of the body from the socket."""
        if self.failure is not None or self.complete:
            return
        self.received += len(data)
        if self.received > self.limit:
            self.fail(BodyTooLarge("request body too large", {"limit": self.limit}))
            return
        if self._sink is None:
            self._early.append(data)
            self._set_paused(True)
            return
        self._deliver(data)

    def end(self) -> None:
        """The last byte of the body arrived."""
        if self.failure is not None or self.complete:
            return
        self.complete = True
        if self._sink is not None and not self._early:
            self._settle()

    def fail(self, reason: Exception) -> None:
        """The body will never complete (client gone, too slow, too large)."""
        if self.failure is not None or self.complete:
            return
        self.failure = reason
        self._early.clear()
        self._settle()

    # -- the handler's side -------------------------------------------------------

    def stream_to(self, sink: BodySink) -> defer.Deferred:
        """Write the whole body into ``sink``; fires with the byte count, or fails (413, 408, client gone).

        Only one pull per body.  Cancelling the Deferred detaches the sink.
        """
        if self._sink is not None:
            raise RuntimeError("the body is already being read")
        self._sink = sink
        self._sink_full = False
        self.wanted = True
        self._done = defer.Deferred(lambda _: self._detach())
        done = self._done
        if self.failure is None and self._send_continue is not None and self.received == 0 and not self.complete:
            self._send_continue()
        while self._early and self.failure is None:
            if not self._deliver(self._early.popleft()):
                break
        if self.failure is not None or (self.complete and not self._early):
            self._settle()
        elif not self._sink_full:
            self._set_paused(False)
        return done

    async def read_all(self, limit: int) -> bytes:
        """The whole body in memory; `BodyTooLarge` (413) above ``limit``, decided from Content-Length first."""
        if self.length is not None and self.length > limit:
            raise BodyTooLarge("request body too large", {"size": self.length, "limit": limit})
        sink = _BytesSink(limit)
        await self.stream_to(sink)
        return b"".join(sink.parts)

    # -- internals -----------------------------------------------------------------

    def _deliver(self, data: bytes) -> bool:
        """Hand ``data`` to the sink; False when it asked us to pause (or failed)."""
        sink = self._sink
        assert sink is not None, "bytes are delivered only to an attached sink"
        try:
            full = sink.write(data)
        except Exception as e:  # the sink refused (e.g. over its own limit)
            self.fail(e)
            return False
        broken = getattr(sink, "failure", None)
        if broken is not None:  # the sink gave up (e.g. its file could not be written)
            self.fail(broken)
            return False
        if full:
            self._sink_full = True
            sink.on_drain = self._drained
            self._set_paused(True)
            return False
        return True

    def _drained(self) -> None:
        sink = self._sink
        if sink is None:
            return
        sink.on_drain = None
        self._sink_full = False
        while self._early and self.failure is None:
            if not self._deliver(self._early.popleft()):
                return
        if self.complete and not self._early:
            self._settle()
        elif self.failure is None:
            self._set_paused(False)

    def _settle(self) -> None:
        done, self._done = self._done, None
        if done is None or done.called:
            return
        if self.failure is not None:
            done.errback(self.failure)
        else:
            done.callback(self.received)

    def _detach(self) -> None:
        """The handler gave up (cancelled): stop feeding its sink; the connection will close."""
        if self._sink is not None:
            self._sink.on_drain = None
        self._sink = None
        self._sink_full = False
        self._done = None
        self.fail(ClientGone("handler stopped reading"))

    def _set_paused(self, paused: bool) -> None:
        if paused == self._paused:
            return
        self._paused = paused
        if paused:
            self._pause()
        else:
            self._resume()

    @property
    def paused(self) -> bool:
        return self._paused


class BufferedBody:
    """A body already in ``content`` (a file-like object), behind the `StreamedBody` methods."""

    CHUNK = 1 << 20

    def __init__(self, content: BinaryIO | None):
        self.content: BinaryIO = content if content is not None else io.BytesIO()
        if content is None:
            self.length = 0
        else:
            content.seek(0, 2)
            self.length = content.tell()
            content.seek(0)

    async def stream_to(self, sink: BodySink) -> int:
        if not self.length:
            return 0
        self.content.seek(0)
        copied = 0
        while True:
            chunk = self.content.read(self.CHUNK)
            if not chunk:
                return copied
            copied += len(chunk)
            if sink.write(chunk):
                await drained(sink)

    async def read_all(self, limit: int) -> bytes:
        if self.length > limit:
            raise BodyTooLarge("request body too large", {"size": self.length, "limit": limit})
        if not self.length:
            return b""
        self.content.seek(0)
        return self.content.read()


def body_of(request) -> StreamedBody | BufferedBody:
    """The request's body behind one API, however it was received."""
    body = getattr(request, "body", None)
    if body is not None:
        return body
    return BufferedBody(getattr(request, "content", None))
