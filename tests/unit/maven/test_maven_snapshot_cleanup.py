"""SNAPSHOT cleanup of hosted Maven repositories: the selection (pure) and the cleanup after a deploy (front, fakes).

``snapshot_keep = N`` keeps the N newest timestamped builds of a SNAPSHOT
version, removing every file of the others when the version's metadata is
deployed; a build the metadata lists always stays; ``snapshot_max_idle_days``
removes the artifact's SNAPSHOT versions nobody used for D days; each
cleanup is audited (``maven.snapshot_cleanup``).
"""

import hashlib
import json

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.core.operations.audit import ACTIONS
from harbor_cache.grammar.maven_metadata import MetadataInvalid
from harbor_cache.grammar.maven_snapshots import (
    SnapshotBuild,
    builds_in,
    builds_to_remove,
    idle_versions,
    listed_builds,
)
from harbor_cache.settings.startup import MavenRepositoryConfig
from tests.unit.base import MavenCacheCase, basic

DIR = "com/example/lib/2.0-SNAPSHOT"


def stamp(n: int) -> str:
    return f"20261201.1010{n:02d}"


def version_metadata(*builds: int) -> bytes:
    """A version-level maven-metadata.xml as mvn 3 writes it: <snapshot> the newest, one entry per file kind."""
    newest = max(builds)
    entries = "".join(
        f"<snapshotVersion>{'<classifier>sources</classifier>' if i else ''}<extension>jar</extension>"
        f"<value>2.0-{stamp(n)}-{n}</value><updated>20261201101010</updated></snapshotVersion>"
        for i, n in enumerate(builds)
    )
    return (
        f"<?xml version='1.0'?><metadata><groupId>com.example</groupId><artifactId>lib</artifactId>"
        f"<version>2.0-SNAPSHOT</version><versioning><snapshot><timestamp>{stamp(newest)}</timestamp>"
        f"<buildNumber>{newest}</buildNumber></snapshot><lastUpdated>20261201101010</lastUpdated>"
        f"<snapshotVersions>{entries}</snapshotVersions></versioning></metadata>"
    ).encode()


class SelectionTests(SynchronousTestCase):
    def test_builds_in(self):
        """Every file of a build (classifiers, checksums) under its build; other names under none."""
        names = [
            f"lib-2.0-{stamp(1)}-1.jar",
            f"lib-2.0-{stamp(1)}-1.jar.sha1",
            f"lib-2.0-{stamp(1)}-1-sources.jar",
            f"lib-2.0-{stamp(2)}-2.pom",
            "lib-2.0-SNAPSHOT.jar",
            "maven-metadata.xml",
            f"other-2.0-{stamp(1)}-1.jar",
            f"lib-2.0-{stamp(3)}-3x.jar",
        ]
        found = builds_in(names, "lib", "2.0-SNAPSHOT")
        self.assertEqual(
            found,
            {
                SnapshotBuild(1, stamp(1)): names[:3],
                SnapshotBuild(2, stamp(2)): [names[3]],
            },
        )
        self.assertEqual(builds_in(names, "lib", "2.0"), {})

    def test_listed_builds(self):
        self.assertEqual(
            listed_builds(version_metadata(2, 5)), {SnapshotBuild(5, stamp(5)), SnapshotBuild(2, stamp(2))}
        )
        self.assertEqual(listed_builds(b"<metadata><versioning/></metadata>"), set())
        self.assertRaises(MetadataInvalid, listed_builds, b"<!DOCTYPE x><metadata/>")

    def test_builds_to_remove(self):
        """The newest N (by build number) stay, and listed ones; 0 keeps all."""
        builds = [SnapshotBuild(n, stamp(n)) for n in (3, 1, 5, 2, 4)]
        self.assertEqual(builds_to_remove(builds, 2, []), [SnapshotBuild(n, stamp(n)) for n in (1, 2, 3)])
        self.assertEqual(
            builds_to_remove(builds, 2, [SnapshotBuild(2, stamp(2))]),
            [SnapshotBuild(1, stamp(1)), SnapshotBuild(3, stamp(3))],
        )
        self.assertEqual(builds_to_remove(builds, 0, []), [])
        self.assertEqual(builds_to_remove(builds, 9, []), [])

    def test_idle_versions(self):
        day = 86400.0
        used = {"1.0-SNAPSHOT": 10 * day, "2.0-SNAPSHOT": 19 * day, "3.0-SNAPSHOT": 20 * day}
        self.assertEqual(idle_versions(used, 25 * day, 5), ["1.0-SNAPSHOT", "2.0-SNAPSHOT"])
        self.assertEqual(idle_versions(used, 25 * day, 0), [])


