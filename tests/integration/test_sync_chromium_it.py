"""The console's Sync page, clicked through in Chromium against a live server and a real registry.

The admin opens Sync from the navigation, adds a rule through the form (a bad
glob first: the 400's message is shown), runs it, watches the last run turn
from running to succeeded (the page polls), and opens its history.  With
``HARBOR_UPDATE_DOCS=1`` the page is saved as docs/screenshots/sync.png.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import oci_support as oci
from tests.integration import support
from tests.integration import test_console_chromium_it as chromium

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 30
DOCS_SHOTS = os.path.join(support.REPO_ROOT, "docs", "screenshots")


def _selenium() -> None:
    try:
        from selenium import webdriver  # noqa: F401
    except ImportError:
        support.unavailable("selenium is not installed (pip install selenium)")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            support.unavailable("%s is missing (apt-get install chromium chromium-driver)" % path)


class SyncConsoleTests(SynchronousTestCase):
    def setUp(self) -> None:
        _selenium()

        self.reg, _ = support.shared_upstream()
        self.server = support.HarborServer(oci.harbor_config(self.reg.url))
        self.addCleanup(self.server.close)
        profile = tempfile.mkdtemp(prefix="harbor-it-sync-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        self.d = chromium.start_chromium(profile, window="1400,900")
        self.addCleanup(self.d.quit)

    def wait(self, condition, message=""):
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(
            self.d, WAIT, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
        ).until(condition, message)

    def css(self, selector: str):
        from selenium.webdriver.support import expected_conditions as ec

        return self.wait(ec.visibility_of_element_located(("css selector", selector)), "no visible %s" % selector)

    def text_of(self, selector: str, expected: str) -> None:
        self.wait(
            lambda d: expected in d.find_element("css selector", selector).text,
            "%s never read %r" % (selector, expected),
        )

    def fill(self, selector: str, text: str) -> None:
        element = self.css(selector)
        element.clear()
        element.send_keys(text)

    def test_add_run_and_watch(self) -> None:
        self.d.get(self.server.url + "/ui/#/login")
        self.css("#login-username").send_keys("admin")
        self.d.find_element("id", "login-password").send_keys(self.server.admin_password)
        self.d.find_element("id", "login-submit").click()
        link = self.wait(
            lambda d: [a for a in d.find_elements("css selector", "nav a") if a.text == "Sync"],
            "no Sync link in the navigation",
        )
        link[0].click()
        self.text_of("main h1", "Sync rules")
        self.text_of("#sync-rules", "No sync rule yet.")

        self.fill("#sync-upstream", "upstream")
        self.fill("#sync-repositories", "library/test")
        self.fill("#sync-tags", "[1]")
        self.fill("#sync-platforms", "linux/amd64")
        self.fill("#sync-interval", "3600")
        self.css("#sync-add").click()
        self.text_of("#sync-status", "is not a valid glob")

        self.fill("#sync-tags", "1, multi")
        self.css("#sync-add").click()
        self.text_of("#sync-status", "Rule 1 added.")
        self.text_of("table.sync-rules", "library/test")
        self.text_of("table.sync-rules", "never")

        self.css("table.sync-rules button.sync-run").click()
        self.text_of("#sync-status", "Rule 1 is running.")
        self.text_of("table.sync-rules", "succeeded")  # the page polls while the run goes
        self.css("table.sync-rules button.sync-history").click()
        self.text_of("#sync-history", "Runs of rule 1")
        self.wait(lambda d: len(d.find_elements("css selector", "table.sync-runs tbody tr")) == 1, "run not listed")
        self.text_of("table.sync-runs", "succeeded")

        shots = os.environ.get("HARBOR_SCREENSHOTS") or os.path.abspath("screenshots")
        os.makedirs(shots, exist_ok=True)
        path = os.path.join(shots, "sync.png")
        self.d.save_screenshot(path)
        if os.environ.get("HARBOR_UPDATE_DOCS") == "1":
            os.makedirs(DOCS_SHOTS, exist_ok=True)
            shutil.copy(path, os.path.join(DOCS_SHOTS, "sync.png"))
