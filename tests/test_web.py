"""The site: health, error format, CORS and metrics, through a real HarborSite."""

import json

from twisted.trial.unittest import SynchronousTestCase

from tests.fakes import Harness


class SiteTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness(self.mktemp())

    def get(self, path, method="GET", headers=None):
        response = self.successResultOf(self.h.request(method, path, headers))
        return response, self.successResultOf(self.h.body(response))

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
        self.h.pool.close()
        response, body = self.get("/health")
        self.assertEqual(response.code, 503)
        self.assertEqual(json.loads(body)["status"], "degraded")

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

        self.h.index.ping = boom
        self.h.storage.usable = lambda: (_ for _ in ()).throw(RuntimeError("disk on fire"))
        response, body = self.get("/health")
        self.assertEqual(response.code, 500)
        self.assertEqual(json.loads(body)["errors"][0]["code"], "INTERNAL_ERROR")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_request_and_health_counters_move(self):
        """The seed's counters count requests and health checks."""
        before = self.h.metrics.requests._value.get()
        self.get("/health")
        self.get("/nope")
        self.assertEqual(self.h.metrics.requests._value.get() - before, 2)
        self.assertEqual(self.h.metrics.health_checks._value.get(), 1)

    def test_made_up_methods_share_one_label(self):
        """5,000 requests with made-up methods add one 'other' series, not 5,000 (and /metrics stays small)."""
        from prometheus_client import generate_latest

        before = len(generate_latest(self.h.metrics.registry))
        for i in range(300):
            self.get("/health", method="X%d" % i)
        families = {
            s.labels.get("method")
            for m in self.h.metrics.registry.collect()
            if m.name == "harbor_cache_http_responses"
            for s in m.samples
        }
        self.assertEqual(families - {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}, {"other"})
        self.assertLess(len(generate_latest(self.h.metrics.registry)) - before, 2000)
