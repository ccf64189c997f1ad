"""Upload sessions in the index: caps (429), no descriptor while idle, continued on another node or after a restart."""

from __future__ import annotations

import json
import os

from twisted.internet.defer import Deferred

from harbor_cache.service import HarborApp
from tests.unit.base import HostedRegistryCase, error_code, header, sha256

NAME = "team/app"


class UploadSessionTests(HostedRegistryCase):
    def wait(self, coro):
        return self.successResultOf(Deferred.fromCoroutine(coro))

    def start(self, r=None, user="admin"):
        response, body = self.fetch("POST", f"/v2/{NAME}/blobs/uploads/", user=user, app=r)
        return response, body

    def location(self, r=None, user="admin"):
        response, body = self.start(r, user)
        self.assertEqual(response.code, 202, body)
        return header(response, "Location")

    def patch_chunk(self, r: HarborApp | None, location, data, start):
        return self.fetch("PATCH", location, data, {"Content-Range": f"{start}-{start + len(data) - 1}"}, app=r)

    def test_per_user_cap_is_429_and_a_cancel_frees_a_slot(self):
        self.wait(self.app.settings.update([("uploads.max_sessions_per_user", "2")]))
        first = self.location(user="writer")
        self.location(user="writer")
        response, body = self.start(user="writer")
        self.assertEqual(response.code, 429)
        error = json.loads(body)["errors"][0]
        self.assertEqual(error["code"], "TOOMANYREQUESTS")
        self.assertEqual(error["detail"]["setting"], "uploads.max_sessions_per_user")
        self.assertEqual(header(response, "Retry-After"), "60")
        self.assertEqual(self.start(user="admin")[0].code, 202)  # another user is not affected
        self.assertEqual(self.fetch("DELETE", first, user="writer")[0].code, 204)
        self.assertEqual(self.start(user="writer")[0].code, 202)

    def test_overall_cap_is_429(self):
        self.wait(self.app.settings.update([("uploads.max_sessions", "3")]))
        for user in ("admin", "writer", "admin"):
            self.location(user=user)
        response, body = self.start(user="writer")
        self.assertEqual(
            (response.code, json.loads(body)["errors"][0]["detail"]["setting"]), (429, "uploads.max_sessions")
        )

    def test_idle_sessions_hold_no_file_descriptor(self):
        """Forty sessions with bytes in them: open descriptors do not grow with them."""
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(40):
            location = self.location()
            self.assertEqual(self.patch_chunk(None, location, b"abc", 0)[0].code, 202)
        self.assertLess(len(os.listdir("/proc/self/fd")) - before, 5)

    def test_patch_on_one_node_put_on_another(self):
        """Chunks on A and B and the PUT on A make one blob (A no longer has the hash state: it reads the file)."""
        b = self.other_node("b")
        data = os.urandom(5000)
        location = self.location()
        self.assertEqual(self.patch_chunk(None, location, data[:2000], 0)[0].code, 202)
        response, _ = self.patch_chunk(b, location, data[2000:4000], 2000)
        self.assertEqual((response.code, header(response, "Range")), (202, "0-3999"))
        response, body = self.fetch("GET", location)
        self.assertEqual(header(response, "Range"), "0-3999")
        response, body = self.fetch("PUT", f"{location}?digest={sha256(data)}", data[4000:])
        self.assertEqual(response.code, 201, body)
        self.assertEqual(self.fetch("GET", f"/v2/{NAME}/blobs/{sha256(data)}", app=b)[1], data)
        self.assertEqual(os.listdir(self.app.hosted.files.dir), [])

    def test_wrong_digest_after_node_switch_is_refused(self):
        b = self.other_node("b")
        location = self.location()
        self.patch_chunk(None, location, b"abc", 0)
        response, body = self.fetch("PUT", f"{location}?digest={sha256(b'abd')}", app=b)
        self.assertEqual((response.code, error_code(body)), (400, "DIGEST_INVALID"))
        self.assertEqual(self.fetch("GET", location)[0].code, 404)

    def test_session_survives_a_restart(self):
        location = self.location()
        self.patch_chunk(None, location, b"hello ", 0)
        restarted = self.other_node("local")  # same node name, empty memory
        self.patch_chunk(restarted, location, b"world", 6)
        response, body = self.fetch("PUT", f"{location}?digest={sha256(b'hello world')}", app=restarted)
        self.assertEqual(response.code, 201, body)

    def test_a_session_being_written_elsewhere_refuses_a_second_writer(self):
        """While another node holds the session for writing, a PATCH here is 416 and writes nothing."""
        location = self.location()
        session_id = location.rsplit("/", 1)[1]
        self.assertTrue(self.wait(self.app.index.claim_upload_write(session_id, "b", 0, self.clock.seconds(), 600)))
        response, body = self.patch_chunk(None, location, b"abc", 0)
        self.assertEqual((response.code, error_code(body)), (416, "BLOB_UPLOAD_INVALID"))
        self.assertEqual(os.path.getsize(os.path.join(self.app.hosted.files.dir, session_id)), 0)
        self.clock.advance(601)  # that node died: its hold expires
        self.assertEqual(self.patch_chunk(None, location, b"abc", 0)[0].code, 202)
