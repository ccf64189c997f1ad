"""The dashboard's traffic history in real Chromium (issue 29, point 7).

One live server (support.HarborServer) with nginx serving the small Maven
directory as ``central``; a few real downloads (a miss, then hits, and a
file the upstream does not have) before the browser signs in.  The story:
the dashboard shows the three charts and the bandwidth saved, and switching
the range to the last day and the last week redraws them.  Screenshot
``dashboard-history`` (into docs/screenshots/ with ``HARBOR_UPDATE_DOCS=1``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import oci_support as oci
from tests.integration import support
from tests.integration import test_console_chromium_it as chromium
from tests.integration.test_console_chromium_it import DOCS_SHOTS, WAIT, _selenium

JAR = "harness/small/1.0/small-1.0.jar"


class Story:
    """The server, its Maven upstream and the browser, shared by the tests of the class."""

    def __init__(self) -> None:

        self.closers: list[Any] = []
        try:
            self.maven = support.MavenUpstream()
            self.closers.append(self.maven.close)
            config = support.maven_config([{"id": "central", "url": self.maven.url}])
            self.server = support.HarborServer(config)
            self.closers.append(self.server.close)
            self.profile = tempfile.mkdtemp(prefix="harbor-it-history-")
            self.closers.append(lambda: shutil.rmtree(self.profile, ignore_errors=True))
            self.driver = chromium.start_chromium(self.profile, window="1280,1400")
            self.closers.append(self.driver.quit)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        while self.closers:
            try:
                self.closers.pop()()
            except Exception:
                pass


class HistoryChromiumTests(SynchronousTestCase):
    def setUp(self) -> None:
        _selenium()
        self.s = oci.class_fixture(self, Story, Story.close)
        self.d = self.s.driver
        self.url = self.s.server.url
        self.shots = os.environ.get("HARBOR_SCREENSHOTS") or os.path.abspath("screenshots")
        os.makedirs(self.shots, exist_ok=True)

    def wait(self, condition: Any, message: str = "") -> Any:
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(
            self.d, WAIT, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
        ).until(condition, message)

    def shot(self, name: str) -> None:
        path = os.path.join(self.shots, name + ".png")
        self.d.save_screenshot(path)
        if os.environ.get("HARBOR_UPDATE_DOCS") == "1":
            os.makedirs(DOCS_SHOTS, exist_ok=True)
            shutil.copy(path, os.path.join(DOCS_SHOTS, name + ".png"))

    def traffic(self) -> int:
        """A miss, two hits (counted) and a 404 (no cache status: not counted) through /artifacts; the jar's size."""
        size = 0
        for _ in range(3):
            status, _, body = support.http("GET", "%s/artifacts/central/%s" % (self.url, JAR))
            self.assertEqual(status, 200)
            size = len(body)
        status, _, _ = support.http("GET", self.url + "/artifacts/central/harness/nothing/1.0/nothing-1.0.jar")
        self.assertEqual(status, 404)
        return size

    def chart_total(self, chart_id: str) -> int:
        total = self.d.execute_script(
            "const e = document.getElementById(arguments[0]); return e ? e.getAttribute('data-total') : null", chart_id
        )
        return int(total) if total is not None else -1

    def test_dashboard_charts_after_traffic_and_range_switch(self) -> None:
        size = self.traffic()
        # The API the charts read: the same figures
        token = self.s.server.login()
        status, _, body = support.http(
            "GET", self.url + "/api/v1/dashboard/history?range=hour", headers={"Authorization": "Bearer " + token}
        )
        self.assertEqual(status, 200)
        data = json.loads(body)
        requests = {status: sum(values) for status, values in data["series"]["requests"].items()}
        # the miss, then two answers from the cache (hit, or coalesced while the first one's entry is committed)
        self.assertEqual(requests.pop("miss"), 1)
        self.assertEqual(sum(requests.values()), 2)
        self.assertGreaterEqual(data["totals"]["saved_bytes"], 2 * size)

        self.d.get(self.url + "/ui/#/login")
        self.wait(lambda d: d.find_elements("id", "login-username"), "no login form")
        self.d.find_element("id", "login-username").send_keys("admin")
        self.d.find_element("id", "login-password").send_keys(self.s.server.admin_password)
        self.d.find_element("id", "login-submit").click()
        self.wait(lambda d: self.chart_total("chart-requests") >= 3, "the requests chart never showed the traffic")
        saved = self.d.find_element("id", "history-saved").text
        self.assertRegex(saved, r"^saved .+ \(\d+%\)$")
        self.assertGreater(len(self.d.find_elements("css selector", "#chart-requests g.bar rect")), 0)
        self.assertEqual(self.chart_total("chart-bytes"), data["totals"]["served_bytes"])
        legend = [
            li.text.split(" ")[0] for li in self.d.find_elements("css selector", "#history figure:first-of-type li")
        ]
        self.assertEqual(sorted(legend), sorted(["miss", *requests]))
        self.d.execute_script("document.getElementById('history').scrollIntoView()")
        self.shot("dashboard-history")

        for name in ("day", "week"):
            self.d.find_element("css selector", '#history-range button[data-range="%s"]' % name).click()
            self.wait(
                lambda d, name=name: d.find_element("id", "history-charts").get_attribute("data-range") == name,
                "the %s range was never drawn" % name,
            )
            pressed = self.d.find_element("css selector", '#history-range [aria-pressed="true"]')
            self.assertEqual(pressed.get_attribute("data-range"), name)
            self.assertGreaterEqual(self.chart_total("chart-requests"), 3)
        self.assertEqual(self.d.execute_script("return window.__xss === undefined"), True)
