"""A fault-injecting HTTP proxy in front of a real S3 API server (moto), for the tests of point 7 of issue 26.

moto answers every request correctly; the faults a real store produces (503
``SlowDown``, 500 ``InternalError``, a connection reset in the middle of an
upload, a store that stops answering) come from this proxy instead.  It
listens on 127.0.0.1, forwards each HTTP/1.1 request to the server
unchanged (the Host header too, so SigV4 signatures stay valid), and keeps a
programmable plan: `FaultProxy.add` a `Rule` that matches a method and a
substring of the request target, and the next ``count`` matching requests
get its fault instead of the server's answer.  `requests` records every
request with the fault it got (None: forwarded), so a test counts retries.

Threads, not the reactor: the harbor-cache under test is another process,
and a test body (`SynchronousTestCase`) blocks while it waits for it.
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field

SLOWDOWN = (
    503,
    "Service Unavailable",
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>fault-proxy</RequestId></Error>",
)
INTERNAL = (
    500,
    "Internal Server Error",
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message><RequestId>fault-proxy</RequestId></Error>",
)


@dataclass
class Rule:
    """``fault`` for the next ``count`` requests whose method is ``method`` (None: any) and whose target
    (path and query) contains every string of ``contains``.

    Faults: ``"slowdown"`` (503 SlowDown), ``"internal"`` (500 InternalError), ``"reset"`` (the
    connection is reset after ``after_bytes`` bytes of the request body were read), ``"stall"`` (the
    request is read and never answered); and two of the server's answer, forwarded: ``"hold"`` (its
    first ``after_bytes`` bytes of body, then nothing until `release`) and ``"cut"`` (its first
    ``after_bytes`` bytes of body, then the connection is reset).  ``reached`` is set once either got there.
    """

    fault: str
    method: str | None = None
    contains: tuple[str, ...] = ()
    count: int = 1
    after_bytes: int = 0
    hits: int = 0
    reached: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        """A ``"hold"``: let the rest of the answer through."""
        self.gate.set()

    def matches(self, method: str, target: str) -> bool:
        return (
            self.hits < self.count
            and (self.method is None or self.method == method)
            and all(s in target for s in self.contains)
        )


@dataclass
class Seen:
    method: str
    target: str
    fault: str | None
    range: str | None = None  # the request's Range header


@dataclass
class FaultProxy:
    """The proxy on an ephemeral loopback port in front of ``upstream_port``; `close` stops it."""

    upstream_port: int
    rules: list[Rule] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._sockets: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, name="s3-fault-proxy", daemon=True).start()

    # -- the plan ----------------------------------------------------------------------

    def add(self, fault: str, method: str | None = None, *contains: str, count: int = 1, after_bytes: int = 0) -> Rule:
        rule = Rule(fault, method, tuple(contains), count, after_bytes)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def count(self, method: str | None, *contains: str, fault: str | None | bool = False) -> int:
        """Requests seen with ``method`` (None: any) whose target contains every string of ``contains``;
        ``fault``: with that fault only (None: the forwarded ones only; False: any)."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method)
                and all(c in r.target for c in contains)
                and (fault is False or r.fault == fault)
            )

    def _plan(self, method: str, target: str, range_: str | None = None) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, target):
                    rule.hits += 1
                    self.requests.append(Seen(method, target, rule.fault, range_))
                    return rule
            self.requests.append(Seen(method, target, None, range_))
            return None

    # -- sockets -------------------------------------------------------------------------

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _track(self, s: socket.socket) -> None:
        with self._lock:
            self._sockets.add(s)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        reader = _Reader(client)
        upstream: socket.socket | None = None
        upstream_reader: _Reader | None = None
        try:
            while True:
                head = reader.head()
                if head is None:
                    return
                request_line, headers = _parse_head(head)
                method, target, _ = request_line.split(" ", 2)
                rule = self._plan(method, target, headers.get("range"))
                if rule is not None and rule.fault == "reset":
                    reader.body(headers, limit=rule.after_bytes)
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return  # (closed below: an RST, the body cut off)
                body = reader.body(headers)
                if rule is not None and rule.fault == "stall":
                    while client.recv(65536):  # until the client gives up
                        pass
                    return
                if rule is not None and rule.fault not in ("hold", "cut"):
                    status, reason, payload = SLOWDOWN if rule.fault == "slowdown" else INTERNAL
                    client.sendall(
                        b"HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n%s"
                        % (status, reason.encode(), len(payload), payload)
                    )
                    continue
                if upstream is None:
                    upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
                    self._track(upstream)
                    upstream_reader = _Reader(upstream)
                assert upstream_reader is not None
                upstream.sendall(head + body)
                keep = upstream_reader.relay_response(client, method, rule)
                if not keep:
                    return  # the server closed: so does the client's connection
        except OSError:
            return
        finally:
            for s in (client, upstream):
                if s is not None:
                    s.close()


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


