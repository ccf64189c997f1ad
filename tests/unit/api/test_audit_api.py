"""The audit log's filters (time range, routine logins) and its CSV / JSON export (api/audit.py, issue 29)."""

from __future__ import annotations

import csv
import io
import json

from harbor_cache.grammar.timestamps import parse_iso8601
from tests.unit.api.test_console_api import ConsoleCase


class TimestampTests(ConsoleCase):
    def test_parse_iso8601(self) -> None:
        """Dates, times with or without Z or an offset; UTC when no zone; junk is None."""
        self.assertEqual(parse_iso8601("2023-11-14T22:13:20Z"), 1700000000.0)
        self.assertEqual(parse_iso8601("2023-11-14T22:13:20"), 1700000000.0)
        self.assertEqual(parse_iso8601("2023-11-14T23:13:20+01:00"), 1700000000.0)
        self.assertEqual(parse_iso8601("2023-11-14"), 1699920000.0)
        for bad in ("", "yesterday", "2023-13-01", "1700000000", "2023-11-14T25:00"):
            self.assertIsNone(parse_iso8601(bad), bad)


class AuditFilterTests(ConsoleCase):
    def seed(self) -> None:
        """setUp's admin login at T0 (22:13:20Z), then one record a minute."""
        for target in ("a", "b", "c"):
            self.clock.advance(60)
            self.wait(self.audit.record("config.update", actor="admin", target=target, detail={"value": "=1+2"}))

    def targets(self, query: str) -> list:
        return [e["target"] for e in self.get("/api/v1/audit" + query)["entries"]]

    def test_time_range(self) -> None:
        """since is inclusive, until exclusive; a date alone is midnight UTC."""
        self.seed()
        self.assertEqual(self.targets("?action=config&since=2023-11-14T22:15:20Z"), ["c", "b"])
        self.assertEqual(self.targets("?action=config&until=2023-11-14T22:15:20Z"), ["a"])
        self.assertEqual(self.targets("?since=2023-11-14T22:14:20&until=2023-11-14T22:15:21Z"), ["b", "a"])
        self.assertEqual(self.targets("?action=config&since=2023-11-14"), ["c", "b", "a"])
        self.assertEqual(self.targets("?since=2023-11-15"), [])

    def test_bad_times_are_400(self) -> None:
        for query in ("since=yesterday", "until=2023-02-30", "since=2023-11-15&until=2023-11-14", "logins=maybe"):
            r = self.request("GET", "/api/v1/audit?" + query, token=self.admin)
            self.assert_error(r, 400, "BAD_REQUEST")
            self.assert_error(
                self.request("GET", "/api/v1/audit/export?" + query, token=self.admin), 400, "BAD_REQUEST"
            )

    def test_routine_logins_hidden_on_request(self) -> None:
        """logins=hide drops successful logins only; failed ones stay; the default shows everything."""
        self.request("POST", "/api/v1/auth/login", {"username": "admin", "password": "nope"})
        self.login("admin")
        actions = [e["action"] for e in self.get("/api/v1/audit?logins=hide")["entries"]]
        self.assertEqual(actions, ["login.failed"])
        self.assertEqual(
            [e["action"] for e in self.get("/api/v1/audit")["entries"]], ["login", "login.failed", "login"]
        )

    def test_export_csv(self) -> None:
        """Same filters, a CSV download with detail as JSON and formula cells defused."""
        self.seed()
        r = self.request("GET", "/api/v1/audit/export?action=config&since=2023-11-14T22:15:00Z", token=self.admin)
        self.assertEqual(r.code, 200, r.body)
        self.assertEqual(r.header("Content-Type"), b"text/csv; charset=utf-8")
        self.assertEqual(r.header("Content-Disposition"), b'attachment; filename="audit.csv"')
        self.assertEqual(r.header("X-Audit-Truncated"), b"false")
        rows = list(csv.reader(io.StringIO(r.body.decode())))
        self.assertEqual(rows[0], ["id", "at", "actor", "action", "target", "client", "detail"])
        self.assertEqual(
            [(row[1], row[3], row[4]) for row in rows[1:]],
            [
                ("2023-11-14T22:16:20Z", "config.update", "c"),
                ("2023-11-14T22:15:20Z", "config.update", "b"),
            ],
        )
        self.assertEqual(rows[1][6], '{"value": "=1+2"}')  # the JSON object starts with {: kept as is

    def test_export_json_is_bounded(self) -> None:
        """At most audit.export_max_rows, newest first; X-Audit-Truncated says more matched."""
        self.seed()
        self.wait(self.settings.update([("audit.export_max_rows", "2")]))
        r = self.request("GET", "/api/v1/audit/export?format=json", token=self.admin)
        self.assertEqual(r.code, 200, r.body)
        self.assertEqual(r.header("Content-Type"), b"application/json")
        self.assertEqual(r.header("X-Audit-Truncated"), b"true")
        body = json.loads(r.body)
        self.assertEqual((body["total"], body["truncated"]), (4, True))
        self.assertEqual([e["target"] for e in body["entries"]], ["c", "b"])

    def test_export_is_admin_only(self) -> None:
        r = self.request("GET", "/api/v1/audit/export", token=self.token("read-write"))
        self.assert_error(r, 403, "DENIED")
        self.assert_error(self.request("GET", "/api/v1/audit/export?format=xml", token=self.admin), 400, "BAD_REQUEST")
