"""Two nodes on one PostgreSQL index deploy the same Maven release path at the same moment.

Issue 24 (5): both nodes used to find no row, both inserted, and the loser got
500 (``UniqueViolation``) in up to 8 of 12 rounds, its file left behind as an
orphan.  Now the loser gets 409 like any redeploy under ``redeploy = "deny"``,
and only the winner's file stays in the store.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import threading

from twisted.trial.unittest import SynchronousTestCase

from tests import pg_support
from tests.integration import push_support, support

ROUNDS = 12


def _files(root: str) -> set[str]:
    return {name for _, _, names in os.walk(root) for name in names}


class DeployRaceTests(SynchronousTestCase):
    def setUp(self):
        self.db_url = pg_support.fresh_database_url(self)
        self.data_dir = tempfile.mkdtemp(prefix="harbor-it-shared-")
        self.addCleanup(shutil.rmtree, self.data_dir, True)

    def node(self, name: str):
        config = support.maven_config([{"id": "releases", "type": "hosted"}])
        index = support._toml_table("[index]", {"url": self.db_url, "node_name": name, "pool_size": 4})
        srv = support.HarborServer(config + "\n" + index, data_dir=self.data_dir)
        self.addCleanup(srv.close)
        return srv

    def test_two_nodes_deploying_one_release_path_loser_gets_409(self):
        a = self.node("a")
        b = self.node("b")
        push_support.ensure_user(a, *push_support.WRITER, "read-write")
        auth = push_support.basic_header(*push_support.WRITER)["Authorization"]
        winners: set[str] = set()
        outcomes = []
        for i in range(ROUNDS):
            path = "/artifacts/releases/org/example/race/1.%d/race-1.%d.jar" % (i, i)
            bodies = [os.urandom(64 << 10), os.urandom(64 << 10)]
            connections = []
            for srv in (a, b):
                conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
                conn.connect()
                self.addCleanup(conn.close)
                connections.append(conn)
            start = threading.Barrier(2)
            statuses: list = [None, None]

            def deploy(k, conn=None, body=None, start=start, statuses=statuses, path=path):
                start.wait()
                conn.request("PUT", path, body=body, headers={"Authorization": auth})
                response = conn.getresponse()
                statuses[k] = (response.status, response.read())

            threads = [
                threading.Thread(target=deploy, args=(k,), kwargs={"conn": connections[k], "body": bodies[k]})
                for k in range(2)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            codes = sorted(s[0] for s in statuses)
            outcomes.append(codes)
            self.assertEqual(codes, [201, 409], "round %d: %r" % (i, statuses))
            winner = 0 if statuses[0][0] == 201 else 1
            loser_body = statuses[1 - winner][1]
            self.assertIn(b"CONFLICT", loser_body)
            winners.add(hashlib.sha256(bodies[winner]).hexdigest())
            status, _, got = support.http("GET", a.url + path, headers={"Authorization": auth})
            self.assertEqual((status, got), (200, bodies[winner]))
        print("rounds:", outcomes)
        # only the winners' files are stored; nothing is left in tmp/
        stored = _files(os.path.join(self.data_dir, "blobs"))
        self.assertEqual(stored, winners)
        self.assertEqual(_files(os.path.join(self.data_dir, "tmp")), set())