class _Reader:
    """Buffered reads of HTTP messages from one socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _more(self) -> bool:
        data = self.sock.recv(262144)
        self.buffer += data
        return bool(data)

    def head(self) -> bytes | None:
        while b"\r\n\r\n" not in self.buffer:
            if not self._more():
                return None
        end = self.buffer.index(b"\r\n\r\n") + 4
        head, self.buffer = self.buffer[:end], self.buffer[end:]
        return head

    def take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            if not self._more():
                raise OSError("connection closed mid-body")
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._more():
                raise OSError("connection closed mid-body")
        end = self.buffer.index(b"\r\n") + 2
        data, self.buffer = self.buffer[:end], self.buffer[end:]
        return data

    def body(self, headers: dict[str, str], limit: int | None = None) -> bytes:
        """A request body (Content-Length or chunked), raw; with ``limit``, at most that many bytes of it."""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            out = b""
            while True:
                size_line = self.line()
                out += size_line
                size = int(size_line.split(b";")[0], 16)
                out += self.take(size + 2)
                if limit is not None and len(out) >= limit:
                    return out
                if size == 0:
                    return out
        length = int(headers.get("content-length", "0") or 0)
        return self.take(length if limit is None else min(limit, length))

    def relay_response(self, client: socket.socket, method: str, rule: Rule | None = None) -> bool:
        """Send the next response to ``client`` as it arrives; whether the connection stays open.

        ``rule``: a ``"hold"`` or ``"cut"`` of its body (a Content-Length one) after ``rule.after_bytes``."""
        head = self.head()
        if head is None:
            raise OSError("the server closed the connection")
        status_line, headers = _parse_head(head)
        version, status = status_line.split(" ", 2)[:2]
        client.sendall(head)
        code = int(status)
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if method == "HEAD" or code in (204, 304) or 100 <= code < 200:
            return keep
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size_line = self.line()
                size = int(size_line.split(b";")[0], 16)
                client.sendall(size_line + self.take(size + 2))
                if size == 0:
                    return keep
        if "content-length" in headers:
            left = int(headers["content-length"])
            sent = 0
            while left:
                if not self.buffer and not self._more():
                    raise OSError("the server closed mid-body")
                n = left if rule is None or sent >= rule.after_bytes else min(left, rule.after_bytes - sent)
                data, self.buffer = self.buffer[:n], self.buffer[n:]
                client.sendall(data)
                left -= len(data)
                sent += len(data)
                if rule is not None and sent == rule.after_bytes and not rule.reached.is_set():
                    rule.reached.set()
                    if rule.fault == "cut":
                        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        raise OSError("cut")  # (closed by the caller: an RST, the body cut off)
                    rule.gate.wait(60)
            return keep
        while True:  # to the end of the connection
            if self.buffer:
                client.sendall(self.buffer)
                self.buffer = b""
            if not self._more():
                return False
