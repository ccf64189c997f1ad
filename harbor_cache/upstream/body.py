"""Stream an upstream response body into a growing temp file, with backpressure.

treq with ``unbuffered=True`` hands the body to a Protocol; ours appends each
chunk to a `TempBlob` (which writes and hashes on an I/O thread) and pauses
the upstream transport while too much is queued, resuming when the writer has
caught up.  An idle watchdog aborts a body that stops moving, and a local
failure (the disk is full, the write failed) stops the upstream transfer at
once instead of reading a body nobody will keep.

A body of known length over plain TCP is read by `recv.DirectReader` into
reused buffers (no new ``bytes`` per read); the watchdog is one timer that
checks the time of the last read instead of being reset on every read.

A body with no ``Content-Length`` that ends when the upstream closes the
connection (Twisted's `PotentialDataLoss`) may be cut short: `stream_to_temp`
reports it so the caller commits such a body only when a checksum verified it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss

from harbor_cache import limited_body
from harbor_cache.upstream.recv import DirectReader

READ_SIZE = 1 << 20


class UpstreamStalled(Exception):
    """No byte arrived for longer than the idle timeout."""


class UpstreamBodyFailed(Exception):
    """The body ended early or the connection broke."""


class _TempSink(Protocol):
    transport: Any  # the TCP transport (an IPushProducer), set by makeConnection

    def __init__(self, temp, done: defer.Deferred, clock, idle_timeout: float, on_bytes: Callable[[int], None]):
        self.temp = temp
        self.done = done
        self.clock = clock
        self.idle_timeout = idle_timeout
        self.on_bytes = on_bytes
        self.paused = False
        self.stalled = False
        self._watchdog = None
        self._last_read = 0.0
        self.direct: DirectReader | None = None
        temp.on_drain = self._drained
        temp.on_failure = self._temp_failed

    def connectionMade(self):
        # Read the body in large gulps: 64 KiB reads cost more Python per byte
        # than the copy itself.  (TransportProxyProducer wraps the TCP transport.)
        real = getattr(self.transport, "_producer", None)
        if real is not None and hasattr(real, "bufferSize"):
            real.bufferSize = READ_SIZE
        self.direct = DirectReader.attach(self.transport, self, self._received)
        self._last_read = self.clock.seconds()
        self._watchdog = self.clock.callLater(self.idle_timeout, self._check_idle)

    def _check_idle(self):
        """The watchdog's one timer: stall when nothing was read for ``idle_timeout``, else look again later."""
        now = self.clock.seconds()
        if self.paused:
            # We are the slow side (disk); not the upstream's fault.
            self._last_read = now
        idle = now - self._last_read
        if idle < self.idle_timeout:
            self._watchdog = self.clock.callLater(self.idle_timeout - idle, self._check_idle)
            return
        self._watchdog = None
        self.stalled = True
        self.transport.stopProducing()

    def dataReceived(self, data: bytes):
        self._received(data, None)

    def _received(self, data, release: Callable[[], None] | None) -> None:
        """One read of the body (bytes, or a view of a reused buffer with the ``release`` that frees it)."""
        self._last_read = self.clock.seconds()
        self.on_bytes(len(data))
        if self.temp.write(data, release) and not self.paused:
            self.paused = True
            self.transport.pauseProducing()

    def _drained(self):
        if self.paused:
            self.paused = False
            self.transport.resumeProducing()

    def _temp_failed(self, reason: Exception):
        """The local side failed: stop reading the upstream now and report it."""
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        if not self.done.called:
            self.done.errback(reason)
        if self.transport is not None:
            self.transport.stopProducing()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.direct is not None:
            self.direct.detach()
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self.temp.on_drain = None
        self.temp.on_failure = None
        if self.done.called:
            return
        if reason.check(ResponseDone):
            self.done.callback(True)
        elif reason.check(PotentialDataLoss):
            self.done.callback(False)
        elif self.stalled:
            self.done.errback(UpstreamStalled(f"no data for {self.idle_timeout:g}s"))
        else:
            self.done.errback(UpstreamBodyFailed(reason.getErrorMessage()))


def stream_to_temp(response, temp, clock, idle_timeout: float, on_bytes: Callable[[int], None]) -> defer.Deferred:
    """Deliver ``response``'s body into ``temp``; fails on a broken body or a failed ``temp``.

    Fires True when the body's end is certain (its length or chunking said
    so), False when it ended only by the connection closing.
    """
    done: defer.Deferred = defer.Deferred()
    response.deliverBody(_TempSink(temp, done, clock, idle_timeout, on_bytes))
    return done


def read_body_limited(response, limit: int) -> defer.Deferred:
    """The whole body of ``response`` as bytes, or BodyTooLarge as soon as more than ``limit`` bytes arrive
    (`harbor_cache.limited_body`); a connection lost mid-body is `UpstreamBodyFailed`."""
    return limited_body.read_body_limited(
        response, limit, lost=lambda reason: UpstreamBodyFailed(reason.getErrorMessage())
    )


class _Discard(Protocol):
    def __init__(self, done):
        self.done = done

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.done.callback(None)


def discard_body(response) -> defer.Deferred:
    """Read and drop a body we do not need, so its connection can be reused."""
    done: defer.Deferred = defer.Deferred()
    try:
        response.deliverBody(_Discard(done))
    except Exception:
        done.callback(None)
    return done


class _Abandon(Protocol):
    transport: Any  # the TCP transport (an IPushProducer), set by makeConnection

    def connectionMade(self) -> None:
        self.transport.stopProducing()


def abandon_body(response) -> None:
    """Drop a body we will not read (too big to store): close its connection instead of draining it."""
    try:
        response.deliverBody(_Abandon())
    except Exception:
        pass
