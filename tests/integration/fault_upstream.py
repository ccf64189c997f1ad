"""A fault-injecting HTTP proxy in front of a real registry, for the fault tests.

Run as a process (``python -m tests.integration.fault_upstream --port P
--upstream URL --log FILE``): every request is forwarded to ``URL`` with
http.client and the answer copied back, except when a *rule* matches it.
Rules are set per test over HTTP on the same port (``POST /_fault/rules``
with a JSON list, ``DELETE /_fault/rules``) by `oci_support.FaultUpstream`, the
controller the tests use. A rule is::

    {"method": "GET", "path": "<substring of the path>", "times": N or null,
     "mode": "cut" | "truncate" | "flip" | "hang" | "rate" | "status",
     "after": bytes,        # cut: reset after this many body bytes; truncate: send no
                            # Content-Length and close cleanly after them; hang: stall after them
     "offset": byte index,  # flip: which body byte is inverted
     "rate": bytes/second,  # rate: throttle the body
     "status": code}        # status: answer this without asking the upstream

``times`` counts down each time the rule is used (null = forever). The access
log has one combined-format line per request, written when the response is
over (cut connections too), so `support.count_log_requests` can count it.

Only the standard library is used in the server part; it listens on
127.0.0.1 only.
"""

import argparse
import http.client
import http.server
import json
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

HOP_HEADERS = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
}
CHUNK = 64 * 1024


class _Rules:
    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []

    def set(self, rules):
        with self.lock:
            self.rules = [dict(r) for r in rules]

    def take(self, method, path):
        """The first rule matching (method, path), its use counted; or None."""
        with self.lock:
            for r in self.rules:
                if r.get("method", "GET") not in (method, "*"):
                    continue
                if r.get("path", "") not in path:
                    continue
                times = r.get("times")
                if times is not None:
                    if times <= 0:
                        continue
                    r["times"] = times - 1
                return dict(r)
        return None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fault-upstream/1"

    def log_message(self, fmt, *args):  # the access log is ours (see _log_access)
        pass

    def _log_access(self, status, size):
        line = '%s - - [%s] "%s %s %s" %d %d "-" "%s"\n' % (
            self.client_address[0],
            time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            self.command,
            self.path,
            self.request_version,
            status,
            size,
            self.headers.get("User-Agent", "-"),
        )
        with self.server.log_lock:
            with open(self.server.log_path, "a") as f:
                f.write(line)

    # -- control ---------------------------------------------------------------

    def _control(self):
        if self.command == "POST" and self.path == "/_fault/rules":
            n = int(self.headers.get("Content-Length") or 0)
            self.server.rules.set(json.loads(self.rfile.read(n) or b"[]"))
        elif self.command == "DELETE" and self.path == "/_fault/rules":
            self.server.rules.set([])
        elif not (self.command == "GET" and self.path == "/_fault/ping"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    # -- proxying --------------------------------------------------------------

    def _proxy(self):
        if self.path.startswith("/_fault/"):
            return self._control()
        rule = self.server.rules.take(self.command, self.path)
        if rule is not None and rule["mode"] == "status":
            body = json.dumps({"errors": [{"code": "INJECTED", "message": "fault injected"}]}).encode()
            self.send_response(rule["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self._log_access(rule["status"], len(body))
            return
        if rule is not None and rule["mode"] == "hang" and rule.get("after") is None:
            # No answer at all: the headers never come.
            self._hang()
            self._log_access(0, 0)
            return
        length = int(self.headers.get("Content-Length") or 0)
        req_body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        conn = http.client.HTTPConnection(self.server.upstream.hostname, self.server.upstream.port, timeout=60)
        try:
            conn.request(self.command, self.path, body=req_body, headers=headers)
            resp = conn.getresponse()
            self.send_response(resp.status, resp.reason)
            truncate = rule is not None and rule["mode"] == "truncate"
            for k, v in resp.getheaders():
                if k.lower() not in HOP_HEADERS and not (truncate and k.lower() == "content-length"):
                    self.send_header(k, v)
            if truncate or (
                resp.getheader("Content-Length") is None and self.command != "HEAD" and resp.status not in (204, 304)
            ):
                self.close_connection = True
            self.end_headers()
            sent = 0
            if self.command != "HEAD":
                sent = self._copy_body(resp, rule)
            self._log_access(resp.status, sent)
        except (TimeoutError, ConnectionError, OSError):
            self.close_connection = True
            self._log_access(502, 0)
        finally:
            conn.close()

    def _hang(self):
        """Stall until the client goes away or the server stops."""
        self.close_connection = True
        self.connection.settimeout(0.5)
        while not self.server.stopping.is_set():
            try:
                if self.connection.recv(1 << 16) == b"":
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def _cut(self):
        """Close the connection abruptly (RST), as a dying upstream does."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.close()
        except OSError:
            pass

    def _copy_body(self, resp, rule):
        mode = rule["mode"] if rule else None
        sent = 0
        started = time.monotonic()
        while True:
            data = resp.read(CHUNK)
            if not data:
                return sent
            if mode in ("cut", "hang", "truncate") and sent + len(data) >= rule["after"]:
                data = data[: rule["after"] - sent]
                self.wfile.write(data)
                sent += len(data)
                if mode == "cut":
                    self._cut()
                elif mode == "truncate":
                    self.wfile.flush()  # the server closes the connection cleanly (FIN): the body "ends"
                else:
                    self.wfile.flush()
                    self._hang()
                return sent
            if mode == "flip" and sent <= rule["offset"] < sent + len(data):
                i = rule["offset"] - sent
                data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]
            if mode == "rate":
                due = started + (sent + len(data)) / float(rule["rate"])
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            try:
                self.wfile.write(data)
            except OSError:
                self.close_connection = True
                return sent
            sent += len(data)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _proxy


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True, help="http://host:port of the real registry")
    p.add_argument("--log", required=True, help="access log (combined format)")
    args = p.parse_args(argv)
    server = _Server(("127.0.0.1", args.port), _Handler)
    server.upstream = urllib.parse.urlsplit(args.upstream)
    server.rules = _Rules()
    server.log_path = args.log
    server.log_lock = threading.Lock()
    server.stopping = threading.Event()
    import signal

    def _stop(*_):
        server.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    print("fault upstream on 127.0.0.1:%d -> %s" % (args.port, args.upstream), flush=True)
    server.serve_forever(poll_interval=0.1)
    return 0


# --------------------------------------------------------------------------
# the controller the tests use (imports the test support only here)


if __name__ == "__main__":
    sys.exit(main())
