"""version_policy of hosted Maven repositories: the path's version (MavenPath), the decision, the config, the PUT.

A SNAPSHOT into a ``release`` repository, or a release into a ``snapshot``
one, is 400 with the reason in the status line (what mvn prints), decided
from the path before the body is read; artifact-level metadata is always
taken; ``mixed`` (the default) takes both.
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.grammar.maven_paths import MavenPath, is_snapshot_version
from harbor_cache.grammar.maven_snapshots import policy_refusal
from harbor_cache.settings.startup import ConfigError, MavenRepositoryConfig, parse_config
from tests.unit.base import MavenCacheCase, basic

SNAP_JAR = "com/example/lib/2.0-SNAPSHOT/lib-2.0-20261201.101010-1.jar"
REL_JAR = "com/example/lib/1.0/lib-1.0.jar"


class MavenPathVersionTests(SynchronousTestCase):
    def test_version_of_files(self):
        """A file's version is its directory; artifact/group-level metadata and short paths have none."""
        cases = {
            REL_JAR: "1.0",
            REL_JAR + ".sha1": "1.0",
            SNAP_JAR: "2.0-SNAPSHOT",
            "com/example/lib/2.0-SNAPSHOT/maven-metadata.xml": "2.0-SNAPSHOT",
            "com/example/lib/2.0-SNAPSHOT/maven-metadata.xml.md5": "2.0-SNAPSHOT",
            "com/example/lib/maven-metadata.xml": None,
            "com/example/lib/maven-metadata.xml.sha1": None,
            "com/example/maven-metadata.xml": None,
            "lib/x.jar": None,
        }
        for path, version in cases.items():
            self.assertEqual(MavenPath.of(path).version, version, path)

    def test_is_snapshot(self):
        """-SNAPSHOT directories and timestamped builds (Maven's isSnapshot) are SNAPSHOTs; releases are not."""
        self.assertTrue(MavenPath.of(SNAP_JAR).is_snapshot)
        self.assertTrue(MavenPath.of("com/example/lib/2.0-SNAPSHOT/lib-2.0-SNAPSHOT.pom").is_snapshot)
        self.assertTrue(MavenPath.of("com/example/lib/2.0/lib-2.0-20261201.101010-3.jar").is_snapshot)
        self.assertTrue(MavenPath.of("com/example/lib/2.0-20261201.101010-3/lib.jar").is_snapshot)
        self.assertFalse(MavenPath.of(REL_JAR).is_snapshot)
        self.assertFalse(MavenPath.of("com/example/lib/1.0-SNAPSHOTS/lib.jar").is_snapshot)
        self.assertFalse(MavenPath.of("com/example/lib/maven-metadata.xml").is_snapshot)
        self.assertTrue(is_snapshot_version("1.0-snapshot"))
        self.assertFalse(is_snapshot_version("1.0-20261201"))


class PolicyDecisionTests(SynchronousTestCase):
    def test_release_repository(self):
        """release: no SNAPSHOT file, checksum or version metadata; releases and artifact metadata are taken."""
        for path in (SNAP_JAR, SNAP_JAR + ".sha1", "com/example/lib/2.0-SNAPSHOT/maven-metadata.xml"):
            why = policy_refusal("release", "rel", MavenPath.of(path))
            self.assertIsNotNone(why, path)
            self.assertIn("2.0-SNAPSHOT is a SNAPSHOT and repository rel takes releases only", why)
            self.assertNotIn("\n", why)
        for path in (REL_JAR, REL_JAR + ".md5", "com/example/lib/maven-metadata.xml"):
            self.assertIsNone(policy_refusal("release", "rel", MavenPath.of(path)), path)

    def test_snapshot_repository(self):
        """snapshot: no release file; SNAPSHOTs and artifact-level metadata (and its checksums) are taken."""
        why = policy_refusal("snapshot", "snaps", MavenPath.of(REL_JAR))
        self.assertIn("1.0 is a release and repository snaps takes SNAPSHOTs only", why)
        for path in (
            SNAP_JAR,
            "com/example/lib/2.0-SNAPSHOT/maven-metadata.xml",
            "com/example/lib/maven-metadata.xml",
            "com/example/lib/maven-metadata.xml.sha1",
        ):
            self.assertIsNone(policy_refusal("snapshot", "snaps", MavenPath.of(path)), path)

    def test_mixed_takes_everything(self):
        for path in (SNAP_JAR, REL_JAR, "x.jar"):
            self.assertIsNone(policy_refusal("mixed", "any", MavenPath.of(path)))


