"""The site: health, error format, CORS and metrics, through a real HarborSite."""

import json
import time

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web import http, server

from harbor_cache.http import resources, responses
from tests.unit.base import OciCacheCase


class SiteTests(OciCacheCase):
    def get(self, path, method="GET", headers=None):
        response = self.successResultOf(self.request(method, path, headers))
        return response, self.successResultOf(self.read_body(response))

    def test_health_matches_seed(self):
        """GET /health and /healthz answer {"status":"healthy","version":...}."""
        for path in ("/health", "/healthz"):
            response, body = self.get(path)
            self.assertEqual(response.code, 200)
            self.assertEqual(json.loads(body), {"status": "healthy", "version": "0.1.0"})
        response, body = self.get("/health", "HEAD")
        self.assertEqual((response.code, body), (200, b""))

    def test_health_degraded_when_index_broken(self):
        """A broken index makes /health answer 503 degraded."""
        self.app.db_pool.close()
        response, body = self.get("/health")
        self.assertEqual(response.code, 503)
        self.assertEqual(json.loads(body)["status"], "degraded")

    def test_livez_answers_while_the_index_and_the_disk_fail(self):
        """/livez is 200 alive with the index broken and the disk below the floor; /readyz is 503 with both."""
        for path in ("/livez", "/readyz"):
            response, body = self.get(path)
            self.assertEqual(response.code, 200, path)
        self.assertEqual(json.loads(self.get("/readyz")[1]), {"status": "ready", "version": "0.1.0"})
        self.patch(self.app.storage, "free_bytes", lambda: 1 << 20)  # under cache.min_free_bytes (1 GiB)
        self.app.db_pool.close()
        response, body = self.get("/livez")
        self.assertEqual((response.code, json.loads(body)), (200, {"status": "alive", "version": "0.1.0"}))
        response, body = self.get("/readyz")
        self.assertEqual(response.code, 503)
        self.assertEqual(
            json.loads(body), {"status": "not_ready", "version": "0.1.0", "problems": ["index", "disk_space"]}
        )
        self.assertEqual(response.headers.getRawHeaders(b"Content-Type"), [b"application/json"])
        response, body = self.get("/readyz", "HEAD")
        self.assertEqual((response.code, body), (503, b""))

    def test_readyz_fails_on_a_full_disk_alone(self):
        """Free space under cache.min_free_bytes: not ready (problem disk_space), still alive."""
        self.patch(self.app.storage, "free_bytes", lambda: 1 << 20)
        response, body = self.get("/readyz")
        self.assertEqual((response.code, json.loads(body)["problems"]), (503, ["disk_space"]))
        self.assertEqual(self.get("/livez")[0].code, 200)

    def test_unknown_path_is_404_in_error_format(self):
        """Unknown paths get the seed's error body, never an HTML page."""
        response, body = self.get("/nope/x")
        self.assertEqual(response.code, 404)
        self.assertEqual(json.loads(body)["errors"][0]["code"], "NOT_FOUND")
        self.assertEqual(response.headers.getRawHeaders(b"Content-Type"), [b"application/json"])

    def test_non_utf8_escape_is_400_in_error_format(self):
        """A percent escape that is not UTF-8 gets 400 in the JSON error format on every front, not text/html."""
        for path in ("/v2/%ff/manifests/x", "/v2/a/manifests/%ff", "/health/%c3%28"):
            response, body = self.get(path)
            self.assertEqual(response.code, 400, path)
            self.assertEqual(response.headers.getRawHeaders(b"Content-Type"), [b"application/json"])
            self.assertEqual(json.loads(body)["errors"][0]["code"], "BAD_REQUEST")
        response, _ = self.get("/v2/a/manifests/%C3%A9")
        self.assertNotEqual(response.code, 400)

    def test_cors_on_every_response_and_preflight(self):
        """Every response has Access-Control-Allow-Origin; OPTIONS answers 204 with methods and headers."""
        response, _ = self.get("/nope")
        self.assertEqual(response.headers.getRawHeaders(b"Access-Control-Allow-Origin"), [b"*"])
        response, _ = self.get("/v2/", "OPTIONS")
        self.assertEqual(response.code, 204)
        self.assertIn(b"Authorization", response.headers.getRawHeaders(b"Access-Control-Allow-Headers")[0])
        self.assertIn(b"DELETE", response.headers.getRawHeaders(b"Access-Control-Allow-Methods")[0])

    def test_method_not_allowed_in_error_format(self):
        """A wrong method on a known route is 405 in the error format."""
        response, body = self.get("/health", "DELETE")
        self.assertEqual(response.code, 405)
        self.assertEqual(json.loads(body)["errors"][0]["code"], "UNSUPPORTED")

    def test_crash_is_500_in_error_format(self):
        """An unexpected exception is logged and answered 500 in the error format."""

        async def boom(*a, **k):
            raise RuntimeError("kaboom")

        self.app.index.ping = boom
        self.app.storage.usable = lambda: (_ for _ in ()).throw(RuntimeError("disk on fire"))
        response, body = self.get("/health")
        self.assertEqual(response.code, 500)
        self.assertEqual(json.loads(body)["errors"][0]["code"], "INTERNAL_ERROR")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_request_and_health_counters_move(self):
        """The seed's counters count requests and health checks."""
        before = self.app.metrics.requests._value.get()
        self.get("/health")
        self.get("/nope")
        self.assertEqual(self.app.metrics.requests._value.get() - before, 2)
        self.assertEqual(self.app.metrics.health_checks._value.get(), 1)

    def test_made_up_methods_share_one_label(self):
        """5,000 requests with made-up methods add one 'other' series, not 5,000 (and /metrics stays small)."""
        from prometheus_client import generate_latest

        before = len(generate_latest(self.app.metrics.registry))
        for i in range(300):
            self.get("/health", method="X%d" % i)
        families = {
            s.labels.get("method")
            for m in self.app.metrics.registry.collect()
            if m.name == "harbor_cache_http_responses"
            for s in m.samples
        }
        self.assertEqual(families - {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}, {"other"})
        self.assertLess(len(generate_latest(self.app.metrics.registry)) - before, 2000)


