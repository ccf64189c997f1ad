"""The console's Policies page in real Chromium (issue 28, points 2 and 4).

A live server with a hosted repository ``team/app`` (tags ``old`` then ``new``,
pushed through /v2).  The admin logs in, opens *Policies* from the nav, adds
a retention rule (keep the last one), sees its dry run list ``team/app:old``
and nothing deleted, adds an immutable-tag rule (a bad glob first: the API's
400 is shown inline), and deletes both rules.  Headless, sandbox and GPU off,
fresh profile; only 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import oci_support as oci
from tests.integration import push_support, support
from tests.integration import test_console_chromium_it as chromium
from tests.integration.test_console_chromium_it import WAIT, _selenium


def _push(server, repo, tag, payload):
    auth = {"Authorization": "Basic " + base64.b64encode(("admin:" + server.admin_password).encode()).decode()}
    config = json.dumps({"architecture": "amd64", "os": "linux", "payload": payload}).encode()
    digest = oci.sha256_digest(config)
    status, _, body = support.http(
        "POST",
        "%s/v2/%s/blobs/uploads/?digest=%s" % (server.url, repo, digest),
        headers=dict(auth, **{"Content-Type": "application/octet-stream"}),
        body=config,
    )
    assert status == 201, (status, body)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": len(config)},
        "layers": [],
    }
    status, _, body = support.http(
        "PUT",
        "%s/v2/%s/manifests/%s" % (server.url, repo, tag),
        headers=dict(auth, **{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}),
        body=json.dumps(manifest).encode(),
    )
    assert status == 201, (status, body)


class PoliciesConsoleTests(SynchronousTestCase):
    def setUp(self):
        _selenium()

        self.server = push_support.hosted_server(self)
        self.url = self.server.url
        _push(self.server, "team/app", "old", "1")
        _push(self.server, "team/app", "new", "2")
        profile = tempfile.mkdtemp(prefix="harbor-it-policies-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        self.d = chromium.start_chromium(profile, window="1280,900")
        self.addCleanup(self.d.quit)
        self.shots = os.environ.get("HARBOR_SCREENSHOTS") or os.path.abspath("screenshots")
        os.makedirs(self.shots, exist_ok=True)

    def wait(self, condition, message=""):
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(
            self.d, WAIT, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
        ).until(condition, message)

    def css(self, selector):
        from selenium.webdriver.support import expected_conditions as ec

        return self.wait(ec.visibility_of_element_located(("css selector", selector)), "no visible %s" % selector)

    def all(self, selector):
        return self.d.find_elements("css selector", selector)

    def api(self, path):
        status, _, data = support.http(
            "GET", self.url + path, headers={"Authorization": "Bearer " + self.server.login()}
        )
        assert status == 200, (status, data)
        return json.loads(data)

    def test_policies_page(self):
        self.d.get(self.url + "/ui/#/login")
        self.css("#login-username").send_keys("admin")
        self.d.find_element("id", "login-password").send_keys(self.server.admin_password)
        self.d.find_element("id", "login-submit").click()
        self.wait(lambda d: any(a.text == "Policies" for a in self.all("nav a")), "no Policies link")
        [a for a in self.all("nav a") if a.text == "Policies"][0].click()
        self.wait(lambda d: any(e.text == "Policies" for e in self.all("main h1")), "no Policies heading")
        self.css("#no-retention")

        # a retention rule, then its dry run
        self.css("#retention-repositories").send_keys("team/*")
        self.d.find_element("id", "retention-keep-last").send_keys("1")
        self.d.find_element("id", "add-retention").find_element("css selector", "button[type=submit]").click()
        row = self.css("tr.retention-rule")
        self.assertIn("last 1", row.text)
        rule_id = self.api("/api/v1/retention")["rules"][0]["id"]
        self.css("button[aria-label='Dry run of retention rule %d']" % rule_id).click()
        self.css("tr.doomed[data-tag='team/app:old']")
        self.assertEqual([r.get_attribute("data-tag") for r in self.all("tr.doomed")], ["team/app:old"])
        status, _, body = support.http(
            "GET", self.url + "/v2/team/app/tags/list", headers=push_support.admin_basic(self.server)
        )
        self.assertEqual(sorted(json.loads(body)["tags"]), ["new", "old"])  # a dry run deletes nothing

        # an immutable-tag rule: a bad glob is the API's 400 inline, a good one is listed
        self.css("#immutable-repositories").send_keys("team/[x]")
        self.d.find_element("id", "immutable-tags").send_keys("v*")
        self.d.find_element("id", "add-immutable").find_element("css selector", "button[type=submit]").click()
        self.assertIn("not a valid glob", self.css("#immutable-error").text)
        field = self.d.find_element("id", "immutable-repositories")
        field.clear()
        field.send_keys("team/*")
        self.d.find_element("id", "add-immutable").find_element("css selector", "button[type=submit]").click()
        self.css("tr.immutable-rule")
        self.d.save_screenshot(os.path.join(self.shots, "policies.png"))
        self.assertEqual(
            [(r["repositories"], r["tags"]) for r in self.api("/api/v1/immutable-tags")["rules"]], [("team/*", "v*")]
        )

        # delete both
        immutable_id = self.api("/api/v1/immutable-tags")["rules"][0]["id"]
        self.css("button[aria-label='Delete immutable-tag rule %d']" % immutable_id).click()
        self.assertIn("Delete immutable-tag rule %d (team/*: v*)" % immutable_id, self.css("dialog.confirm p").text)
        self.css("dialog.confirm button[data-confirm='yes']").click()
        self.css("#no-immutable")
        self.css("button[aria-label='Delete retention rule %d']" % rule_id).click()
        self.assertIn("Delete retention rule %d on " % rule_id, self.css("dialog.confirm p").text)
        self.css("dialog.confirm button[data-confirm='yes']").click()
        self.css("#no-retention")
        self.assertEqual(self.api("/api/v1/retention")["rules"], [])
