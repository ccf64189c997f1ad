"""The request: its body never spooled, CORS and preflights, timing and cache status for the access line.

`HarborRequest` is twisted.web's `server.Request` (as `http.request` is
`twisted.web.http.Request`'s counterpart here); the connection that feeds it
is `http.channel.HarborChannel`, the site that logs it `http.site.HarborSite`.
"""

from __future__ import annotations

import io
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from twisted.python import failure
from twisted.web import http, resource, server

from harbor_cache.errors import HarborError
from harbor_cache.http.errors import status_of
from harbor_cache.http.request_body import BodyRules, BodyTooLarge, ClientGone, StreamedBody
from harbor_cache.http.responses import BASE_HEADERS, PREFLIGHT_HEADERS, SECURITY_HEADERS, crash_response, write_error

if TYPE_CHECKING:
    from harbor_cache.http.channel import HarborChannel
    from harbor_cache.http.quick import HeaderBlock


class HarborRequest(server.Request):
    """Adds CORS to every response, answers preflights, remembers timing and cache status.

    The body is never spooled: `gotLength` (headers in, body not yet read)
    asks the site's `BodyRules` whether the route streams its body.  If so,
    the request is processed at once with a `StreamedBody` as ``body`` (the
    handler pulls it; see `request_body`), unless its Content-Length is over
    ``max_upload_bytes`` (413 at once, the handler never runs); otherwise the
    body is buffered in memory up to ``max_body_bytes`` and a larger one is
    refused with 413 before (Content-Length) or as soon as (chunked) it goes
    over.
    """

    channel: HarborChannel  # the site's channels are ours (`HarborSite.protocol`)
    cache_status: str | None = None
    upstream: str | None = None  # the upstream that answered, when one did (OCI)
    front: str = "site"
    body: StreamedBody | None = None
    scope_name: str | None = None  # OCI: the repository as the client named it, when ``?ns=`` keyed it otherwise
    refused = False
    _line_parsed = False
    _buffered = 0
    _buffer_limit = 0

    # -- body handling (before process) -----------------------------------------

    def gotLength(self, length):
        channel = self.channel
        site = channel.site
        rules: BodyRules = site.body_rules
        if length != 0 and rules.streamed(channel._command, channel._path):  # no body: nothing to stream
            self.content = io.BytesIO()
            if length is not None and length > rules.max_upload_bytes:
                # Decided from the headers: the handler never runs and not a byte of the body is read.
                limit = rules.max_upload_bytes
                self.refuse(BodyTooLarge("request body too large", {"size": length, "limit": limit}))
                return
            self.body = StreamedBody(
                length, rules.max_upload_bytes, channel.pause_body, channel.resume_body, channel.send_continue
            )
            return
        self._buffer_limit = rules.max_body_bytes
        self.content = io.BytesIO()
        if length is not None and length > self._buffer_limit:
            self.refuse(BodyTooLarge("request body too large", {"size": length, "limit": self._buffer_limit}))

    def handleContentChunk(self, data):
        if self.body is not None:
            self.body.feed(data)
            return
        if self.refused:
            return
        self._buffered += len(data)
        if self._buffered > self._buffer_limit:
            self.refuse(BodyTooLarge("request body too large", {"limit": self._buffer_limit}))
            return
        assert self.content is not None  # a BytesIO since gotLength
        self.content.write(data)

    def _parse_request_line(self, command, path, version):
        self._line_parsed = True
        self.args = {}
        self.method, self.uri = command, path
        self.clientproto = version
        target, _, query = path.partition(b"?")
        self.path = target
        if query:
            self.args = parse_qs(query, True)

    def start_early(self, command, path, version):
        """Process a streamed-body request now; its handler pulls the body."""
        self._parse_request_line(command, path, version)
        self.process()

    def requestReceived(self, command, path, version):
        if self.body is not None:
            self.body.end()
            return
        if self.refused:
            return
        super().requestReceived(command, path, version)

    def refuse(self, error: HarborError) -> None:
        """Answer ``error`` before the body is read (or while it is cut off) and close the connection."""
        if self.refused or self.finished:
            return
        self.refused = True
        channel = self.channel
        if not self._line_parsed:
            self._parse_request_line(channel._command, channel._path, channel._version)
        self.started_at = time.monotonic()
        channel.persistent = False
        body = write_error(self, status_of(error), error.code, error.message, error.detail)
        for name, value in SECURITY_HEADERS.items():
            self.setHeader(name, value)
        self.setHeader(b"Connection", b"close")
        self.setHeader(b"Content-Length", b"%d" % len(body))
        self.write(b"" if self.method == b"HEAD" else body)
        self.finish()

    def set_headers(self, block: HeaderBlock) -> None:
        """Set each header of ``block`` in order (what `QuickRequest.set_headers` keeps as bytes)."""
        block.apply(self.responseHeaders)

    def write(self, data):
        if not self.startedWriting and self.body is not None and not self.body.complete:
            # Answered before the body ended (an error, a 401): the rest of it is never read.
            self.channel.persistent = False
            self.setHeader(b"Connection", b"close")
        super().write(data)

    # -- processing -----------------------------------------------------------------

    def process(self):
        """`server.Request.process` with the headers every response carries set at the cost of one dict update.

        Twisted's own sets ``Server`` and ``Date`` through `setHeader`, which
        encodes the name and checks the value each time, and formats the date
        anew for every request: with the CORS pair, about a tenth of a warm
        hit's CPU.  Here the names and values are checked once (`_BaseHeaders`)
        and the date once a second; the response bytes are the same.
        """
        self.started_at = time.monotonic()
        raw = self.responseHeaders._rawHeaders
        if self.method == b"OPTIONS":
            raw.update(BASE_HEADERS.common())
            for name, value in PREFLIGHT_HEADERS.items():
                self.setHeader(name, value)
            self.setResponseCode(204)
            self.finish()
            return
        raw.update(BASE_HEADERS.every_response())
        # What server.Request.process does after its two setHeader calls.
        self.site = self.channel.site
        self.prepath = []
        self.postpath = list(map(http.unquote, self.path[1:].split(b"/")))
        if self.path == b"*":
            self._handleStar()
            return
        try:
            resrc = self.site.getResourceFor(self)
            if resource._IEncodingResource.providedBy(resrc):
                encoder = resrc.getEncoder(self)
                if encoder is not None:
                    self._encoder = encoder
            self.render(resrc)
        except BaseException:
            self.processingFailed(failure.Failure())

    def processingFailed(self, reason):
        body = crash_response(self, reason)
        if body is not None:
            self.write(body)
            self.finish()
        return reason

    def connectionLost(self, reason):
        if self.body is not None:
            self.body.fail(ClientGone("client disconnected"))
        if not self.finished and hasattr(self, "started_at"):
            self.channel_lost = True
            site = getattr(self, "site", None)
            if site is not None:
                site.log(self)
        super().connectionLost(reason)
