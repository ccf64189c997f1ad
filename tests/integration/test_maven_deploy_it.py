"""Real ``mvn deploy`` into hosted repositories, and mvn and gradle resolving through one group URL.

One server with ``releases`` and ``snapshots`` (hosted), ``central`` (proxy
of the loopback Maven upstream) and ``public`` (group of the three):

- ``mvn deploy`` of a release (greeter 1.0) and of a SNAPSHOT deployed twice
  (util 2.0-SNAPSHOT: two timestamps, build numbers 1 and 2) by a read-write
  user whose password is in settings.xml;
- a second project resolves greeter, the newest util SNAPSHOT and
  commons-lang3 (from "Central") through the group URL alone, with ``-C``;
- gradle (Debian's 4.4.1, a throwaway GRADLE_USER_HOME) resolves the same
  three through the group;
- ``mvn deploy`` of the release again is refused and mvn prints the
  server's reason; a PUT with a wrong ``.sha1`` is refused;
- DELETE /api/v1/cache leaves the deployed files alone.
"""

import base64
import hashlib
import json
import os
import re
import shutil
import tempfile
import xml.etree.ElementTree as ET

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import support
from tests.integration.push_support import ensure_user

GROUP = "com.example.hc"
GROUP_PATH = GROUP.replace(".", "/")
WRITER = ("deployer", "deployer-pw-1")

LIBRARY_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>%(group)s</groupId>
  <artifactId>%(artifact)s</artifactId>
  <version>%(version)s</version>
  <properties>
    <maven.compiler.source>17</maven.compiler.source>
    <maven.compiler.target>17</maven.compiler.target>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
  <distributionManagement>
    <repository><id>hc-releases</id><url>%(server)s/artifacts/releases/</url></repository>
    <snapshotRepository><id>hc-snapshots</id><url>%(server)s/artifacts/snapshots/</url></snapshotRepository>
  </distributionManagement>
</project>
"""

CONSUMER_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>%(group)s</groupId>
  <artifactId>consumer</artifactId>
  <version>1.0</version>
  <properties>
    <maven.compiler.source>17</maven.compiler.source>
    <maven.compiler.target>17</maven.compiler.target>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
  <dependencies>
    <dependency><groupId>%(group)s</groupId><artifactId>greeter</artifactId><version>1.0</version></dependency>
    <dependency><groupId>%(group)s</groupId><artifactId>util</artifactId><version>2.0-SNAPSHOT</version></dependency>
    <dependency><groupId>org.apache.commons</groupId><artifactId>commons-lang3</artifactId><version>3.12.0</version></dependency>
  </dependencies>
</project>
"""

CONSUMER_JAVA = """package c;
import com.example.hc.greeter.Greeter;
import com.example.hc.util.Util;
import org.apache.commons.lang3.StringUtils;
public class Main { public static String run() { return StringUtils.capitalize(Greeter.greet(Util.BUILD)); } }
"""

BUILD_GRADLE = """apply plugin: 'java'
repositories { maven { url '%(group_url)s' } }
dependencies {
    compile '%(group)s:greeter:1.0'
    compile '%(group)s:util:2.0-SNAPSHOT'
    compile 'org.apache.commons:commons-lang3:3.12.0'
}
task resolveAll {
    doLast { configurations.compile.resolvedConfiguration.resolvedArtifacts.each {
        println "RESOLVED " + it.file.name + " " + it.file.bytes.length } }
}
"""


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def library(path, server, artifact, version, java):
    """A one-class library project deploying to the server's hosted repositories."""
    _write(
        os.path.join(path, "pom.xml"),
        LIBRARY_POM % {"group": GROUP, "artifact": artifact, "version": version, "server": server},
    )
    _write(os.path.join(path, "src/main/java/com/example/hc", artifact, java[0]), java[1])
    return path


def settings_with_servers(path, mirror_url):
    """support's settings.xml (mirror of everything, snapshots on) plus the deploy credentials."""
    support.write_maven_settings(path, mirror_url)
    servers = "".join(
        "    <server><id>%s</id><username>%s</username><password>%s</password></server>\n" % (sid, WRITER[0], WRITER[1])
        for sid in ("hc-releases", "hc-snapshots")
    )
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("<settings>\n", "<settings>\n  <servers>\n%s  </servers>\n" % servers, 1))
    return path


def sha1_file(path):
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


