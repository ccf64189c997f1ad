"""The console's Garbage collection view, clicked through in Chromium against a live server.

A blob is pushed and never referenced, the grace period is set to 0; the
admin opens the view from the navigation, runs a dry run (nothing goes, the
run is listed), then a real run behind a confirmation (the blob goes).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import push_support, support
from tests.integration import test_console_chromium_it as chromium

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 15


def _selenium():
    try:
        from selenium import webdriver  # noqa: F401
    except ImportError:
        support.unavailable("selenium is not installed (pip install selenium)")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            support.unavailable("%s is missing (apt-get install chromium chromium-driver)" % path)


class GcConsoleTests(SynchronousTestCase):
    def setUp(self):
        _selenium()

        self.server = push_support.hosted_server(self)
        self.url = self.server.url
        token = self.server.login()
        status, _, body = support.http(
            "PUT",
            self.url + "/api/v1/config",
            headers={"Authorization": "Bearer " + token},
            body={"entries": [{"key": "gc.grace_seconds", "value": "0"}]},
        )
        self.assertEqual(status, 200, body)
        data = os.urandom(1000)
        self.blob = "sha256:" + hashlib.sha256(data).hexdigest()
        basic = base64.b64encode(("admin:" + self.server.admin_password).encode()).decode()
        status, _, body = support.http(
            "POST",
            "%s/v2/team/app/blobs/uploads/?digest=%s" % (self.url, self.blob),
            headers={"Authorization": "Basic " + basic, "Content-Type": "application/octet-stream"},
            body=data,
        )
        self.assertEqual(status, 201, body)
        self.basic = {"Authorization": "Basic " + basic}
        profile = tempfile.mkdtemp(prefix="harbor-it-gc-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        self.d = chromium.start_chromium(profile, window="1280,900")
        self.addCleanup(self.d.quit)

    def wait(self, condition, message=""):
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(
            self.d, WAIT, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
        ).until(condition, message)

    def css(self, selector):
        from selenium.webdriver.support import expected_conditions as ec

        return self.wait(ec.visibility_of_element_located(("css selector", selector)), "no visible %s" % selector)

    def text_of(self, selector, expected):
        self.wait(
            lambda d: expected in d.find_element("css selector", selector).text,
            "%s never read %r" % (selector, expected),
        )

    def test_dry_run_then_run(self):
        self.d.get(self.url + "/ui/#/login")
        self.css("#login-username").send_keys("admin")
        self.d.find_element("id", "login-password").send_keys(self.server.admin_password)
        self.d.find_element("id", "login-submit").click()
        link = self.wait(
            lambda d: [a for a in d.find_elements("css selector", "nav a") if a.text == "Garbage collection"],
            "no Garbage collection link in the navigation",
        )
        link[0].click()
        self.text_of("main h1", "Garbage collection")
        self.text_of("#gc-runs", "No run yet.")

        self.css("#gc-dry-run").click()
        self.text_of("#gc-status", "Would remove 0 manifests and 1 blobs")
        self.wait(lambda d: len(d.find_elements("css selector", "table.gc-runs tbody tr")) == 1, "dry run not listed")
        status, _, _ = support.http("HEAD", "%s/v2/team/app/blobs/%s" % (self.url, self.blob), headers=self.basic)
        self.assertEqual(status, 200)

        self.css("#gc-run").click()
        self.css("dialog.confirm button[data-confirm='yes']").click()
        self.text_of("#gc-status", "Removed 0 manifests and 1 blobs")
        self.wait(lambda d: len(d.find_elements("css selector", "table.gc-runs tbody tr")) == 2, "run not listed")
        status, _, _ = support.http("HEAD", "%s/v2/team/app/blobs/%s" % (self.url, self.blob), headers=self.basic)
        self.assertEqual(status, 404)
