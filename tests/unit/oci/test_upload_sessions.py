"""Upload sessions in the index: caps (429), no descriptor while idle, continued on another node or after a restart."""

from __future__ import annotations

import json
import os

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from tests.hosted_support import Registry, sha256

NAME = "team/app"


def other_node(r: Registry, node: str) -> Registry:
    """Another node on the same index and data directory: its own app (no shared memory)."""
    return r.other_node(node)


class UploadSessionTests(SynchronousTestCase):
    def setUp(self):
        self.r = Registry(self)

    def wait(self, coro):
        return self.successResultOf(Deferred.fromCoroutine(coro))

    def start(self, r=None, user="admin"):
        response, body = (r or self.r).request("POST", f"/v2/{NAME}/blobs/uploads/", user=user)
        return response, body

    def location(self, r=None, user="admin"):
        response, body = self.start(r, user)
        self.assertEqual(response.code, 202, body)
        return self.r.header(response, "Location")

    def patch(self, r, location, data, start):
        return r.request("PATCH", location, data, {"Content-Range": f"{start}-{start + len(data) - 1}"})

    def test_per_user_cap_is_429_and_a_cancel_frees_a_slot(self):
        self.wait(self.r.settings.update([("uploads.max_sessions_per_user", "2")]))
        first = self.location(user="writer")
        self.location(user="writer")
        response, body = self.start(user="writer")
        self.assertEqual(response.code, 429)
        error = json.loads(body)["errors"][0]
        self.assertEqual(error["code"], "TOOMANYREQUESTS")
        self.assertEqual(error["detail"]["setting"], "uploads.max_sessions_per_user")
        self.assertEqual(self.r.header(response, "Retry-After"), "60")
        self.assertEqual(self.start(user="admin")[0].code, 202)  # another user is not affected
        self.assertEqual(self.r.request("DELETE", first, user="writer")[0].code, 204)
        self.assertEqual(self.start(user="writer")[0].code, 202)

    def test_overall_cap_is_429(self):
        self.wait(self.r.settings.update([("uploads.max_sessions", "3")]))
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
            self.assertEqual(self.patch(self.r, location, b"abc", 0)[0].code, 202)
        self.assertLess(len(os.listdir("/proc/self/fd")) - before, 5)

    def test_patch_on_one_node_put_on_another(self):
        """Chunks on A and B and the PUT on A make one blob (A no longer has the hash state: it reads the file)."""
        b = other_node(self.r, "b")
        data = os.urandom(5000)
        location = self.location()
        self.assertEqual(self.patch(self.r, location, data[:2000], 0)[0].code, 202)
        response, _ = self.patch(b, location, data[2000:4000], 2000)
        self.assertEqual((response.code, self.r.header(response, "Range")), (202, "0-3999"))
        response, body = self.r.request("GET", location)
        self.assertEqual(self.r.header(response, "Range"), "0-3999")
        response, body = self.r.request("PUT", f"{location}?digest={sha256(data)}", data[4000:])
        self.assertEqual(response.code, 201, body)
        self.assertEqual(b.request("GET", f"/v2/{NAME}/blobs/{sha256(data)}")[1], data)
        self.assertEqual(os.listdir(self.r.hosted.files.dir), [])

    def test_wrong_digest_after_node_switch_is_refused(self):
        b = other_node(self.r, "b")
        location = self.location()
        self.patch(self.r, location, b"abc", 0)
        response, body = b.request("PUT", f"{location}?digest={sha256(b'abd')}")
        self.assertEqual((response.code, self.r.error_code(body)), (400, "DIGEST_INVALID"))
        self.assertEqual(self.r.request("GET", location)[0].code, 404)

    def test_session_survives_a_restart(self):
        location = self.location()
        self.patch(self.r, location, b"hello ", 0)
        restarted = other_node(self.r, "local")  # same node name, empty memory
        self.patch(restarted, location, b"world", 6)
        response, body = restarted.request("PUT", f"{location}?digest={sha256(b'hello world')}")
        self.assertEqual(response.code, 201, body)

    def test_a_session_being_written_elsewhere_refuses_a_second_writer(self):
        """While another node holds the session for writing, a PATCH here is 416 and writes nothing."""
        location = self.location()
        session_id = location.rsplit("/", 1)[1]
        self.assertTrue(self.wait(self.r.index.claim_upload_write(session_id, "b", 0, self.r.clock.seconds(), 600)))
        response, body = self.patch(self.r, location, b"abc", 0)
        self.assertEqual((response.code, self.r.error_code(body)), (416, "BLOB_UPLOAD_INVALID"))
        self.assertEqual(os.path.getsize(os.path.join(self.r.hosted.files.dir, session_id)), 0)
        self.r.clock.advance(601)  # that node died: its hold expires
        self.assertEqual(self.patch(self.r, location, b"abc", 0)[0].code, 202)
