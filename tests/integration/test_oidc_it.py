"""OpenID Connect login against a real provider (tests/oidc_provider.py: authlib's authorization server on Flask).

One provider and one harbor-cache for the module.  The code flow is driven
over HTTP (the provider's login form posted like a browser would), then
clicked through in headless Chromium: the console's "Log in with Test OP",
the provider's login page, back in the console as alice; a CLI secret made
in the console's Account page then works as the password of Basic
authentication on ``/v2/``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
import urllib.parse

from twisted.trial.unittest import SynchronousTestCase

from tests import oidc_support
from tests.integration import support
from tests.integration.test_console_chromium_it import CHROMEDRIVER, CHROMIUM, start_chromium

WAIT = 20


def _cookie(headers) -> str:
    """``name=value`` of the state cookie in a response's Set-Cookie."""
    values = headers.get_all("Set-Cookie") or []
    found = [v.split(";")[0] for v in values if v.startswith("hc_oidc=")]
    assert found, values
    return found[0]


class OidcHttpFlowTests(SynchronousTestCase):
    def setUp(self):
        self.server, self.op = oidc_support.shared_server_and_provider()

    def log_in(self, username: str) -> str:
        """The whole authorization-code flow as a browser would run it; the console's token."""
        status, _, body = support.http("GET", self.server.url + "/api/v1/auth/methods")
        self.assertEqual((status, json.loads(body)["oidc"]["display_name"]), (200, "Test OP"))
        status, headers, _ = support.http("GET", self.server.url + "/api/v1/auth/oidc/login")
        self.assertEqual(status, 302)
        authorize = headers["Location"]
        self.assertTrue(authorize.startswith(self.op.issuer + "/authorize?"), authorize)
        cookie = _cookie(headers)
        status, _, page = support.http("GET", authorize)
        self.assertEqual(status, 200, page[:300])
        self.assertIn(b'id="op-username"', page)
        form = urllib.parse.urlencode({"username": username, "password": oidc_support.PASSWORDS[username]})
        status, headers, page = support.http(
            "POST", authorize, body=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        self.assertEqual(status, 302, page[:300])
        callback = headers["Location"]
        self.assertTrue(callback.startswith(self.server.url + "/api/v1/auth/oidc/callback?"), callback)
        status, headers, _ = support.http("GET", callback, headers={"Cookie": cookie})
        self.assertEqual(status, 302)
        console = headers["Location"]
        self.assertTrue(console.startswith("/ui/#/oidc?token="), console)
        return console.split("token=", 1)[1]

    def test_code_flow_gives_a_working_token(self):
        token = self.log_in("bob")
        status, _, body = support.http(
            "GET", self.server.url + "/api/v1/users/me/cli-secret", headers={"Authorization": "Bearer " + token}
        )
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body), {"username": "bob", "available": True, "has_secret": False})
        status, _, _ = support.http(
            "GET", self.server.url + "/api/v1/dashboard", headers={"Authorization": "Bearer " + token}
        )
        self.assertEqual(status, 200)
        admin = self.server.login()
        status, _, body = support.http(
            "GET", self.server.url + "/api/v1/users", headers={"Authorization": "Bearer " + admin}
        )
        bob = [u for u in json.loads(body) if u["username"] == "bob"]
        self.assertEqual([u["role"] for u in bob], ["read-only"])  # no group of bob's is mapped
        status, _, body = support.http(
            "GET", self.server.url + "/api/v1/audit?action=login.oidc", headers={"Authorization": "Bearer " + admin}
        )
        self.assertIn("bob", body.decode())

    def test_the_provider_insists_on_pkce(self):
        """The provider under test refuses an authorization request without S256 (so the flow above used it)."""
        status, headers, _ = support.http("GET", self.server.url + "/api/v1/auth/oidc/login")
        parts = urllib.parse.urlsplit(headers["Location"])
        query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if not k.startswith("code_challenge")]
        status, _, page = support.http("GET", self.op.issuer + "/authorize?" + urllib.parse.urlencode(query))
        self.assertEqual(status, 400)
        self.assertIn(b"PKCE required", page)

    def test_a_forged_state_is_refused_and_audited(self):
        status, headers, _ = support.http("GET", self.server.url + "/api/v1/auth/oidc/login")
        cookie = _cookie(headers)
        status, headers, _ = support.http(
            "GET", self.server.url + "/api/v1/auth/oidc/callback?code=x&state=forged", headers={"Cookie": cookie}
        )
        self.assertEqual(status, 302)
        self.assertIn("oidc_error=", headers["Location"])
        admin = self.server.login()
        status, _, body = support.http(
            "GET", self.server.url + "/api/v1/audit?action=login.failed", headers={"Authorization": "Bearer " + admin}
        )
        self.assertIn("state does not match", body.decode())
        self.assertNotIn(oidc_support.CLIENT_SECRET, self.server.log_text())


