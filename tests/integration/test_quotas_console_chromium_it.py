"""The console's Quotas page in real Chromium: add a quota, see its usage bar, a bad glob refused inline, delete it.

One live server (support.HarborServer, hosted names only) and a blob of
250 bytes pushed into ``team-a/x`` over HTTP, so the page has usage to show.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import push_support, support
from tests.integration import test_console_chromium_it as chromium
from tests.integration.test_console_chromium_it import _selenium

WAIT = 15


class QuotaConsoleTests(SynchronousTestCase):
    def setUp(self) -> None:
        _selenium()

        self.server = push_support.hosted_server(self)
        profile = tempfile.mkdtemp(prefix="harbor-it-chromium-quota-")
        self.addCleanup(shutil.rmtree, profile, True)
        self.d = chromium.start_chromium(profile, window="1280,900")
        self.addCleanup(self.d.quit)

    def wait(self, condition: Callable[[Any], Any], message: str = "") -> Any:
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(
            self.d, WAIT, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
        ).until(condition, message)

    def css(self, selector: str) -> Any:
        from selenium.webdriver.support import expected_conditions as ec

        return self.wait(ec.visibility_of_element_located(("css selector", selector)), "no visible %s" % selector)

    def heading(self, text: str) -> None:
        self.wait(
            lambda d: any(e.text == text for e in d.find_elements("css selector", "main h1")), "no heading %r" % text
        )

    def push_blob(self, name: str, data: bytes) -> None:
        basic = base64.b64encode(("admin:" + self.server.admin_password).encode()).decode()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, _, body = support.http(
            "POST",
            "%s/v2/%s/blobs/uploads/?digest=%s" % (self.server.url, name, digest),
            headers={"Authorization": "Basic " + basic, "Content-Type": "application/octet-stream"},
            body=data,
        )
        self.assertEqual(status, 201, body)

    def add(self, repositories: str, max_bytes: int) -> None:
        for field, value in (("#new-quota-repositories", repositories), ("#new-quota-max-bytes", str(max_bytes))):
            box = self.css(field)
            box.clear()
            box.send_keys(value)
        self.d.find_element("css selector", "#create-quota button[type=submit]").click()

    def test_add_see_usage_refuse_and_delete(self) -> None:
        self.push_blob("team-a/x", b"q" * 250)
        self.d.get(self.server.url + "/ui/#/login")
        self.css("#login-username").send_keys("admin")
        self.d.find_element("id", "login-password").send_keys(self.server.admin_password)
        self.d.find_element("id", "login-submit").click()
        self.heading("Dashboard")
        self.wait(lambda d: [a for a in d.find_elements("css selector", "nav a") if a.text == "Quotas"])[0].click()
        self.heading("Quotas")
        self.css("#no-quotas")

        self.add("team-a/*", 1000)
        row = self.css('tr[data-repositories="team-a/*"]')
        bar = row.find_element("css selector", "progress")
        self.assertEqual(bar.get_attribute("value"), "250")
        self.assertIn("(25%)", row.text)
        self.assertIn("0", row.find_element("css selector", "td.tags").text)

        self.add("Bad Glob", 5)
        error = self.css("#create-quota-error")
        self.assertIn("bad repository glob", error.text)

        self.d.find_element("css selector", 'button[aria-label="Delete quota team-a/*"]').click()
        self.assertIn("Delete the quota on team-a/*", self.css("dialog.confirm p").text)
        self.css("dialog.confirm button[data-confirm='yes']").click()
        self.css("#no-quotas")
        self.assertEqual(self.d.find_elements("css selector", 'tr[data-repositories="team-a/*"]'), [])
