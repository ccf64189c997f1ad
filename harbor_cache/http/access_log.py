"""The access log file (``[log] access_file``): one JSON object per request, buffered.

Without it every access line is a twisted.logger event, and the observer
``twist``/``twistd`` installs (a JSON file observer when output is not a
terminal) flattens and serializes each event: about 165 us of CPU per
request, more than the rest of a warm hit together.  With it the line is
eight fields formatted as ``json.dumps`` would (about 3 us), appended to a
list in memory, and the list goes to the file in one write when it holds
more than `FLUSH_BYTES`, within `FLUSH_SECONDS` of the first line otherwise,
and when the service stops, as nginx's ``access_log ... buffer= flush=`` does.  A write of one
buffered chunk to a local file runs on the reactor thread, as Twisted's own
file log observer does for every event.

It is the default destination (``DATA/logs/access.log``, ``settings.processes.DEFAULT_ACCESS_FILE``):
the main log's event costs about 135 us of a 290 us warm hit.  The file
rotates itself by size: when a write takes it past ``max_bytes``
(``[log] access_max_bytes``) it is renamed ``.1`` (``.1`` to ``.2``, ...,
keeping ``keep`` old files, ``[log] access_keep``) and a new one is opened.
Rotation happens between two writes, after the buffer went wholly to the
old file, so no line is lost or split, and it is ``keep`` + 1 renames and
one open on the reactor thread (tens of microseconds on a local file
system), once per ``max_bytes`` written.  ``max_bytes = 0`` turns it off
(then ``logrotate`` with ``copytruncate`` works, as the file is opened in
append mode; there is no reopen on a signal).
"""

from __future__ import annotations

import os
import time
from json.encoder import encode_basestring_ascii as _string

from twisted.application import service
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from harbor_cache.settings.processes import DEFAULT_ACCESS_KEEP

log = Logger()

#: a buffer larger than this is written at once
FLUSH_BYTES = 64 * 1024
#: a line waits at most this long in the buffer
FLUSH_SECONDS = 1.0

# The line is the compact ``json.dumps`` of the eight fields, in this order, built by hand: each string through
# the C string encoder json.dumps itself uses, numbers with %d and repr (what json.dumps writes for an int and a
# float).  A third of json.dumps's cost (3 us against 8).
_LINE = '{"time":"%s","method":%s,"path":%s,"status":%s,"bytes":%d,"duration_ms":%r,"cache_status":%s,"upstream":%s}\n'


class AccessLogFile:
    """Buffered JSON lines appended to one file; the clock times lines and schedules flushes.

    ``line(...)`` takes the values of the access event (`HarborSite.log`);
    ``time`` is the clock's ``seconds()`` (the reactor's: wall time) as
    ISO-8601 UTC with milliseconds, ``duration_ms`` is rounded to the
    microsecond.  After `close`, a line is written through at once (the
    stragglers of connections cut at shutdown), never lost in a buffer.
    """

    def __init__(
        self,
        path: str,
        clock: IReactorTime,
        flush_bytes: int = FLUSH_BYTES,
        flush_seconds: float = FLUSH_SECONDS,
        max_bytes: int = 0,
        keep: int = DEFAULT_ACCESS_KEEP,
    ):
        self.path = path
        self.clock = clock
        self.flush_bytes = flush_bytes
        self.flush_seconds = flush_seconds
        self.max_bytes = max_bytes
        self.keep = keep
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115  (closed by close())
        self._written = os.fstat(self._file.fileno()).st_size
        self._lines: list[str] = []
        self._size = 0
        self._timer: IDelayedCall | None = None
        self._second = -1
        self._second_text = ""
        self.closed = False

    def _timestamp(self, now: float) -> str:
        """ISO-8601 UTC with milliseconds; the part up to the second is formatted once per second."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return "%s.%03dZ" % (self._second_text, int((now - second) * 1000))

    def line(
        self, method: str, path: str, status: str, sent: int, duration_ms: float, cache_status: str, upstream: str
    ) -> None:
        """One request's line (the fields and values of the access event)."""
        text = _LINE % (
            self._timestamp(self.clock.seconds()),
            _string(method),
            _string(path),
            _string(status),
            sent,
            round(duration_ms, 3),
            _string(cache_status),
            _string(upstream),
        )
        self._lines.append(text)
        self._size += len(text)
        if self.closed:
            self._write_through()
        elif self._size > self.flush_bytes:
            self.flush()
        elif self._timer is None:
            self._timer = self.clock.callLater(self.flush_seconds, self._timed_flush)

    def _timed_flush(self) -> None:
        self._timer = None
        self.flush()

    def flush(self) -> None:
        """Write what is buffered (an error is logged and those lines dropped: requests never fail for it)."""
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        chunk = self._take()
        try:
            self._file.write(chunk)
            self._file.flush()
        except (OSError, ValueError) as e:
            log.warn("could not write the access log {path}: {error}", path=self.path, error=e)
            return
        self._written += len(chunk)  # the lines are ASCII: characters are bytes
        if self.max_bytes and self._written > self.max_bytes:
            self.rotate()

    def rotate(self) -> None:
        """``path.(keep-1)`` to ``path.keep``, ..., ``path`` to ``path.1``, then a new ``path``.

        Called between writes (nothing buffered is in flight).  A failure is
        logged and the current file kept: lines still go somewhere.
        """
        try:
            for i in range(self.keep - 1, 0, -1):
                older = "%s.%d" % (self.path, i)
                if os.path.exists(older):
                    os.replace(older, "%s.%d" % (self.path, i + 1))
            os.replace(self.path, self.path + ".1")
            fresh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115  (closed by close())
        except OSError as e:
            log.warn("could not rotate the access log {path}: {error}", path=self.path, error=e)
            return
        self._file.close()
        self._file = fresh
        self._written = 0

    def _take(self) -> str:
        """The buffered lines as one string; the buffer is empty afterwards."""
        chunk = "".join(self._lines)
        self._lines.clear()
        self._size = 0
        return chunk

    def _write_through(self) -> None:
        chunk = self._take()
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(chunk)
        except OSError as e:
            log.warn("could not write the access log {path}: {error}", path=self.path, error=e)

    def close(self) -> None:
        """Flush and close the file; later lines are written through (see the class)."""
        if self.closed:
            return
        self.flush()
        self.closed = True
        self._file.close()


class AccessLogService(service.Service):
    """Flushes and closes an `AccessLogFile` when the application stops (it is opened when built)."""

    def __init__(self, access_file: AccessLogFile):
        self.access_file = access_file

    def stopService(self):
        super().stopService()
        self.access_file.close()


def open_access_file(
    configured: str | None, data_dir: str, clock: IReactorTime, max_bytes: int, keep: int, worker: int | None = None
) -> AccessLogFile | None:
    """The ``[log]`` access file (opened now: a path that cannot be written stops the start), or None: main log."""
    if configured is None:
        return None
    return AccessLogFile(resolve_path(configured, data_dir, worker), clock, max_bytes=max_bytes, keep=keep)


def resolve_path(configured: str, data_dir: str, worker: int | None = None) -> str:
    """``[log] access_file`` as an absolute path: a relative one is relative to the data directory.

    Worker ``i`` of ``[server] workers`` writes its own file, ``-w<i>`` before
    the extension (``access-w0.log``): each rotates its own file, so no two
    processes rename a file under each other.
    """
    path = os.path.join(data_dir, configured) if not os.path.isabs(configured) else configured
    if worker is None:
        return path
    stem, ext = os.path.splitext(path)
    return "%s-w%d%s" % (stem, worker, ext)
