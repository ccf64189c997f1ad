"""The dashboard in real Chromium with ``[storage] backend = "s3"`` (moto on loopback): its storage line
(``#dash-storage``) shows the bucket's bytes and this node's local-tier bytes, as ``/api/v1/cache/stats``
counts them, after a layer was pulled and committed to the bucket."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from tests import s3_support
from tests.integration import support
from tests.integration import test_console_chromium_it as chromium
from tests.integration import test_s3_storage_it as s3it


def format_size(n: int) -> str:
    """harbor_cache/ui/lib.js's formatSize."""
    if n < 1024:
        return f"{n} B"
    value, unit = float(n), 0
    units = ["B", "KB", "MB", "GB", "TB", "PB"]
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    return f"{value:.2f} {units[unit]}"


class DashboardStorageTests(SynchronousTestCase):
    def setUp(self) -> None:
        chromium._selenium()
        env = s3_support.clean_aws_environment().__enter__()
        self.addCleanup(env.__exit__)
        self.moto = s3it.Moto()
        self.addCleanup(self.moto.close)
        self.reg, self.images = support.shared_upstream()
        config = support.oci_config(self.reg.url, server={"public_url": "http://127.0.0.1:@PORT@"}, routes=["*"])
        self.srv = support.HarborServer(config + "\n" + s3it.storage_table(self.moto.endpoint))
        self.addCleanup(self.srv.close)
        self.profile = tempfile.mkdtemp(prefix="harbor-it-chromium-s3-")
        self.addCleanup(shutil.rmtree, self.profile, True)

    def test_dashboard_shows_bucket_and_local_tier_bytes(self) -> None:
        layer = self.images["images"]["single"]["layers"][0]["digest"]
        status, _, body = support.http("GET", self.srv.url + "/v2/library/test/blobs/" + layer)
        self.assertEqual(status, 200)
        self.assertIn(s3it.key_of(layer), self.moto.keys())
        token = self.srv.login()
        _, _, raw = support.http("GET", self.srv.url + "/api/v1/cache/stats", {"Authorization": "Bearer " + token})
        stats = json.loads(raw)
        self.assertEqual(stats["storage_backend"], "s3")
        self.assertGreaterEqual(stats["bucket_bytes"], len(body))
        self.assertGreaterEqual(stats["local_tier_bytes"], len(body))

        driver = chromium.start_chromium(self.profile)
        self.addCleanup(driver.quit)
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        driver.get(self.srv.url + "/ui/#/login")
        wait = WebDriverWait(
            driver, chromium.WAIT, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
        )
        wait.until(lambda d: d.find_elements("id", "login-username"))
        driver.find_element("id", "login-username").send_keys("admin")
        driver.find_element("id", "login-password").send_keys(self.srv.admin_password)
        driver.find_element("id", "login-submit").click()
        line = wait.until(lambda d: d.find_elements("id", "dash-storage"))[0].text
        self.assertEqual(
            line,
            f"Object storage: {format_size(stats['bucket_bytes'])} in the bucket, "
            f"{format_size(stats['local_tier_bytes'])} on this node's local tier",
        )
        shots = os.environ.get("HARBOR_SCREENSHOTS") or os.path.abspath("screenshots")
        os.makedirs(shots, exist_ok=True)
        driver.save_screenshot(os.path.join(shots, "dashboard-s3.png"))