class _RawCase(OciCacheCase):
    """Raw bytes in and out of the app's HarborSite (no tests of its own)."""

    def raw_response(self, request_bytes: bytes) -> bytes:
        channel = self.app.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        channel.makeConnection(transport)
        channel.dataReceived(request_bytes)
        self.flush()
        channel.connectionLost(Failure(ConnectionDone()))  # its timers are the real reactor's
        return transport.value()

    def header_lines(self, response: bytes) -> list[bytes]:
        return response.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]


class BaseHeadersTests(_RawCase):
    """The headers every response carries, set without `setHeader`: the same bytes, in the same order."""

    def test_cors_server_and_date_first_as_twisted_sets_them(self):
        """The first six header lines: the CORS and security pairs, then Server and Date as server.Request.process
        writes them."""
        self.patch(time, "time", lambda: 1796300000.25)
        lines = self.header_lines(self.raw_response(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))
        common = {**responses.CORS_HEADERS, **responses.SECURITY_HEADERS}
        self.assertEqual(
            lines[:6],
            [name + b": " + value for name, value in common.items()]
            + [b"Server: " + server.version, b"Date: " + http.datetimeToString(1796300000.25)],
        )
        self.assertEqual(http.datetimeToString(1796300000.25), b"Thu, 03 Dec 2026 12:13:20 GMT")

    def test_date_follows_the_clock_second_by_second(self):
        """The Date value is formatted once a second, and each response gets lists of its own."""
        now = [1796300000.0]
        self.patch(time, "time", lambda: now[0])
        headers = responses._BaseHeaders()
        first = headers.every_response()
        now[0] += 0.9
        self.assertEqual(headers.every_response(), first)
        now[0] += 0.1
        later = headers.every_response()
        self.assertEqual(later[b"Date"], [http.datetimeToString(1796300001.0)])
        later[b"Date"].append(b"x")  # a handler adding to a list never reaches the next response
        self.assertEqual(headers.every_response()[b"Date"], [http.datetimeToString(1796300001.0)])

    def test_preflight_has_cors_and_no_server_or_date(self):
        """An OPTIONS preflight keeps its headers as before: the CORS pair, no Server or Date."""
        lines = self.header_lines(self.raw_response(b"OPTIONS /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"))
        names = [line.split(b":", 1)[0] for line in lines]
        self.assertEqual(names[:2], list(responses.CORS_HEADERS))
        self.assertNotIn(b"Server", names)
        self.assertNotIn(b"Date", names)


