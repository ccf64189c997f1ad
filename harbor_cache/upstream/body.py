"""Stream an upstream response body into a growing temp file, with backpressure.

treq with ``unbuffered=True`` hands the body to a Protocol; ours appends each
chunk to a `TempBlob` (which writes and hashes on an I/O thread) and pauses
the upstream transport while too much is queued, resuming when the writer has
caught up.  An idle watchdog aborts a body that stops moving.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss


READ_SIZE = 1 << 20


class UpstreamStalled(Exception):
    """No byte arrived for longer than the idle timeout."""


class UpstreamBodyFailed(Exception):
    """The body ended early or the connection broke."""


class _TempSink(Protocol):
    def __init__(self, temp, done: defer.Deferred, clock, idle_timeout: float, on_bytes: Callable[[int], None]):
        self.temp = temp
        self.done = done
        self.clock = clock
        self.idle_timeout = idle_timeout
        self.on_bytes = on_bytes
        self.paused = False
        self.stalled = False
        self._watchdog = None
        temp.on_drain = self._drained

    def connectionMade(self):
        # Read the body in large gulps: 64 KiB reads cost more Python per byte
        # than the copy itself.  (TransportProxyProducer wraps the TCP transport.)
        real = getattr(self.transport, "_producer", None)
        if real is not None and hasattr(real, "bufferSize"):
            real.bufferSize = READ_SIZE
        self._arm()

    def _arm(self):
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.reset(self.idle_timeout)
        else:
            self._watchdog = self.clock.callLater(self.idle_timeout, self._stall)

    def _stall(self):
        if self.paused:
            # We are the slow side (disk); not the upstream's fault.
            self._watchdog = self.clock.callLater(self.idle_timeout, self._stall)
            return
        self.stalled = True
        self.transport.stopProducing()

    def dataReceived(self, data: bytes):
        self._arm()
        self.on_bytes(len(data))
        if self.temp.write(data) and not self.paused:
            self.paused = True
            self.transport.pauseProducing()

    def _drained(self):
        if self.paused:
            self.paused = False
            self.transport.resumeProducing()

    def connectionLost(self, reason):
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self.temp.on_drain = None
        if self.done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(None)
        elif self.stalled:
            self.done.errback(UpstreamStalled(f"no data for {self.idle_timeout:g}s"))
        else:
            self.done.errback(UpstreamBodyFailed(reason.getErrorMessage()))


def stream_to_temp(response, temp, clock, idle_timeout: float, on_bytes: Callable[[int], None]) -> defer.Deferred:
    """Deliver ``response``'s body into ``temp``; fires None at the end, fails on a broken body."""
    done: defer.Deferred = defer.Deferred()
    response.deliverBody(_TempSink(temp, done, clock, idle_timeout, on_bytes))
    return done


class _Discard(Protocol):
    def __init__(self, done):
        self.done = done

    def connectionLost(self, reason):
        self.done.callback(None)


def discard_body(response) -> defer.Deferred:
    """Read and drop a body we do not need, so its connection can be reused."""
    done: defer.Deferred = defer.Deferred()
    try:
        response.deliverBody(_Discard(done))
    except Exception:
        done.callback(None)
    return done