class OidcChromiumTests(SynchronousTestCase):
    """Issue 27 point 6: an OIDC user logs into the console in headless Chromium through the provider's page."""

    def setUp(self):
        try:
            import selenium  # noqa: F401
        except ImportError:
            support.unavailable("selenium is not installed (pip install selenium)")
        for path in (CHROMIUM, CHROMEDRIVER):
            if not os.path.exists(path):
                support.unavailable("%s is missing (apt-get install chromium chromium-driver)" % path)
        self.server, self.op = oidc_support.shared_server_and_provider()
        profile = tempfile.mkdtemp(prefix="harbor-it-oidc-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        self.d = start_chromium(profile, logs=True)
        self.addCleanup(self.d.quit)

    def wait(self, condition, message):
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        stale = [StaleElementReferenceException]
        return WebDriverWait(self.d, WAIT, poll_frequency=0.1, ignored_exceptions=stale).until(condition, message)

    def css(self, selector):
        from selenium.webdriver.support import expected_conditions as ec

        return self.wait(ec.visibility_of_element_located(("css selector", selector)), "no visible " + selector)

    def test_login_through_the_provider_page_then_a_cli_secret(self):
        self.d.get(self.server.url + "/ui/#/login")
        button = self.css("#login-oidc")
        self.assertEqual(button.text, "Log in with Test OP")
        button.click()
        self.css("#op-username").send_keys("alice")
        self.assertTrue(self.d.current_url.startswith(self.op.issuer + "/authorize?"))
        self.css("#op-password").send_keys(oidc_support.PASSWORDS["alice"])
        self.css("#op-submit").click()
        self.wait(lambda d: d.current_url.endswith("/ui/#/dashboard"), "not back on the dashboard")
        self.assertNotIn("token=", self.d.current_url)  # the fragment token is gone from the address bar
        self.assertEqual(self.css("#nav .who .user").text, "alice")
        self.wait(
            lambda d: any(e.text == "Dashboard" for e in d.find_elements("css selector", "main h1")),
            "dashboard never shown",
        )
        # the CLI secret: made on the Account page, shown once, then the password of Basic on /v2/
        self.d.get(self.server.url + "/ui/#/account")
        self.css("#cli-secret-generate").click()
        secret = self.css("#cli-secret-value").text
        self.assertGreaterEqual(len(secret), 32)
        basic = base64.b64encode(("alice:" + secret).encode()).decode()
        status, _, _ = support.http("GET", self.server.url + "/v2/", headers={"Authorization": "Basic " + basic})
        self.assertEqual(status, 200)
        wrong = base64.b64encode(b"alice:not-the-secret").decode()
        status, _, _ = support.http("GET", self.server.url + "/v2/", headers={"Authorization": "Basic " + wrong})
        self.assertEqual(status, 401)
        # the console session went on with the token minted for the new secret
        self.d.get(self.server.url + "/ui/#/dashboard")
        self.css("#nav .who .user")
        self.assertNotIn("/ui/#/login", self.d.current_url)
        severe = [
            e["message"]
            for e in self.d.get_log("browser")
            if e.get("level") == "SEVERE" and "/favicon.ico " not in e["message"]
        ]
        self.assertEqual(severe, [], "the browser logged errors")
