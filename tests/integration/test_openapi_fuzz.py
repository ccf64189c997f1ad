"""schemathesis against the live server, driven by its own /api/v1/openapi.json.

The server runs in its own process (support.HarborServer); schemathesis
(from PyPI, CLI version 4) generates requests for every /api/v1 operation and
for /health, /healthz and /metrics, with a bounded number of examples and a
fixed seed (HARBOR_FUZZ_SEED overrides it), and fails on any 5xx or any
response that breaks the document: an undocumented status code, content type
or header, or a body that does not match its schema.

The /v2 and Maven operations are described in the document too but are not
fuzzed here: their answers depend on upstreams (a fuzzed pull of a random
name is a legitimate 502/503), and they have their own integration tests.

Two runs: the second covers PUT/DELETE /api/v1/users/{id}, which may demote
or delete the admin the token belongs to (after which every request is,
correctly, 401/403); the first covers everything else.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import support

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)
MAX_EXAMPLES = os.environ.get("HARBOR_FUZZ_EXAMPLES", "25")
SEED = os.environ.get("HARBOR_FUZZ_SEED", "20240115")
USER_MUTATIONS = "^(updateUser|deleteUser)$"
# Creating, changing or testing an upstream makes the server connect to the URL in
# the body: a fuzzed URL would be a real outbound target.  Unit tests cover them.
NOT_FUZZED = "^(updateUser|deleteUser|createUpstream|updateUpstream|testUpstream)$"


class OpenApiFuzzTests(SynchronousTestCase):
    def setUp(self):
        if importlib.util.find_spec("schemathesis") is None:
            support.unavailable("schemathesis is not installed (pip install schemathesis)")
        # An upstream that refuses connections: nothing here may reach the internet.
        config = support.oci_config("http://127.0.0.1:9")
        self.server = support.HarborServer(config)
        self.addCleanup(self.server.close)

    def schemathesis(self, *selection):
        token = self.server.login()
        cmd = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            self.server.url + "/api/v1/openapi.json",
            "--url",
            self.server.url,
            "-H",
            "Authorization: Bearer " + token,
            "--checks",
            CHECKS,
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            SEED,
            "--phases",
            "examples,coverage,fuzzing",
            "--workers",
            "1",
            "--request-timeout",
            "20",
            "--no-color",
            *selection,
        ]
        try:
            cp = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=900,
                stdin=subprocess.DEVNULL,
                env=dict(os.environ, SCHEMATHESIS_HOOKS=""),
            )
        except subprocess.TimeoutExpired as e:
            raise AssertionError("schemathesis did not finish in 900 s: %s" % (e.stdout or "")[-4000:]) from e
        output = cp.stdout + cp.stderr
        if cp.returncode != 0 and os.environ.get("HARBOR_FUZZ_OUTPUT"):
            with open(os.environ["HARBOR_FUZZ_OUTPUT"], "w") as f:  # the whole report, for a reader
                f.write(output)
        if cp.returncode != 0:
            raise AssertionError(
                "schemathesis failed (exit %d):\n%s\n--- server log ---\n%s"
                % (cp.returncode, output[-12000:], self.server.log_text()[-6000:])
            )
        self.assertIn("passed", output)
        return output

    def assert_server_sound(self):
        status, _, _ = support.http("GET", self.server.url + "/health")
        self.assertEqual(status, 200)
        log = self.server.log_text()
        self.assertNotIn("Traceback", log)
        self.assertNotIn("Unhandled", log)

    def test_management_api_conforms(self):
        """No 5xx and no response outside the document for /api/v1 (but user mutations), /health*, /metrics."""
        self.schemathesis(
            "--include-path-regex", "^/(api/v1/.*|health|healthz|metrics)$", "--exclude-operation-id-regex", NOT_FUZZED
        )
        self.assert_server_sound()

    def test_user_mutations_conform(self):
        """PUT and DELETE /api/v1/users/{id} with fuzzed ids and bodies: no 5xx, no undocumented answer."""
        # A few users to hit, besides the admin (which must survive: it is the last admin).
        token = self.server.login()
        for i in range(3):
            support.http(
                "POST",
                self.server.url + "/api/v1/users",
                headers={"Authorization": "Bearer " + token},
                body={"username": "fuzz%d" % i, "password": "pw", "role": "read-only"},
            )
        self.schemathesis("--include-operation-id-regex", USER_MUTATIONS)
        self.assert_server_sound()
