"""The console's Robots page in real Chromium: create (secret shown once), disable, enable, rotate, delete;
and the audit page's actor-kind filter.

One live server (`push_support.hosted_server`); whether a secret works is
checked with Basic on ``/v2/`` over HTTP.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import push_support, support
from tests.integration import test_console_chromium_it as chromium
from tests.integration.test_console_chromium_it import _selenium

WAIT = 15
ROBOT = "robot$ci-a"


class RobotsConsoleTests(SynchronousTestCase):
    def setUp(self) -> None:
        _selenium()
        self.server = push_support.hosted_server(self)
        profile = tempfile.mkdtemp(prefix="harbor-it-chromium-robots-")
        self.addCleanup(shutil.rmtree, profile, True)
        self.d = chromium.start_chromium(profile, window="1400,900")
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

    def v2_status(self, secret: str) -> int:
        status, _, _ = support.http("GET", self.server.url + "/v2/", headers=push_support.basic_header(ROBOT, secret))
        return status

    def row_state(self, state: str) -> Any:
        return self.css('tr[data-name="%s"][data-state="%s"]' % (ROBOT, state))

    def shown_secret(self) -> str:
        panel = self.css("#robot-secret")
        self.assertIn("shown only this once", panel.text)
        panel.find_element("css selector", "button.copy")  # the copy button is there
        return str(panel.find_element("css selector", "code.value").text)

    def confirm(self) -> None:
        self.css("dialog.confirm button[data-confirm='yes']").click()

    def test_create_disable_rotate_delete(self) -> None:
        self.d.get(self.server.url + "/ui/#/login")
        self.css("#login-username").send_keys("admin")
        self.d.find_element("id", "login-password").send_keys(self.server.admin_password)
        self.d.find_element("id", "login-submit").click()
        self.heading("Dashboard")
        self.wait(lambda d: [a for a in d.find_elements("css selector", "nav a") if a.text == "Robots"])[0].click()
        self.heading("Robot accounts")

        self.css("#new-robot-name").send_keys("ci-a")
        self.css("#new-robot-description").send_keys("CI of team A")
        self.css("#new-robot-days").send_keys("30")
        self.d.find_element("css selector", "#create-robot button[type=submit]").click()
        secret = self.shown_secret()
        self.assertEqual(self.v2_status(secret), 200)
        row = self.row_state("active")
        self.assertIn("never used", row.find_element("css selector", "td.last-use").text)

        self.d.refresh()  # the secret is gone for good; the last use is now shown
        self.heading("Robot accounts")
        row = self.row_state("active")
        self.assertEqual(self.d.find_elements("css selector", "#robot-secret"), [])
        self.assertIn("127.0.0.1", row.find_element("css selector", "td.last-use").text)

        self.css('button[aria-label="Disable %s"]' % ROBOT).click()
        self.row_state("disabled")
        self.assertEqual(self.v2_status(secret), 401)
        self.css('button[aria-label="Enable %s"]' % ROBOT).click()
        self.row_state("active")
        self.assertEqual(self.v2_status(secret), 200)

        self.css('button[aria-label="Rotate the secret of %s"]' % ROBOT).click()
        self.confirm()
        self.wait(lambda d: self.shown_secret() != secret, "no new secret")
        new = self.shown_secret()
        self.assertEqual(self.v2_status(secret), 401)
        self.assertEqual(self.v2_status(new), 200)

        self.css('button[aria-label="Delete %s"]' % ROBOT).click()
        self.confirm()
        self.wait(lambda d: not d.find_elements("css selector", 'tr[data-name="%s"]' % ROBOT), "robot still listed")
        self.assertEqual(self.v2_status(new), 401)

        # The audit page: robot lifecycle records are the admin's (kind "users"); none is a robot's.
        self.d.get(self.server.url + "/ui/#/audit?actor_kind=user")
        self.heading("Audit log")
        self.assertEqual(self.css("#a-actor-kind").get_attribute("value"), "user")
        self.wait(lambda d: d.find_elements("css selector", 'tr.audit[data-action="robot.delete"]'), "no robot.delete")
        self.d.get(self.server.url + "/ui/#/audit?actor_kind=robot")
        self.wait(lambda d: self.css("#a-actor-kind").get_attribute("value") == "robot", "select not robot")
        self.css("tr.empty")