class PolicyConfigTests(SynchronousTestCase):
    def repos(self, **extra):
        return {"maven": {"repositories": [{"id": "h", "type": "hosted", **extra}]}}

    def test_defaults(self):
        """No key: mixed, keep everything (what existing configurations did)."""
        (repo,) = parse_config(self.repos()).maven_repositories
        self.assertEqual((repo.version_policy, repo.snapshot_keep, repo.snapshot_max_idle_days), ("mixed", 0, 0))
        (repo,) = parse_config(
            self.repos(version_policy="snapshot", snapshot_keep=3, snapshot_max_idle_days=30)
        ).maven_repositories
        self.assertEqual((repo.version_policy, repo.snapshot_keep, repo.snapshot_max_idle_days), ("snapshot", 3, 30))

    def test_invalid_values_stop_the_start(self):
        """A bad value is a one-line ConfigError naming the key."""
        cases = [
            (self.repos(version_policy="releases"), "maven.repositories[0].version_policy: expected one of"),
            (self.repos(snapshot_keep=-1), "maven.repositories[0].snapshot_keep: expected 0"),
            (self.repos(snapshot_keep="2"), "maven.repositories[0].snapshot_keep: expected int"),
            (self.repos(snapshot_max_idle_days=10**9), "maven.repositories[0].snapshot_max_idle_days"),
            (
                {"maven": {"repositories": [{"id": "p", "url": "http://x/", "version_policy": "release"}]}},
                "version_policy: only a hosted repository has it",
            ),
        ]
        for doc, message in cases:
            e = self.assertRaises(ConfigError, parse_config, doc)
            self.assertIn(message, str(e))
            self.assertNotIn("\n", str(e))


class PolicyDeployTests(MavenCacheCase):
    extra_repositories = (
        MavenRepositoryConfig(id="rel", type="hosted", version_policy="release"),
        MavenRepositoryConfig(id="snaps", type="hosted", version_policy="snapshot"),
        MavenRepositoryConfig(id="both", type="hosted"),
    )

    def setUp(self):
        super().setUp()
        self.add_user("writer", "writer-pw", "read-write")

    def put(self, repo, path, body=b"data"):
        headers = basic("writer", "writer-pw")
        response = self.successResultOf(self.request("PUT", f"/artifacts/{repo}/{path}", headers, body))
        return response, self.successResultOf(self.read_body(response))

    def stored(self, repo, path):
        return self.successResultOf(self.drive(self.app.index.get_entry("maven", repo, path))) is not None

    def test_snapshot_into_release_repository(self):
        response, body = self.put("rel", SNAP_JAR)
        self.assertEqual(response.code, 400)
        self.assertIn(b"takes releases only", response.phrase)  # what mvn prints
        error = json.loads(body)["errors"][0]
        self.assertEqual(error["code"], "BAD_REQUEST")
        self.assertEqual(error["detail"]["versionPolicy"], "release")
        self.assertFalse(self.stored("rel", SNAP_JAR))
        self.assertEqual(self.put("rel", REL_JAR)[0].code, 201)
        self.assertEqual(self.put("rel", "com/example/lib/maven-metadata.xml", b"<metadata/>")[0].code, 201)

    def test_release_into_snapshot_repository(self):
        response, _ = self.put("snaps", REL_JAR)
        self.assertEqual(response.code, 400)
        self.assertIn(b"takes SNAPSHOTs only", response.phrase)
        self.assertFalse(self.stored("snaps", REL_JAR))
        self.assertEqual(self.put("snaps", SNAP_JAR)[0].code, 201)
        self.assertEqual(self.put("snaps", "com/example/lib/maven-metadata.xml", b"<metadata/>")[0].code, 201)

    def test_mixed_default(self):
        self.assertEqual(self.put("both", SNAP_JAR)[0].code, 201)
        self.assertEqual(self.put("both", REL_JAR)[0].code, 201)
