"""GET /api/v1/dashboard/history in a whole app: counted from real pulls, kept over a restart, ranges checked.

An `OciCacheCase` (a fake upstream registry, the real site and fronts):
the site counts each content request with its cache status, the downloads
count upstream bytes, the outcomes upstream errors; the route flushes this
node's counters and reads the buckets.
"""

from __future__ import annotations

import json
import os
from typing import Any

from harbor_cache.api.openapi import build_document
from tests.unit.base import OciCacheCase, error_code


class HistoryApiTests(OciCacheCase):
    def setUp(self) -> None:
        super().setUp()
        self.layer = os.urandom(50_000)
        self.layer_digest = self.upstream.add_blob(self.layer)
        self.add_user("admin", "admin-pw", "admin")
        self.token = self.login()

    def login(self) -> str:
        body = json.dumps({"username": "admin", "password": "admin-pw"}).encode()
        response, text = self.fetch("POST", "/api/v1/auth/login", body, {"Content-Type": "application/json"}, None)
        self.assertEqual(response.code, 200, text)
        token: str = json.loads(text)["token"]
        return token

    def history(self, query: str = "") -> tuple[int, Any]:
        headers = {"Authorization": "Bearer " + self.token}
        response, body = self.fetch("GET", "/api/v1/dashboard/history" + query, headers=headers, user=None)
        return response.code, json.loads(body)

    def pull_twice(self) -> None:
        for _ in range(2):
            response, body = self.fetch("GET", "/v2/library/app/blobs/" + self.layer_digest, user=None)
            self.assertEqual((response.code, body), (200, self.layer))

    def test_pulls_show_in_the_hour_series(self) -> None:
        """A miss then a hit: two requests, both bodies served, one fetched upstream: half saved."""
        self.pull_twice()
        code, got = self.history("?range=hour")
        self.assertEqual(code, 200)
        self.assertEqual((got["range"], got["step_seconds"], len(got["buckets"])), ("hour", 60, 60))
        requests = got["series"]["requests"]
        self.assertEqual((sum(requests["miss"]), sum(requests["hit"])), (1, 1))
        self.assertEqual(got["series"]["upstream_bytes"], {"fake": [0] * 59 + [len(self.layer)]})
        self.assertEqual(
            got["totals"],
            {
                "requests": 2,
                "served_bytes": 2 * len(self.layer),
                "upstream_bytes": len(self.layer),
                "upstream_errors": 0,
                "saved_bytes": len(self.layer),
                "saved_ratio": 0.5,
            },
        )

    def test_api_calls_are_not_counted(self) -> None:
        """Only content requests (with a cache status) count; the console's own polling does not."""
        self.history()
        self.history()
        self.assertEqual(self.history()[1]["totals"]["requests"], 0)

    def test_upstream_errors_are_counted(self) -> None:
        """An upstream that refuses the connection: an upstream error under its name."""
        self.patch(self.http, "request", lambda *a, **kw: _refused())
        response, _ = self.fetch("GET", "/v2/library/app/blobs/" + self.layer_digest, user=None)
        self.assertGreaterEqual(response.code, 400)
        got = self.history()[1]
        self.assertGreaterEqual(got["totals"]["upstream_errors"], 1)
        self.assertEqual(list(got["series"]["upstream_errors"]), ["fake"])

    def test_history_survives_a_restart(self) -> None:
        """What was flushed is in the index: a new process on the same data directory shows it."""
        self.pull_twice()
        self.successResultOf(self.drive(self.app.history.flush()))
        self.start_app(directory=self.directory, migrate=False)
        self.token = self.login()
        got = self.history("?range=day")[1]
        self.assertEqual((got["range"], got["step_seconds"], len(got["buckets"])), ("day", 300, 288))
        self.assertEqual(got["totals"]["requests"], 2)
        self.assertEqual(self.history("?range=week")[1]["totals"]["upstream_bytes"], len(self.layer))

    def test_ranges(self) -> None:
        self.assertEqual(self.history()[1]["range"], "hour")  # the default
        for name, step, count in (("hour", 60, 60), ("day", 300, 288), ("week", 3600, 168)):
            got = self.history("?range=" + name)[1]
            self.assertEqual((got["step_seconds"], len(got["buckets"])), (step, count))
            self.assertEqual(got["buckets"][1] - got["buckets"][0], step)

    def test_a_bad_range_is_a_400(self) -> None:
        for query in ("?range=month", "?range=HOUR", "?range=%00"):
            code, body = self.history(query)
            self.assertEqual((code, error_code(json.dumps(body).encode())), (400, "BAD_REQUEST"), query)

    def test_needs_a_signed_in_user(self) -> None:
        response, _ = self.fetch("GET", "/api/v1/dashboard/history", user=None)
        self.assertEqual(response.code, 401)

    def test_documented(self) -> None:
        doc = build_document("x")
        op = doc["paths"]["/api/v1/dashboard/history"]["get"]
        self.assertIn("400", op["responses"])
        self.assertIn("DashboardHistory", doc["components"]["schemas"])


def _refused() -> Any:
    from twisted.internet import defer

    return defer.fail(ConnectionRefusedError("upstream stopped"))