class DeployAndGroupTests(SynchronousTestCase):
    def setUp(self):
        support.require("mvn")
        self.up = support.shared_maven_upstream()
        self.srv = support.HarborServer(
            support.maven_config(
                [
                    {"id": "central", "url": self.up.url},
                    {"id": "releases", "type": "hosted"},
                    {"id": "snapshots", "type": "hosted"},
                    {"id": "public", "type": "group", "members": ["releases", "snapshots", "central"]},
                ]
            )
        )
        self.addCleanup(self.srv.close)
        ensure_user(self.srv, WRITER[0], WRITER[1], "read-write")
        self.dir = tempfile.mkdtemp(prefix="harbor-it-deploy-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.group_url = self.srv.url + "/artifacts/public/"
        self.settings = settings_with_servers(os.path.join(self.dir, "settings.xml"), self.group_url)
        self.m2_deploy = os.path.join(self.dir, "m2-deploy")

    def deploy(self, project):
        return support.mvn(self.settings, self.m2_deploy, "-C", "-Dmaven.test.skip=true", "deploy", cwd=project)

    def get(self, path, repo="public"):
        return support.http("GET", "%s/artifacts/%s/%s" % (self.srv.url, repo, path))

    def test_deploy_then_resolve_through_group(self):
        srv = self.srv
        greeter = library(
            os.path.join(self.dir, "greeter"),
            srv.url,
            "greeter",
            "1.0",
            (
                "Greeter.java",
                "package com.example.hc.greeter;\n"
                'public class Greeter { public static String greet(String s) { return "hi " + s; } }\n',
            ),
        )
        # 2 MiB of noise in the jar: above limits.max_body_bytes, so the PUT must be streamed.
        os.makedirs(os.path.join(greeter, "src/main/resources"))
        with open(os.path.join(greeter, "src/main/resources/noise.bin"), "wb") as f:
            f.write(os.urandom(2 << 20))
        cp = self.deploy(greeter)
        support.check_ok(cp)
        self.assertIn("BUILD SUCCESS", cp.stdout)
        release_jar = "%s/greeter/1.0/greeter-1.0.jar" % GROUP_PATH
        status, _, body = self.get(release_jar, "releases")
        self.assertEqual(status, 200)
        self.assertGreater(len(body), 2 << 20)
        self.assertEqual(hashlib.sha1(body).hexdigest(), sha1_file(os.path.join(greeter, "target/greeter-1.0.jar")))
        self.assertEqual(
            self.get(release_jar + ".sha1", "releases")[2].decode().split()[0], hashlib.sha1(body).hexdigest()
        )

        # The SNAPSHOT twice: two timestamped builds, metadata moving to build 2.
        util_jars = []
        for build in (1, 2):
            util = library(
                os.path.join(self.dir, "util"),
                srv.url,
                "util",
                "2.0-SNAPSHOT",
                (
                    "Util.java",
                    "package com.example.hc.util;\n"
                    'public class Util { public static final String BUILD = "build%d"; }\n' % build,
                ),
            )
            cp = self.deploy(util)
            support.check_ok(cp)
            util_jars.append(sha1_file(os.path.join(util, "target/util-2.0-SNAPSHOT.jar")))
        snap_dir = "%s/util/2.0-SNAPSHOT" % GROUP_PATH
        status, _, meta = self.get(snap_dir + "/maven-metadata.xml", "snapshots")
        self.assertEqual(status, 200, meta)
        root = ET.fromstring(meta)
        self.assertEqual(root.findtext("versioning/snapshot/buildNumber"), "2")
        status, _, listing = support.http("GET", srv.url + "/repositories/snapshots/browse?path=" + snap_dir)
        jars = sorted(e["name"] for e in json.loads(listing)["entries"] if re.fullmatch(r"util-.*-\d+\.jar", e["name"]))
        self.assertEqual(len(jars), 2, listing)
        self.assertNotEqual(jars[0].split("-")[2], jars[1].split("-")[2])  # two timestamps

        # A second project: everything through the group URL alone, strict checksums.
        consumer = os.path.join(self.dir, "consumer")
        _write(os.path.join(consumer, "pom.xml"), CONSUMER_POM % {"group": GROUP})
        _write(os.path.join(consumer, "src/main/java/c/Main.java"), CONSUMER_JAVA)
        m2_consumer = os.path.join(self.dir, "m2-consumer")
        cp = support.mvn(self.settings, m2_consumer, "-C", "compile", cwd=consumer)
        support.check_ok(cp)
        self.assertIn("BUILD SUCCESS", cp.stdout)
        self.assertNotIn("Checksum validation failed", cp.stdout)
        got = os.path.join(m2_consumer, GROUP_PATH, "util", "2.0-SNAPSHOT", "util-2.0-SNAPSHOT.jar")
        self.assertEqual(sha1_file(got), util_jars[1])  # the newest build
        self.assertTrue(os.path.exists(os.path.join(m2_consumer, GROUP_PATH, "greeter", "1.0", "greeter-1.0.jar")))
        self.assertTrue(
            os.path.exists(
                os.path.join(m2_consumer, "org/apache/commons/commons-lang3/3.12.0", "commons-lang3-3.12.0.jar")
            )
        )
        # The group's merged artifact metadata lists the deployed release.
        status, _, merged = self.get("%s/greeter/maven-metadata.xml" % GROUP_PATH)
        self.assertEqual(status, 200)
        self.assertEqual(ET.fromstring(merged).findtext("versioning/release"), "1.0")
        self.assertEqual(
            self.get("%s/greeter/maven-metadata.xml.sha1" % GROUP_PATH)[2].decode(), hashlib.sha1(merged).hexdigest()
        )

        # gradle through the group, from nothing.
        self.gradle_resolves(util_jars[1])

        # Redeploying the release is refused, and mvn shows why.
        cp = self.deploy(greeter)
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("BUILD FAILURE", cp.stdout)
        self.assertIn("already deployed in releases", cp.stdout)
        self.assertEqual(hashlib.sha1(self.get(release_jar, "releases")[2]).hexdigest(), hashlib.sha1(body).hexdigest())

        # A wrong .sha1 is refused, and not stored.
        auth = "Basic " + base64.b64encode(("%s:%s" % WRITER).encode()).decode()
        snap_pom = [e for e in json.loads(listing)["entries"] if e["name"].endswith(".pom")][0]["path"]
        status, _, err = support.http(
            "PUT",
            "%s/artifacts/snapshots/%s.sha1" % (srv.url, snap_pom),
            headers={"Authorization": auth},
            body=b"0" * 40,
        )
        self.assertEqual(status, 400, err)
        self.assertEqual(json.loads(err)["errors"][0]["code"], "DIGEST_INVALID")
        status, _, sha1 = self.get(snap_pom + ".sha1", "snapshots")
        self.assertNotEqual(sha1, b"0" * 40)

        # Deployed content survives clearing the cache.
        token = srv.login()
        status, _, _ = support.http("DELETE", srv.url + "/api/v1/cache", headers={"Authorization": "Bearer " + token})
        self.assertIn(status, (200, 202, 204))
        self.assertEqual(self.get(release_jar)[0], 200)

    def gradle_resolves(self, newest_util_sha1):
        support.require("gradle")
        project = os.path.join(self.dir, "gradle-consumer")
        _write(os.path.join(project, "build.gradle"), BUILD_GRADLE % {"group": GROUP, "group_url": self.group_url})
        _write(os.path.join(project, "settings.gradle"), "rootProject.name = 'gradle-consumer'\n")
        env = dict(os.environ, GRADLE_USER_HOME=os.path.join(self.dir, "gradle-home"))
        env.pop("GRADLE_OPTS", None)
        cp = support.run(
            ["gradle", "--no-daemon", "--console=plain", "-q", "resolveAll"], env=env, cwd=project, timeout=600
        )
        support.check_ok(cp)
        resolved = dict(line.split()[1:3] for line in cp.stdout.splitlines() if line.startswith("RESOLVED "))
        self.assertIn("greeter-1.0.jar", resolved, cp.stdout)
        self.assertIn("commons-lang3-3.12.0.jar", resolved, cp.stdout)
        snapshot = [name for name in resolved if name.startswith("util-2.0-")]
        self.assertEqual(len(snapshot), 1, cp.stdout)
        cached = [
            os.path.join(d, f) for d, _, files in os.walk(env["GRADLE_USER_HOME"]) for f in files if f == snapshot[0]
        ]
        self.assertTrue(cached, snapshot)
        self.assertEqual(sha1_file(cached[0]), newest_util_sha1)
