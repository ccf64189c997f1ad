"""Issue 29 points 3 and 4 in real Chromium: upstreams managed from the console, an audit log an operator reads.

Same live server and browser as test_console_chromium_it (its `Console`
fixture: one config-file upstream ``upstream``, Maven repositories
``central`` and ``secret``).  Stories: add an upstream (a 400 shown next to
its field, fixed, saved), test it, edit it, delete it after a confirmation
naming it; a config-file upstream has no edit or delete and names the file;
Maven repositories read "not probed"; the audit log's filters, its details
as fields, routine logins hidden, and its CSV export.  Screenshots
``upstreams-edit.png`` and ``audit.png`` (see test_console_chromium_it for
``HARBOR_UPDATE_DOCS``).
"""

from __future__ import annotations

import csv
import io

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import support
from tests.integration import test_console_chromium_it as base  # (a module: its TestCase is not collected here)


class UpstreamAuditStories(SynchronousTestCase):
    setUp = base.ConsoleTests.setUp
    wait = base.ConsoleTests.wait
    css = base.ConsoleTests.css
    all = base.ConsoleTests.all
    heading = base.ConsoleTests.heading
    open = base.ConsoleTests.open
    shot = base.ConsoleTests.shot
    login = base.ConsoleTests.login
    click_link = base.ConsoleTests.click_link
    hash_params = base.ConsoleTests.hash_params
    downloaded = base.ConsoleTests.downloaded
    api = base.ConsoleTests.api

    def row(self, name):
        return self.css('tr.upstream[data-name="%s"]' % name)

    def type_into(self, field, text):
        box = self.css("#uf-" + field)
        box.clear()
        box.send_keys(text)

    def test_a_add_with_inline_error_then_saved(self):
        """A bad URL is refused next to the URL field; fixed, the upstream is saved and listed as the API's."""
        self.login()
        self.open("#/upstreams")
        self.heading("Upstreams")
        self.css("#upstream-add").click()
        self.type_into("name", "mirror")
        self.type_into("url", "ftp://127.0.0.1:1")
        self.type_into("prefix", "mirror")
        self.css("#uf-save").click()
        error = self.wait(lambda d: self.css("#uf-url-error").text, message="no error next to the URL")
        self.assertIn("url", error)
        self.assertEqual(self.css("#uf-url").get_attribute("aria-invalid"), "true")
        self.assertEqual(self.d.find_element("id", "uf-name-error").text, "")  # (empty: hidden)
        self.shot("upstreams-edit")
        self.type_into("url", self.c.fault.url)
        self.css("#uf-save").click()
        self.wait(lambda d: "Saved upstream mirror" in self.css("#upstreams-done").text)
        self.assertEqual(self.row("mirror").get_attribute("data-managed-by"), "api")
        status, listed = self.api("GET", "/api/v1/upstreams")
        mirror = [u for u in listed["upstreams"] if u["name"] == "mirror"][0]
        self.assertEqual((mirror["url"], mirror["prefix"]), (self.c.fault.url, "mirror"))

    def test_b_test_and_edit(self):
        """Test answers reachability in the form; an edit keeps the credentials unless given, and says so."""
        self.login()
        self.open("#/upstreams")
        self.row("mirror").find_element("css selector", "button.edit").click()
        self.assertIn("drops the stored credentials", self.css("#uf-credentials-help").text)
        self.css("#uf-test").click()
        self.wait(lambda d: "Reachable" in self.css("#uf-test-result").text, message="no test result")
        self.type_into("priority", "7")
        self.type_into("password", "s3cret")
        self.css("#uf-save").click()
        self.wait(lambda d: "Saved upstream mirror" in self.css("#upstreams-done").text)
        status, listed = self.api("GET", "/api/v1/upstreams")
        mirror = [u for u in listed["upstreams"] if u["name"] == "mirror"][0]
        self.assertEqual((mirror["priority"], mirror["has_credentials"]), (7, True))
        self.assertNotIn("s3cret", self.d.page_source)
        self.row("mirror").find_element("css selector", "button.edit").click()
        self.assertEqual(self.css("#uf-password").get_attribute("value"), "")
        self.assertIn("leave empty to keep", self.css("#uf-password").get_attribute("placeholder"))

    def test_c_delete_after_confirmation(self):
        """Delete asks first, naming the upstream; cancel keeps it, confirm removes it."""
        self.login()
        self.open("#/upstreams")
        self.row("mirror").find_element("css selector", "button.delete").click()
        dialog = self.css("dialog.confirm")
        self.assertIn("Delete upstream mirror", dialog.text)
        dialog.find_element("css selector", '[data-confirm="no"]').click()
        self.assertTrue(self.row("mirror"))
        self.row("mirror").find_element("css selector", "button.delete").click()
        self.css('dialog.confirm [data-confirm="yes"]').click()
        self.wait(lambda d: "Deleted upstream mirror" in self.css("#upstreams-done").text)
        self.assertEqual(self.all('tr.upstream[data-name="mirror"]'), [])

    def test_d_config_managed_is_read_only(self):
        """The config file's upstream and the Maven repositories have no edit or delete; the note names the file."""
        self.login()
        self.open("#/upstreams")
        for name in ("upstream", "central"):
            row = self.row(name)
            self.assertEqual(row.find_elements("css selector", "button.edit, button.delete"), [])
            self.assertIn(self.c.server.config_path, row.text)
        self.assertIn(self.c.server.config_path, self.css("#upstreams-config-note").text)
        self.assertEqual(self.row("central").find_element("css selector", ".badge.not_probed").text, "not probed")

    def test_e_audit_filters_fields_export(self):
        """Routine logins hidden (toggle shows them), details as fields, action names unbroken, CSV export."""
        support.http("POST", self.url + "/api/v1/auth/login", body={"username": "admin", "password": "nope"})
        self.login()
        self.open("#/audit")
        self.heading("Audit log")
        actions = lambda: [r.get_attribute("data-action") for r in self.all("tr.audit")]  # noqa: E731
        self.wait(lambda d: "upstream.delete" in actions(), message="no upstream.delete record")
        self.assertNotIn("login", actions())
        self.assertIn("login.failed", actions())
        cell = self.css('tr.audit[data-action="upstream.create"] td.detail')
        self.assertEqual(cell.find_elements("css selector", "dl.fields dt")[0].text.rstrip(":"), "fields")
        self.assertNotIn("{", cell.text)
        code = self.css('tr.audit[data-action="login.failed"] td.action code')
        self.assertEqual(code.value_of_css_property("white-space"), "nowrap")
        font = float(code.value_of_css_property("font-size").rstrip("px"))
        self.assertLess(code.size["height"], 2 * font)  # one line: "login.failed" is not broken
        self.shot("audit")
        self.css("#a-logins").click()
        self.css("#audit-filters button[type=submit]").click()
        self.wait(lambda d: "login" in actions(), message="the toggle did not show logins")
        self.assertEqual(self.hash_params().get("logins"), "show")
        self.css("#a-actor").send_keys("admin")
        from selenium.webdriver.support.ui import Select

        Select(self.css("#a-action")).select_by_value("upstream")
        self.d.execute_script("arguments[0].value = '2020-01-01T00:00'", self.css("#a-since"))
        self.css("#audit-filters button[type=submit]").click()
        self.wait(lambda d: self.hash_params().get("action") == "upstream")
        self.wait(lambda d: set(actions()) == {"upstream.create", "upstream.update", "upstream.delete"})
        self.assertTrue(self.hash_params().get("since", "").startswith("2020-01-01T"))
        export = self.css("#audit-export-csv")
        self.assertIn("action=upstream", export.get_attribute("data-href"))
        export.click()
        data = self.downloaded("audit.csv").decode()
        self.assertTrue(data.startswith("id,at,actor,action,target,client,detail"))
        exported = {row[3] for row in list(csv.reader(io.StringIO(data)))[1:]}
        self.assertEqual(exported, {"upstream.create", "upstream.update", "upstream.delete"})
