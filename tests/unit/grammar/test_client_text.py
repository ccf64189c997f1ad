"""Bad client text and numbers are 400/404 in the error format, never a 500 (issue 24.7).

PostgreSQL refuses NUL in text, so a NUL in a username or an admin filter
used to fail the query (500 and a critical traceback); ``?limit=²`` was a
500 and ``?limit=５`` was read as 5.  These run on the sqlite index (which
accepts NUL): what they check is that such input is refused where it enters,
whatever index is behind; tests/integration/test_bad_input_it.py sends the
same requests to a server on PostgreSQL.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.grammar.client_text import is_clean_text
from harbor_cache.grammar.numbers import parse_fraction
from tests.unit.api.test_api import ApiCase

NUL_USER = "a\x00b"


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class GrammarTests(SynchronousTestCase):
    def test_clean_text(self):
        for text in ("", "admin", "zoë", "名前", "a b", "☃"):
            self.assertTrue(is_clean_text(text), text)
        for text in ("\x00", "a\x00", "\x1b[31m", "a\nb", "\t", "\x7f", "\x85", "\ud800"):
            self.assertFalse(is_clean_text(text), repr(text))

    def test_fraction(self):
        self.assertEqual([parse_fraction(t) for t in ("3", "0.5", "24", "007")], [3.0, 0.5, 24.0, 7.0])
        for text in (None, "", "５", "²", "1_0", "1e3", "nan", "inf", "-1", " 1", ".5", "1.", "1" * 19):
            self.assertIsNone(parse_fraction(text), text)


class ClientTextTests(ApiCase):
    def assert_bad(self, r, status=400, code="BAD_REQUEST"):
        self.assert_error(r, status, code)

    def test_login_with_nul_username(self):
        r = self.request("POST", "/api/v1/auth/login", {"username": NUL_USER, "password": "pw"})
        self.assert_bad(r)
        self.assertIn("control characters", r.json()["errors"][0]["message"])
        admin = self.token("admin")
        audit = self.request("GET", "/api/v1/audit?action=login", token=admin).json()
        self.assertFalse([e for e in audit["entries"] if e["action"] == "login.failed"], audit)

    def test_basic_with_nul_username(self):
        header = {"Authorization": basic(NUL_USER, "pw")}
        self.assert_bad(self.request("GET", "/v2/", headers=header))
        self.assert_bad(self.request("GET", "/v2/token?service=harbor-cache", headers=header))
        self.assert_bad(self.request("POST", "/token", headers=header))

    def test_filters_with_nul(self):
        admin = self.token("admin")
        for path in (
            "/api/v1/cache/entries?q=%00",
            "/api/v1/cache/entries?repository=%00",
            "/api/v1/cache/entries?q=a%1Bb",
            "/api/v1/audit?actor=%00",
            "/api/v1/audit?q=%00",
        ):
            r = self.request("GET", path, token=admin)
            self.assert_bad(r)
            self.assertIn("control characters", r.json()["errors"][0]["message"], path)
        self.assertEqual(self.request("GET", "/api/v1/cache/entries?q=zo%C3%AB", token=admin).code, 200)

    def test_numbers_are_ascii(self):
        admin = self.token("admin")
        for value in ("²", "５", "٣", "1_0", "+1", "1" * 19):
            for path in ("/api/v1/cache/entries?limit=", "/api/v1/audit?offset="):
                r = self.request("GET", path + quote(value), token=admin)
                self.assert_bad(r)
        self.assertEqual(self.request("GET", "/api/v1/cache/entries?limit=5", token=admin).code, 200)

    def test_path_ids_are_ascii_and_bounded(self):
        admin = self.token("admin")
        user_id = self.accounts["read-only"].id
        self.assertEqual(self.request("GET", f"/api/v1/users/{user_id}", token=admin).code, 200)
        fullwidth = quote(chr(0xFF10 + user_id))
        for path in (
            f"/api/v1/users/{fullwidth}",
            "/api/v1/users/" + "9" * 30,
            "/api/v1/users/%C2%B2",
        ):
            self.assert_bad(self.request("GET", path, token=admin), 404, "NOT_FOUND")
        self.assert_bad(self.request("DELETE", "/api/v1/cache/entries/" + "9" * 30, token=admin), 404, "NOT_FOUND")

    def test_console_file_with_nul(self):
        self.assert_bad(self.request("GET", "/ui/app.js%00.html"), 404, "NOT_FOUND")
        self.assert_bad(self.request("GET", "/ui/%00"), 404, "NOT_FOUND")

    def test_registry_list_cursor_with_nul(self):
        self.assert_bad(self.request("GET", "/v2/_catalog?last=%00"))

    def test_token_hours_are_ascii(self):
        header = {"Authorization": basic("admin", "admin-pw"), "Content-Type": "application/x-www-form-urlencoded"}
        for value in ("%EF%BC%95", "1_0", "1e1", "nan"):
            r = self.request("POST", "/token", headers=header, raw=f"expires_in={value}".encode())
            self.assert_bad(r)

    def test_upstream_credentials_and_routes(self):
        admin = self.token("admin")
        base = {"name": "u1", "url": "http://127.0.0.1:9"}
        for extra, key in (
            ({"username": "a\x00b", "password": "pw"}, "username"),
            ({"username": "a", "password": "p\x00w"}, "password"),
            ({"routes": ["team/\x00*"]}, "routes"),
        ):
            r = self.request("POST", "/api/v1/upstreams", {**base, **extra}, token=admin)
            self.assert_bad(r)
            self.assertIn(f"{key}: may not contain control characters", r.json()["errors"][0]["message"])
        self.assertEqual(self.request("POST", "/api/v1/upstreams", base, token=admin).code, 201)