SANDBOX = b"default-src 'none'; sandbox"


class SecurityHeadersTests(_RawCase):
    """Issue 24.1: what we serve outside /ui/ is data; opened in a browser it never runs script on our origin."""

    def security(self, response: bytes) -> dict[bytes, list[bytes]]:
        found: dict[bytes, list[bytes]] = {}
        for line in self.header_lines(response):
            name, _, value = line.partition(b": ")
            if name.lower() in (b"content-security-policy", b"x-content-type-options"):
                found.setdefault(name.lower(), []).append(value)
        return found

    def test_every_response_outside_ui_is_sandboxed(self):
        """Health, 404s, the registry, the API, Maven, a preflight: one sandboxing policy and nosniff each."""
        for head in (
            b"GET /health HTTP/1.1",
            b"GET /nope HTTP/1.1",
            b"GET /v2/ HTTP/1.1",
            b"GET /v2/library/app/manifests/1 HTTP/1.1",
            b"GET /api/v1/users HTTP/1.1",
            b"GET /artifacts/central/a/b/1/b-1.pom HTTP/1.1",
            b"OPTIONS /v2/ HTTP/1.1",
            b"GET / HTTP/1.1",
            b"DELETE /health HTTP/1.1",
        ):
            response = self.raw_response(head + b"\r\nHost: x\r\n\r\n")
            self.assertEqual(
                self.security(response),
                {b"content-security-policy": [SANDBOX], b"x-content-type-options": [b"nosniff"]},
                head,
            )

    def test_refused_before_the_body_is_sandboxed(self):
        """A request refused from its headers (413, no `process`) carries the pair too."""
        response = self.raw_response(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
        self.assertTrue(response.startswith(b"HTTP/1.1 413 "), response[:40])
        self.assertEqual(
            self.security(response), {b"content-security-policy": [SANDBOX], b"x-content-type-options": [b"nosniff"]}
        )

    def test_raw_errors_are_sandboxed(self):
        """The connection-level answers written without a request (408, 503) carry the same two headers."""
        from harbor_cache.http.client_limits import raw_error

        response = raw_error(503, "Service Unavailable", "TOO_MANY_CONNECTIONS", "too many")
        self.assertEqual(
            self.security(response), {b"content-security-policy": [SANDBOX], b"x-content-type-options": [b"nosniff"]}
        )
        for name, value in responses.SECURITY_HEADERS.items():
            self.assertIn(b"\r\n" + name + b": " + value + b"\r\n", response)

    def test_console_keeps_its_own_policy(self):
        """/ui/ files carry the console's policy (its own scripts may run), once, instead of the sandbox."""
        for path in (b"/ui/", b"/ui/app.js", b"/ui/style.css", b"/ui/icons/folder.svg"):
            # (HEAD: a GET's body is produced by the real reactor)
            response = self.raw_response(b"HEAD " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(response.startswith(b"HTTP/1.1 200 "), (path, response[:40]))
            self.assertEqual(
                self.security(response),
                {
                    b"content-security-policy": [resources.CONSOLE_CSP.encode()],
                    b"x-content-type-options": [b"nosniff"],
                },
                path,
            )
