"""Real ``mvn deploy`` of five SNAPSHOT builds into a hosted snapshot repository keeping 2, then ``mvn -C -U``.

One server: ``snapshots`` (hosted, ``version_policy = "snapshot"``,
``snapshot_keep = 2``), ``releases`` (hosted, ``version_policy =
"release"``), ``central`` (proxy of the loopback Maven upstream: Debian's
maven-repo plugins, no Maven Central) and ``public`` (group of the three).

- util 2.0-SNAPSHOT is deployed five times (build numbers 1..5): builds 1-3
  are gone afterwards (jar, pom and checksums: GET 404), 4 and 5 are there,
  the version metadata points at build 5 and lists only kept builds, and a
  consumer project compiled with ``-C -U`` through the group gets build 5;
- ``mvn deploy`` of a release into ``snapshots`` fails, and mvn prints why.
"""

import hashlib
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import support
from tests.integration.push_support import ensure_user
from tests.integration.test_maven_deploy_it import (
    GROUP,
    GROUP_PATH,
    LIBRARY_POM,
    WRITER,
    library,
    settings_with_servers,
)

CONSUMER_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>%(group)s</groupId>
  <artifactId>snap-consumer</artifactId>
  <version>1.0</version>
  <properties>
    <maven.compiler.source>17</maven.compiler.source>
    <maven.compiler.target>17</maven.compiler.target>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
  <dependencies>
    <dependency><groupId>%(group)s</groupId><artifactId>util</artifactId><version>2.0-SNAPSHOT</version></dependency>
  </dependencies>
</project>
"""

CONSUMER_JAVA = """package c;
import com.example.hc.util.Util;
public class Main { public static String run() { return Util.BUILD; } }
"""

SNAP_DIR = "%s/util/2.0-SNAPSHOT" % GROUP_PATH


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def sha1_file(path):
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


class SnapshotCleanupTests(SynchronousTestCase):
    def setUp(self):
        support.require("mvn")
        self.up = support.shared_maven_upstream()
        self.srv = support.HarborServer(
            support.maven_config(
                [
                    {"id": "central", "url": self.up.url},
                    {"id": "releases", "type": "hosted", "version_policy": "release"},
                    {"id": "snapshots", "type": "hosted", "version_policy": "snapshot", "snapshot_keep": 2},
                    {"id": "public", "type": "group", "members": ["releases", "snapshots", "central"]},
                ]
            )
        )
        self.addCleanup(self.srv.close)
        ensure_user(self.srv, WRITER[0], WRITER[1], "read-write")
        self.dir = tempfile.mkdtemp(prefix="harbor-it-snapclean-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.settings = settings_with_servers(
            os.path.join(self.dir, "settings.xml"), self.srv.url + "/artifacts/public/"
        )
        self.m2_deploy = os.path.join(self.dir, "m2-deploy")

    def deploy(self, project):
        return support.mvn(self.settings, self.m2_deploy, "-C", "-Dmaven.test.skip=true", "deploy", cwd=project)

    def get(self, path, repo="snapshots"):
        return support.http("GET", "%s/artifacts/%s/%s" % (self.srv.url, repo, path))

    def test_five_builds_keep_two(self):
        builds = []  # (stem "timestamp-n", sha1 of the jar mvn built)
        for n in range(1, 6):
            util = library(
                os.path.join(self.dir, "util"),
                self.srv.url,
                "util",
                "2.0-SNAPSHOT",
                (
                    "Util.java",
                    "package com.example.hc.util;\n"
                    'public class Util { public static final String BUILD = "build%d"; }\n' % n,
                ),
            )
            cp = self.deploy(util)
            support.check_ok(cp)
            status, _, meta = self.get(SNAP_DIR + "/maven-metadata.xml")
            self.assertEqual(status, 200, meta)
            snapshot = ET.fromstring(meta).find("versioning/snapshot")
            self.assertEqual(snapshot.findtext("buildNumber"), str(n))
            builds.append(
                (
                    "%s-%d" % (snapshot.findtext("timestamp"), n),
                    sha1_file(os.path.join(util, "target/util-2.0-SNAPSHOT.jar")),
                )
            )

        # Builds 1-3: every file gone; 4 and 5: there.
        for n, (stem, _) in enumerate(builds, 1):
            expected = 200 if n >= 4 else 404
            for suffix in (".jar", ".jar.sha1", ".jar.md5", ".pom", ".pom.sha1"):
                path = "%s/util-2.0-%s%s" % (SNAP_DIR, stem, suffix)
                self.assertEqual(self.get(path)[0], expected, path)
        # The metadata points at build 5 and lists only kept builds.
        status, _, meta = self.get(SNAP_DIR + "/maven-metadata.xml")
        values = [v.text for v in ET.fromstring(meta).findall("versioning/snapshotVersions/snapshotVersion/value")]
        self.assertTrue(values)
        kept = {"2.0-" + stem for stem, _ in builds[3:]}
        self.assertTrue(set(values) <= kept, (values, kept))
        self.assertEqual(
            self.get(SNAP_DIR + "/maven-metadata.xml.sha1")[2].decode().split()[0], hashlib.sha1(meta).hexdigest()
        )

        # A consumer, strict checksums, forced update, through the group: the newest build.
        consumer = os.path.join(self.dir, "consumer")
        _write(os.path.join(consumer, "pom.xml"), CONSUMER_POM % {"group": GROUP})
        _write(os.path.join(consumer, "src/main/java/c/Main.java"), CONSUMER_JAVA)
        m2_consumer = os.path.join(self.dir, "m2-consumer")
        cp = support.mvn(self.settings, m2_consumer, "-C", "-U", "compile", cwd=consumer)
        support.check_ok(cp)
        self.assertIn("BUILD SUCCESS", cp.stdout)
        got = os.path.join(m2_consumer, SNAP_DIR, "util-2.0-SNAPSHOT.jar")
        self.assertEqual(sha1_file(got), builds[4][1])

        # A release into the snapshot repository: refused, and mvn prints why.
        greeter = os.path.join(self.dir, "greeter")
        library(
            greeter,
            self.srv.url,
            "greeter",
            "1.0",
            ("Greeter.java", "package com.example.hc.greeter;\npublic class Greeter {}\n"),
        )
        pom = os.path.join(greeter, "pom.xml")
        _write(
            pom,
            (LIBRARY_POM % {"group": GROUP, "artifact": "greeter", "version": "1.0", "server": self.srv.url}).replace(
                "/artifacts/releases/", "/artifacts/snapshots/"
            ),
        )
        cp = self.deploy(greeter)
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("takes SNAPSHOTs only", cp.stdout)
        self.assertEqual(self.get("%s/greeter/1.0/greeter-1.0.jar" % GROUP_PATH)[0], 404)
