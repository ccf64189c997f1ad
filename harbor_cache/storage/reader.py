"""Readers of stored content: a file that may still be growing, and the producer
that streams a byte range of it to an HTTP response, following the writer and
holding back the last byte until the content is verified.

Where the consumer's socket allows it (plain TCP, a body of known length), the
bytes go from the file straight to the socket (a `DirectSend` the caller
provides: ``os.sendfile``, or ``pread`` into one reused buffer and ``send``),
not through new ``bytes`` and the transport's buffer.
"""

from __future__ import annotations

import errno
import os
import weakref
from collections.abc import Callable
from typing import Protocol

from twisted.internet import defer
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from harbor_cache.storage.errors import SourceFailed

log = Logger()

# How much a reader moves per read: large enough that per-chunk Python
# overhead stays small, small enough that one read never stalls the reactor.
READ_CHUNK = 1 << 20


class DirectSend(Protocol):
    """The consumer's socket, for moving file bytes straight to it instead of through ``write``.

    `ready`: nothing written the ordinary way is still queued ahead (the
    headers, a first chunk), so bytes sent now are in order. `send` moves up
    to ``count`` (at most ``chunk``) bytes of ``fd`` at ``offset``; it
    returns how many went (fewer than ``count``: the socket is full; -1: the
    file ended) and raises OSError when the connection is broken.  `wait`
    asks for the producer's ``resumeProducing`` once the socket can take more
    (or the queue ahead has gone).
    """

    chunk: int

    def ready(self) -> bool: ...

    def send(self, fd: int, offset: int, count: int) -> int: ...

    def wait(self) -> None: ...

    def broken(self) -> None: ...


def end_production(consumer: IConsumer, done: defer.Deferred, error: Exception | None) -> None:
    """A producer's last step: leave ``consumer`` (which may have gone already), then fire ``done``."""
    try:
        consumer.unregisterProducer()
    except Exception:
        pass
    if error is None:
        done.callback(None)
    else:
        done.errback(error)


