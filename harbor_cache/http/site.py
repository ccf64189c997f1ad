"""The HTTP site: our request and channel classes, limits per client, an access line and metrics per request.

As twisted.web separates `server.Site` (the factory), `http.HTTPChannel`
(a connection), `http.Request` and `resource.Resource`, so do we:
`http.channel`, `http.request`, `http.resources` (the tree the fronts are
mounted in) and `http.responses` (headers and the error format they share).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from twisted.internet import protocol
from twisted.logger import Logger, LogLevel
from twisted.web import server

from harbor_cache.http.access_log import AccessLogFile
from harbor_cache.http.channel import HarborChannel
from harbor_cache.http.client_limits import ClientLimits, raw_error
from harbor_cache.http.connections import ConnectionTable
from harbor_cache.http.quick import HotHandler
from harbor_cache.http.request import HarborRequest
from harbor_cache.http.request_body import BodyRules, default_rules
from harbor_cache.http.resources import Root
from harbor_cache.metrics import front_label, method_label, status_label

log = Logger()
access_log = Logger(namespace="harbor_cache.access")
_ACCESS_NAMESPACE = "harbor_cache.access"
#: the access line (tests and log readers parse it): one event per request, in this namespace
ACCESS_FORMAT = "{method} {path} {status} {bytes} {duration_ms:.1f}ms {cache_status} {upstream}"
# Memo sizes for labelled metric children (keys: raw method and status, or front; bounded for made-up methods).
_MEMO_LIMIT = 256


class TrafficHistory(Protocol):
    """Where the site counts each content request for the dashboard's charts (`core.operations.history`)."""

    def request(self, cache_status: str, sent_bytes: int) -> None: ...


class _Refusal(protocol.Protocol):
    """A connection over a connection cap: one 503 in the error format, then closed."""

    def __init__(self, limit: int, setting: str = "max_connections", message: str = "too many open connections"):
        self.limit = limit
        self.setting = setting
        self.message = message

    transport: Any  # the TCP transport, set by makeConnection

    def connectionMade(self) -> None:
        self.transport.write(
            raw_error(
                503,
                "Service Unavailable",
                "TOO_MANY_CONNECTIONS",
                f"{self.message}, retry later",
                {self.setting: self.limit},
            )
        )
        self.transport.loseConnection()


class HarborSite(server.Site):
    """The site: our request class, limits per client, and an access line (plus metrics) per request.

    Which connections are admitted (per address, overall, shedding those that
    owe headers) is `http.connections.ConnectionTable`'s to decide.
    """

    requestFactory = HarborRequest
    protocol = HarborChannel  # type: ignore[assignment]  # a channel class is a factory of channels

    def __init__(
        self,
        root,
        metrics,
        limits: ClientLimits | None = None,
        body_rules: BodyRules | None = None,
        access_file: AccessLogFile | None = None,
        history: TrafficHistory | None = None,
        **kw,
    ):
        super().__init__(root, **kw)
        self.metrics = metrics
        # `[log] access_file`: access lines go there instead of to twisted.logger (see `http.access_log`).
        self.access_file = access_file
        # Requests with a cache status are counted in memory for the traffic history (flushed by a timer).
        self.history = history
        self.limits = limits or ClientLimits()
        self.body_rules = body_rules or default_rules(self.limits.max_body_bytes, self.limits.max_upload_bytes)
        self.connections = ConnectionTable(self.limits)
        self._responses: dict[tuple[bytes, str], Any] = {}  # (method, status) -> labelled child
        self._seconds: dict[Any, Any] = {}  # front -> labelled child

    def hot_for(self, path: bytes) -> HotHandler | None:
        """The hot handler for a request to ``path`` (see `HotRoute`), if the root has one."""
        root = self.resource
        return root.hot_for(path) if isinstance(root, Root) else None

    @property
    def open_connections(self) -> int:
        return self.connections.open

    def buildProtocol(self, addr):
        host = getattr(addr, "host", None)
        refused = self.connections.refusal(host)
        if refused is not None:
            setting, limit, message = refused
            log.warn(
                "refused a connection from {host}: limits.{setting} ({limit})", host=host, setting=setting, limit=limit
            )
            return _Refusal(limit, setting, message)
        channel = super().buildProtocol(addr)
        channel.peer_host = host
        return channel

    def log(self, request):
        """Metrics and the access line of a finished (or aborted) request.

        Once per request, so kept cheap: the labelled metric children are
        looked up once per label value (the values come from fixed sets, so
        the memo stays small), and the access event is built here and handed
        to the logger's observer, exactly the event ``access_log.info`` would
        emit (same keys, same order, same values) minus ``Logger.emit``'s
        per-call overhead.  With an access log file (``[log] access_file``)
        the same values go to that file instead, and no event is emitted.
        """
        started = getattr(request, "started_at", None)
        duration = 0.0 if started is None else time.monotonic() - started
        status = "aborted" if getattr(request, "channel_lost", False) else str(request.code)
        method = request.method
        self.metrics.requests.inc()
        key = (method, status)
        responses = self._responses.get(key)
        if responses is None:
            responses = self.metrics.responses.labels(method_label(method), status_label(status))
            if len(self._responses) < _MEMO_LIMIT:
                self._responses[key] = responses
        responses.inc()
        front = request.front
        seconds = self._seconds.get(front)
        if seconds is None:
            seconds = self.metrics.request_seconds.labels(front_label(front))
            if len(self._seconds) < _MEMO_LIMIT:
                self._seconds[front] = seconds
        seconds.observe(duration)
        cache_status = request.cache_status
        if cache_status is not None and self.history is not None:
            self.history.request(cache_status, request.sentLength)
        if self.access_file is not None:
            self.access_file.line(
                method.decode("latin-1"),
                request.uri.decode("latin-1"),
                status,
                request.sentLength,
                duration * 1000,
                cache_status or "-",
                request.upstream or "-",
            )
            return
        access_log.observer(
            {
                "method": method.decode("latin-1"),
                "path": request.uri.decode("latin-1"),
                "status": status,
                "bytes": request.sentLength,
                "duration_ms": duration * 1000,
                "cache_status": cache_status or "-",
                "upstream": request.upstream or "-",
                "log_logger": access_log,
                "log_level": LogLevel.info,
                "log_namespace": _ACCESS_NAMESPACE,
                "log_source": None,
                "log_format": ACCESS_FORMAT,
                "log_time": time.time(),
            }
        )