class CleanupAfterDeployTests(MavenCacheCase):
    extra_repositories = (
        MavenRepositoryConfig(id="snaps", type="hosted", version_policy="snapshot", snapshot_keep=2),
        MavenRepositoryConfig(id="idle", type="hosted", snapshot_max_idle_days=3),
        MavenRepositoryConfig(id="all", type="hosted"),
    )

    def setUp(self):
        super().setUp()
        self.add_user("writer", "writer-pw", "read-write")

    def put(self, repo, path, body):
        headers = basic("writer", "writer-pw")
        response = self.successResultOf(self.request("PUT", f"/artifacts/{repo}/{path}", headers, body))
        self.successResultOf(self.read_body(response))
        self.assertIn(response.code, (200, 201), path)

    def status(self, repo, path):
        response = self.successResultOf(self.request("GET", f"/artifacts/{repo}/{path}"))
        self.successResultOf(self.read_body(response))
        return response.code

    def deploy_build(self, repo, n, listed=None):
        """One build as mvn deploys it: jar, its checksum, pom, then the version's metadata."""
        jar = f"{DIR}/lib-2.0-{stamp(n)}-{n}.jar"
        self.put(repo, jar, b"jar %d" % n)
        self.put(repo, jar + ".md5", self.md5(b"jar %d" % n))
        self.put(repo, f"{DIR}/lib-2.0-{stamp(n)}-{n}.pom", b"pom %d" % n)
        self.put(repo, f"{DIR}/maven-metadata.xml", version_metadata(*(listed or (n,))))
        return jar

    @staticmethod
    def md5(data):
        return hashlib.md5(data).hexdigest().encode()

    def audits(self):
        _, rows = self.successResultOf(self.drive(self.app.index.audit_page(offset=0, limit=50)))
        return [r for r in rows if r.action == "maven.snapshot_cleanup"]

    def test_keeps_the_newest_builds(self):
        """After five builds with keep = 2: builds 1-3 are 404 (every file), 4 and 5 and the metadata stay."""
        jars = [self.deploy_build("snaps", n) for n in range(1, 6)]
        for n, jar in enumerate(jars, 1):
            expected = 200 if n >= 4 else 404
            self.assertEqual(self.status("snaps", jar), expected, jar)
            self.assertEqual(self.status("snaps", jar + ".md5"), expected, jar)
            self.assertEqual(self.status("snaps", f"{DIR}/lib-2.0-{stamp(n)}-{n}.pom"), expected)
        self.assertEqual(self.status("snaps", f"{DIR}/maven-metadata.xml"), 200)
        self.assertIn("maven.snapshot_cleanup", ACTIONS)
        records = self.audits()
        self.assertEqual(len(records), 3)  # after builds 3, 4 and 5: one build each
        self.assertEqual({r.actor for r in records}, {"writer"})
        self.assertEqual({r.target for r in records}, {"snaps/" + DIR})
        removed = sorted(b for r in records for b in json.loads(r.detail)["builds"])
        self.assertEqual(removed, [f"2.0-SNAPSHOT {stamp(n)}-{n}" for n in (1, 2, 3)])
        files = [f for r in records for f in json.loads(r.detail)["files"]]
        self.assertIn(f"{DIR}/lib-2.0-{stamp(1)}-1.jar.md5", files)
        self.assertEqual(len(files), 9)  # jar, its .md5 and pom of three builds

    def test_listed_build_stays(self):
        """A build the deployed metadata still lists is not removed (what mvn resolves from it stays)."""
        jars = [self.deploy_build("snaps", n, listed=(1, n)) for n in range(1, 5)]
        self.assertEqual([self.status("snaps", j) for j in jars], [200, 404, 200, 200])

    def test_keep_absent_keeps_all(self):
        jars = [self.deploy_build("all", n) for n in range(1, 5)]
        self.assertEqual([self.status("all", j) for j in jars], [200] * 4)
        self.assertEqual(self.audits(), [])

    def test_idle_versions_removed(self):
        """An artifact's SNAPSHOT version unused for snapshot_max_idle_days goes whole; a used one stays."""
        self.put("idle", "com/example/lib/1.0-SNAPSHOT/lib-1.0-SNAPSHOT.jar", b"old")
        self.put("idle", "com/example/lib/1.5-SNAPSHOT/lib-1.5-SNAPSHOT.jar", b"used")
        self.put("idle", "com/example/lib/0.9/lib-0.9.jar", b"release")
        self.clock.advance(2 * 86400)
        self.assertEqual(self.status("idle", "com/example/lib/1.5-SNAPSHOT/lib-1.5-SNAPSHOT.jar"), 200)
        self.clock.advance(5)
        self.successResultOf(self.drive(self.app.access.flush()))
        self.clock.advance(2 * 86400)
        self.deploy_build("idle", 1)
        self.assertEqual(self.status("idle", "com/example/lib/1.0-SNAPSHOT/lib-1.0-SNAPSHOT.jar"), 404)
        self.assertEqual(self.status("idle", "com/example/lib/1.5-SNAPSHOT/lib-1.5-SNAPSHOT.jar"), 200)
        self.assertEqual(self.status("idle", "com/example/lib/0.9/lib-0.9.jar"), 200)  # releases never
        (record,) = self.audits()
        self.assertEqual(json.loads(record.detail)["idleVersions"], ["com/example/lib/1.0-SNAPSHOT"])
