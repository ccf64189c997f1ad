"""Request bodies streamed from disk, and response bodies read within a limit.

A part of a multipart upload can be gigabytes: `FileRegionProducer` reads it
in ``chunk``-sized pieces on the storage thread pool (never a blocking read on
the reactor), writes each to the connection and stops reading while the
transport is paused, so one upload holds about one chunk in memory whatever
its size.  A retry makes a new producer: the file is simply read again.

Responses the client reads itself (XML listings, errors) are collected up to
a limit; anything larger is cut off rather than buffered.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IConsumer
from twisted.python.failure import Failure
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from harbor_cache.limited_body import read_body_limited
from harbor_cache.storage.io import StorageIO


class LocalReadError(Exception):
    """The file being uploaded could not be read (or was shorter than announced): not the store's fault."""


@implementer(IBodyProducer)
class BytesProducer:
    """A small body already in memory, written at once."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer: IConsumer) -> defer.Deferred[None]:
        consumer.write(self._data)
        return defer.succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


def _open(path: str) -> int:
    return os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))


@implementer(IBodyProducer)
class FileRegionProducer:
    """``length`` bytes of ``path`` from ``offset``, read ``chunk`` bytes at a time on the I/O pool.

    ``on_progress`` is called after each chunk is handed to the connection (the
    client's no-progress timer).  ``largest_read`` and ``reads`` say what it
    held: tests check that a big file never sits in memory whole.
    """

    def __init__(
        self,
        path: str,
        offset: int,
        length: int,
        io: StorageIO,
        chunk: int,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        self.path = path
        self.offset = offset
        self.length = length
        self._io = io
        self._chunk = chunk
        self.on_progress = on_progress
        self.reads = 0
        self.largest_read = 0
        self.failure: LocalReadError | None = None
        self._paused: defer.Deferred[None] | None = None
        self._stopped = False

    def startProducing(self, consumer: IConsumer) -> defer.Deferred[None]:
        done: defer.Deferred[None] = defer.Deferred()
        defer.Deferred.fromCoroutine(self._pump(consumer)).addCallbacks(
            lambda _: None if self._stopped else done.callback(None), lambda f: self._failed(f, done)
        )
        return done

    def _failed(self, failure: Failure, done: defer.Deferred[None]) -> None:
        if self._stopped:
            return  # the connection is gone: the Deferred must not fire (IBodyProducer.stopProducing)
        error = failure.value if isinstance(failure.value, LocalReadError) else None
        self.failure = error or LocalReadError(f"reading {self.path}: {failure.getErrorMessage()}")
        done.errback(self.failure)

    async def _pump(self, consumer: IConsumer) -> None:
        fd = await self._io.run(_open, self.path)
        try:
            position, remaining = self.offset, self.length
            while remaining and not self._stopped:
                if self._paused is not None:
                    await self._paused
                    continue
                data = await self._io.run(os.pread, fd, min(self._chunk, remaining), position)
                if self._stopped:
                    return
                if not data:
                    raise LocalReadError(f"{self.path} ended {remaining} bytes early")
                self.reads += 1
                self.largest_read = max(self.largest_read, len(data))
                position += len(data)
                remaining -= len(data)
                consumer.write(data)
                if self.on_progress is not None:
                    self.on_progress()
        finally:
            await self._io.run(os.close, fd)

    def pauseProducing(self) -> None:
        if self._paused is None:
            self._paused = defer.Deferred()

    def resumeProducing(self) -> None:
        paused, self._paused = self._paused, None
        if paused is not None:
            paused.callback(None)

    def stopProducing(self) -> None:
        self._stopped = True
        self.resumeProducing()


def read_limited(response: Any, limit: int) -> defer.Deferred[bytes]:
    """The whole body of ``response`` (at most ``limit`` bytes, else `BodyTooLarge`: `harbor_cache.limited_body`)."""
    return read_body_limited(response, limit, what="S3 answer")
