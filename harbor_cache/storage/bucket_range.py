"""A Range request on a tier miss, answered from the bucket's ranged GET: the bytes go straight to the client.

Filling the tier first would make a client that wants the last megabyte of a
large blob wait for the whole object; so `Bucket.open_range` asks the store
for just those bytes (``Range: bytes=first-last``) and `BucketRange.producer`
relays its unbuffered answer to the client: the client's pauses pause the
store's connection (and the no-progress timer), nothing is held in memory
beyond what the transports buffer.  A part of an object cannot be checked
against its digest: the bytes are the store's, as distribution serves them;
only their count is checked (a short answer cuts the client's connection).
The fill of the tier may run beside it (`Bucket.open_range` starts it in the
background, one per digest), so the next request is a local hit.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IConsumer, IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from zope.interface import implementer

from harbor_cache.storage.errors import SourceFailed
from harbor_cache.storage.reader import GrowingSource, end_production


class BucketRange(GrowingSource):
    """Bytes ``[first, last]`` of an object, as the store's unread 206 answer (for `serve_source`)."""

    def __init__(self, key: str, size: int, first: int, last: int, response: Any, clock: IReactorTime, timeout: float):
        super().__init__(key, size)
        self.first = first
        self.last = last
        self.response = response
        self.clock = clock
        self.timeout = timeout

    def covers(self, start: int, end: int) -> bool:
        return (start, end) == (self.first, self.last)

    def producer(self, consumer: IConsumer) -> RangeBody:
        return RangeBody(self, consumer)

    def discard(self) -> None:
        """Not served after all: drop the answer (its connection is closed, not reused)."""
        self.response.deliverBody(_Drop())


class _Drop(Protocol):
    def connectionMade(self) -> None:
        self.transport.stopProducing()  # type: ignore[union-attr]


@implementer(IPushProducer)
class RangeBody(Protocol):
    """Relays a `BucketRange`'s body to ``consumer``; like `RangeProducer`: `start`, `done`, `sent`,
    `consumer_gone` (`done` errbacks with `SourceFailed` when the store's answer breaks off or is short)."""

    def __init__(self, source: BucketRange, consumer: IConsumer) -> None:
        self.source = source
        self.consumer = consumer
        self.expected = source.last - source.first + 1
        self.sent = 0
        self.consumer_gone = False
        self.paused = False
        self.done: defer.Deferred[None] = defer.Deferred()
        self.timer: IDelayedCall | None = None

    def start(self) -> defer.Deferred[None]:
        self.consumer.registerProducer(self, True)
        self._arm()
        self.source.response.deliverBody(self)
        return self.done

    def _arm(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.reset(self.source.timeout)
        else:
            self.timer = self.source.clock.callLater(self.source.timeout, self._stalled)

    def _disarm(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    def _stalled(self) -> None:
        self.timer = None
        self._end(SourceFailed(f"no bytes from the bucket for {self.source.timeout:g}s"))
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        if not self.paused:
            self._arm()
        data = data[: self.expected - self.sent]
        self.sent += len(data)
        self.consumer.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._disarm()
        if self.consumer_gone or (reason.check(ResponseDone) and self.sent == self.expected):
            self._end(None)
        elif reason.check(ResponseDone):
            self._end(SourceFailed(f"short answer from the bucket: {self.sent} of {self.expected} bytes"))
        else:
            self._end(SourceFailed(f"the bucket's answer broke off: {reason.value}"))

    def _end(self, error: Exception | None) -> None:
        if not self.done.called:
            end_production(self.consumer, self.done, error)

    # IPushProducer: the client's backpressure reaches the store's connection
    def pauseProducing(self) -> None:
        self.paused = True
        self._disarm()
        if self.transport is not None:
            self.transport.pauseProducing()  # type: ignore[attr-defined]

    def resumeProducing(self) -> None:
        self.paused = False
        if not self.done.called:
            self._arm()
        if self.transport is not None:
            self.transport.resumeProducing()  # type: ignore[attr-defined]

    def stopProducing(self) -> None:
        self.consumer_gone = True
        self._disarm()
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]
        else:
            self._end(None)
