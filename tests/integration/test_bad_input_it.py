"""Issue 24.7 against a real server on the PostgreSQL index: bad client input is 400/404, never a 500.

PostgreSQL refuses NUL in text: a NUL in a username (login JSON, Basic on
``/v2/``, ``/v2/token``, ``POST /token``) or in an admin filter used to fail
the query with 500 and a critical traceback.  Numbers from clients are ASCII
(``?limit=²`` was a 500, ``?limit=５`` was 5), ids in paths too, and
``/ui/app.js%00.html`` was a 500, as was an upstream's username or
password with a NUL (``POST /api/v1/upstreams``).  Each case is sent over real HTTP; each
answer must be the expected status in the error format, and the server log
must hold no critical (or error) line afterwards.
"""

import base64
import json

from twisted.trial.unittest import SynchronousTestCase

from tests import pg_support
from tests.integration import support
from tests.integration.log_events import lines_at
from tests.integration.support import http


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


NUL_BASIC = {"Authorization": basic("a\x00b", "pw")}


class BadInputOnPostgresTests(SynchronousTestCase):
    def setUp(self):
        db_url = pg_support.fresh_database_url(self)
        config = support.oci_config(
            "http://127.0.0.1:9", routes=["proxied/*"], maven_repositories=[{"id": "releases", "type": "hosted"}]
        )
        config += "\n" + support._toml_table("[index]", {"url": db_url, "pool_size": 4})
        self.server = support.HarborServer(config)
        self.addCleanup(self.server.close)
        self.admin = {"Authorization": "Bearer " + self.server.login()}

    def assert_answer(self, method, path, status, headers=None, body=None):
        got, response_headers, content = http(method, self.server.url + path, headers=headers, body=body)
        self.assertEqual(got, status, f"{method} {path}: {content[:300]!r}")
        self.assertEqual(response_headers.get("Content-Type"), "application/json", path)
        error = json.loads(content)["errors"][0]
        self.assertLessEqual({"code", "message"}, set(error), path)
        self.assertLessEqual(set(error), {"code", "message", "detail"}, path)
        return error

    def test_each_case(self):
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        cases = [
            ("POST", "/api/v1/auth/login", 400, None, {"username": "a\x00b", "password": "pw"}),
            ("GET", "/v2/", 400, NUL_BASIC, None),
            ("GET", "/v2/token?service=harbor-cache&scope=repository:x/y:pull", 400, NUL_BASIC, None),
            ("POST", "/token", 400, {**NUL_BASIC, **form}, b"repositories=releases"),
            ("PUT", "/artifacts/releases/com/x/1/x-1.jar", 400, NUL_BASIC, b"jar"),
            ("GET", "/api/v1/cache/entries?q=%00", 400, self.admin, None),
            ("GET", "/api/v1/cache/entries?repository=%00", 400, self.admin, None),
            ("GET", "/api/v1/audit?actor=%00", 400, self.admin, None),
            ("GET", "/api/v1/audit?q=%00", 400, self.admin, None),
            ("GET", "/api/v1/cache/entries?limit=%C2%B2", 400, self.admin, None),
            ("GET", "/api/v1/cache/entries?limit=%EF%BC%95", 400, self.admin, None),
            ("GET", "/api/v1/audit?offset=" + "9" * 30, 400, self.admin, None),
            ("GET", "/api/v1/users/%EF%BC%91", 404, self.admin, None),
            ("GET", "/api/v1/users/" + "9" * 30, 404, self.admin, None),
            ("DELETE", "/api/v1/cache/entries/" + "9" * 30, 404, self.admin, None),
            ("GET", "/v2/_catalog?last=%00", 400, {"Authorization": basic("admin", self.server.admin_password)}, None),
            (
                "POST",
                "/token",
                400,
                {"Authorization": basic("admin", self.server.admin_password), **form},
                b"expires_in=%EF%BC%95",
            ),
            ("GET", "/ui/app.js%00.html", 404, None, None),
            (
                "POST",
                "/api/v1/upstreams",
                400,
                self.admin,
                {"name": "u1", "url": "http://127.0.0.1:9", "username": "a\x00b", "password": "p\x00"},
            ),
        ]
        for method, path, status, headers, body in cases:
            self.assert_answer(method, path, status, headers, body)
        # The same endpoints still answer good input.
        status, _, content = http("GET", self.server.url + "/api/v1/cache/entries?limit=5&q=zo%C3%AB", self.admin)
        self.assertEqual(status, 200, content)
        status, _, _ = http("GET", self.server.url + "/ui/app.js")
        self.assertEqual(status, 200)
        self.assertEqual(lines_at(self.server, "critical"), [])
        self.assertEqual(lines_at(self.server, "error"), [])
