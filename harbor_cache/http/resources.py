"""The resource tree under the site: `Root` picks a front by the first path segment.

Every front is a Klein app whose routes carry their full paths (``/v2/...``,
``/api/v1/...``); `Root` only picks which app sees the request, offering hot
GET/HEADs to the front's synchronous handler first (`HotRoute`).  Beside the
fronts: the console's static files (`ConsoleFiles`, with their own policy),
the redirect from ``/`` and the error-format answers for unknown and
undecodable paths.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from twisted.web import resource, server
from twisted.web.static import File

from harbor_cache.errors import ErrorCode
from harbor_cache.grammar.request_head import HOT_METHODS
from harbor_cache.http.quick import HotHandler
from harbor_cache.http.responses import write_error


class NotFoundResource(resource.Resource):
    isLeaf = True

    def render(self, request):
        return write_error(request, 404, ErrorCode.NOT_FOUND, "no such endpoint", request.path.decode("latin-1"))


#: the console's policy: its own scripts and styles only (no inline script, no eval), JSON from this origin
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class ConsoleFiles(File):
    """The web console's static files (``/ui/``) with a strict Content-Security-Policy.

    Every file, including index.html, carries the policy, so a name that
    somehow reached the page as markup still could not run script.
    """

    contentTypes = dict(
        File.contentTypes,
        **{
            ".js": "text/javascript; charset=utf-8",
            ".css": "text/css; charset=utf-8",
            ".html": "text/html; charset=utf-8",
            ".svg": "image/svg+xml",
        },
    )

    def render(self, request):
        request.setHeader(b"Content-Security-Policy", CONSOLE_CSP.encode())
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Referrer-Policy", b"no-referrer")
        request.setHeader(b"X-Frame-Options", b"DENY")
        request.setHeader(b"Cache-Control", b"no-cache")
        return super().render(request)

    def getChild(self, path, request):
        if b"\0" in path:  # "/ui/app.js%00.html": the file system refuses the name (a 500 before); no such file
            return NotFoundResource()
        return super().getChild(path, request)

    def directoryListing(self):
        return NotFoundResource()


class BadPathResource(resource.Resource):
    """400 in the error format for a path whose percent escapes are not UTF-8.

    Klein would answer these itself, in text/html; clients of every front
    expect the JSON error format.
    """

    isLeaf = True

    def render(self, request):
        return write_error(
            request,
            400,
            "BAD_REQUEST",
            "path is not UTF-8 after percent-decoding",
            request.path.decode("latin-1")[:200],
        )


def _utf8_path(path: bytes) -> bool:
    try:
        unquote_to_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class RedirectToUI(resource.Resource):
    """A 302 into the console: ``/`` to ``/ui/``; ``/favicon.ico`` (browsers ask it unprompted) to the SVG icon."""

    isLeaf = True

    def __init__(self, location: bytes = b"/ui/") -> None:
        super().__init__()
        self.location = location

    def render(self, request):
        request.setResponseCode(302)
        request.setHeader(b"Location", self.location)
        return b""


class HotRoute(resource.Resource):
    """A front's Klein resource with a synchronous first try for its hot GET and HEAD requests.

    ``hot(request)`` answers what it can from memory at once (a warm Maven
    file, a cached manifest) and returns the body to write; it returns None,
    having changed nothing on the request, whenever the answer takes more (an
    auth check, a miss, a Range, an error), and the request goes to the Klein
    front as if this resource were not here.  Klein's routing, Deferreds and
    coroutine cost more than the rest of a hit together, so the hottest
    requests skip them; the response (status, headers, body, access line) is
    the one the front would have written.
    """

    isLeaf = True

    def __init__(self, front: resource.Resource, hot: HotHandler):
        super().__init__()
        self.front = front
        self.hot = hot

    def render(self, request):
        if request.method in HOT_METHODS and not getattr(request.channel, "hot_declined", False):
            body = self.hot(request)
            if body is not None:
                request.write(body)  # as Klein writes a handler's bytes, then finishes
                request.finish()
                return server.NOT_DONE_YET
        request.postpath.insert(0, request.prepath.pop())
        return self.front.render(request)


class Root(resource.Resource):
    """Picks the front for the first path segment; Klein fronts see the whole path."""

    def __init__(self):
        super().__init__()
        self._mounts: dict[bytes, resource.Resource] = {}
        self._plain: dict[bytes, resource.Resource] = {}
        self._hot: dict[bytes, HotRoute] = {}

    def mount(self, segment: bytes, res: resource.Resource, hot: HotHandler | None = None) -> None:
        """Route /segment/... to a Klein resource whose routes include /segment.

        ``hot``: the front's synchronous answer for hot GET/HEADs under this
        segment (see `HotRoute`); anything it declines goes to ``res``.
        """
        self._mounts[segment] = res
        if hot is not None:
            self._hot[segment] = HotRoute(res, hot)
        else:
            self._hot.pop(segment, None)

    def hot_for(self, path: bytes) -> HotHandler | None:
        """The hot handler of ``path``'s first segment (an undecoded path: `grammar.request_head` has no escapes)."""
        route = self._hot.get(path[1:].partition(b"/")[0])
        return None if route is None else route.hot

    def put(self, segment: bytes, res: resource.Resource) -> None:
        """Route /segment/... to an ordinary Twisted resource (static files)."""
        self._plain[segment] = res

    def getChild(self, path, request):
        if not _utf8_path(request.path):
            return BadPathResource()
        hot = self._hot.get(path)
        if hot is not None:
            return hot  # (it hands over to the Klein resource with the whole path when it declines)
        if path in self._mounts:
            request.postpath.insert(0, request.prepath.pop())
            return self._mounts[path]
        if path in self._plain:
            return self._plain[path]
        if path == b"" and not request.postpath:
            return RedirectToUI()
        return NotFoundResource()