class GrowingSource:
    """What readers need to know about a file that may still be growing.

    ``available`` bytes are on disk at ``path``; ``total`` is the final size when
    known.  ``complete`` means every byte is there and the digest checked:
    readers may send the last byte.  ``verified`` means the file is also
    durable and renamed into the store (``path`` is its final one).
    ``failure`` means it never will be.
    """

    def __init__(self, path: str, total: int | None):
        self.path = path
        self.total = total
        self.available = 0
        self.complete = False
        self.verified = False
        self.failure: Exception | None = None
        self._waiters: list[Callable[[], None]] = []
        # The storage's set of live RangeProducers, so eviction can see what is being read.
        self.readers: set | None = None

    def wait(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (once) the next time something changes."""
        self._waiters.append(callback)

    def unwait(self, callback: Callable[[], None]) -> None:
        try:
            self._waiters.remove(callback)
        except ValueError:
            pass

    def _changed(self) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            try:
                w()
            except Exception:
                log.failure("reader wake-up failed")


class StoredSource(GrowingSource):
    """A committed file: complete and verified from the start.

    ``fd``, when given, is the file already opened (`Storage.open_stored`):
    the first reader takes it (`take_fd`), so the bytes stay readable even
    if the name is unlinked meanwhile; if no reader ever does, it is closed
    when the source is garbage-collected.
    """

    def __init__(self, path: str, size: int, fd: int = -1):
        super().__init__(path, size)
        self.available = size
        self.complete = True
        self.verified = True
        self._fd_closer = weakref.finalize(self, os.close, fd) if fd >= 0 else None
        self._fd = fd

    def take_fd(self) -> int:
        """The descriptor opened for this source (once; the taker closes it), or -1."""
        fd, self._fd = self._fd, -1
        if fd >= 0 and self._fd_closer is not None:
            self._fd_closer.detach()
        return fd


@implementer(IPushProducer)
class RangeProducer:
    """Moves bytes ``[start, end]`` of a source to a consumer, following the writer.

    Only moves bytes: status and headers are the caller's job.  Honours the
    consumer's pause/resume, wakes when the writer appends (no polling),
    closes its file in `stopProducing`.  ``end`` None means "to the end of the
    source, whatever length it turns out to have".

    `done` fires with None when every byte went out, or errbacks with
    `SourceFailed` when the source failed mid-way; in that case the caller
    must make the client see an incomplete body (abort the connection).
    """

    def __init__(
        self,
        source: GrowingSource,
        consumer: IConsumer,
        start: int = 0,
        end: int | None = None,
        direct: Callable[[], DirectSend | None] | None = None,
    ) -> None:
        """``direct``, when given, is asked once after the first chunk went out the ordinary way
        (with the headers) for the consumer's `DirectSend`; None keeps ``pread`` and ``write``."""
        self.source = source
        self._direct_factory = direct
        self._direct: DirectSend | None = None
        self.consumer = consumer
        self.offset = start
        self.end = end
        self.sent = 0
        self.paused = False
        self.stopped = False
        self.consumer_gone = False
        self._fd = -1
        self._pumping = False
        self.done: defer.Deferred = defer.Deferred(lambda d: self.stopProducing())

    def start(self) -> defer.Deferred:
        if self.stopped:
            return self.done
        try:
            taken = self.source.take_fd() if isinstance(self.source, StoredSource) else -1
            self._fd = taken if taken >= 0 else os.open(self.source.path, os.O_RDONLY)
        except OSError as e:
            src = self.source
            if e.errno == errno.ENOENT and not src.verified and src.failure is None:
                # Joined just as the file is being renamed into the store: its
                # new path is known once the rename is done (or it failed).
                src.wait(self._start_again)
                return self.done
            self._finish(SourceFailed(f"cannot open {src.path}: {e.strerror}"))
            return self.done
        if self.source.readers is not None:
            self.source.readers.add(self)
        self.consumer.registerProducer(self, True)
        self._pump()
        return self.done

    def _limit(self) -> int:
        """How far (exclusive) we may read now."""
        src = self.source
        limit = src.available
        if not src.complete:
            # Hold back the last byte until the digest is checked.
            if src.total is not None:
                limit = min(limit, src.total - 1)
        if self.end is not None:
            limit = min(limit, self.end + 1)
        return limit

    def _pump(self) -> None:
        if self._pumping:
            return
        self._pumping = True
        try:
            while not self.paused and not self.stopped:
                src = self.source
                if src.failure is not None:
                    self._finish(SourceFailed(str(src.failure)))
                    return
                target_end = self.end + 1 if self.end is not None else (src.total if src.complete else None)
                if target_end is not None and self.offset >= target_end:
                    self._finish(None)
                    return
                limit = self._limit()
                if self.offset >= limit:
                    if src.complete and self.end is None and src.total is not None and self.offset >= src.total:
                        self._finish(None)
                        return
                    src.wait(self._wake)
                    return
                if self._direct is not None:
                    if not self._send_direct(self._direct, limit):
                        return
                    continue
                n = min(READ_CHUNK, limit - self.offset)
                try:
                    data = os.pread(self._fd, n, self.offset)
                except OSError as e:
                    if e.errno == errno.EINTR:
                        continue
                    self._finish(SourceFailed(f"read failed: {e.strerror}"))
                    return
                if not data:
                    self._finish(SourceFailed("file shorter than announced"))
                    return
                self.offset += len(data)
                self.sent += len(data)
                self.consumer.write(data)
                if self._direct_factory is not None:
                    factory, self._direct_factory = self._direct_factory, None
                    self._direct = factory()
        finally:
            self._pumping = False

    def _send_direct(self, direct: DirectSend, limit: int) -> bool:
        """One send of the bytes up to ``limit``; False when the pump must stop for now."""
        if not direct.ready():
            self.paused = True
            direct.wait()
            return False
        count = min(direct.chunk, limit - self.offset)
        try:
            n = direct.send(self._fd, self.offset, count)
        except InterruptedError:
            return True
        except OSError:
            # The client's connection broke: the transport reports it (stopProducing).
            self.paused = True
            direct.broken()
            return False
        if n < 0:
            self._finish(SourceFailed("file shorter than announced"))
            return False
        self.offset += n
        self.sent += n
        if n < count:
            # The socket is full: go on when it can take more.
            self.paused = True
            direct.wait()
            return False
        return True

    def _start_again(self) -> None:
        if not self.stopped:
            self.start()

    def _wake(self) -> None:
        if not self.stopped and not self.paused:
            self._pump()

    def _close(self) -> None:
        self.source.unwait(self._wake)
        self.source.unwait(self._start_again)
        if self.source.readers is not None:
            self.source.readers.discard(self)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _finish(self, error: Exception | None) -> None:
        if self.stopped:
            return
        self.stopped = True
        self._close()
        end_production(self.consumer, self.done, error)

    # IPushProducer
    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self._pump()

    def stopProducing(self) -> None:
        """The consumer went away (or we were cancelled): stop, close the file.

        ``consumer_gone`` tells the caller that the response cannot be
        finished: the transport calls this just before the request learns
        that its connection is lost.
        """
        if self.stopped:
            return
        self.stopped = True
        self.consumer_gone = True
        self._close()
        if not self.done.called:
            self.done.callback(None)
