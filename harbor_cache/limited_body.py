"""Reading a small HTTP response body into memory, never more than a limit (upstream/ and storage/s3/ alike).

Manifests, checksums, token and S3 XML answers are kept in memory; whatever
Content-Length says or does not say, at most ``limit`` bytes (plus one
network read) are ever held, and an oversized body is cut off (the
connection dropped) rather than read to the end.  Beside the layers: the
I/O packages may not import each other, so the one copy lives here.  It
imports nothing of harbor_cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss


class BodyTooLarge(Exception):
    """The body went past the limit while streaming; the connection was dropped."""


class _Limited(Protocol):
    transport: Any  # the TCP transport (an IPushProducer), set by makeConnection

    def __init__(self, done: defer.Deferred[bytes], limit: int, what: str, lost: Callable[[Failure], Any]) -> None:
        self.done = done
        self.limit = limit
        self.what = what
        self.lost = lost
        self.chunks: list[bytes] = []
        self.total = 0

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        self.total += len(data)
        if self.total > self.limit:
            self.chunks = []
            self.done.errback(BodyTooLarge(f"{self.what} over the {self.limit}-byte limit"))
            self.transport.stopProducing()
            return
        self.chunks.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.chunks))
        else:
            self.done.errback(self.lost(reason))


def read_body_limited(
    response: Any, limit: int, *, what: str = "body", lost: Callable[[Failure], Any] = lambda reason: reason
) -> defer.Deferred[bytes]:
    """The whole body of ``response``, or `BodyTooLarge` as soon as more than ``limit`` bytes arrive.

    ``what`` names the body in that error; ``lost`` turns a connection lost
    mid-body into the caller's error (the failure itself by default).
    """
    done: defer.Deferred[bytes] = defer.Deferred()
    response.deliverBody(_Limited(done, limit, what, lost))
    return done
