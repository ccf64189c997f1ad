"""Hosted Maven repositories and groups through the Maven front's real routes, on fakes.

Deploy (PUT) auth, atomic commit, checksum sidecars, redeploy policy,
SNAPSHOTs, PUT to proxy/group refused, hosted content surviving a cache
clear; groups serving members in order, merged maven-metadata.xml with
computed checksums, browse/info//repositories of a group.
"""

import hashlib
import json
import os
import xml.etree.ElementTree as ET

from twisted.internet import defer

from harbor_cache.settings.startup import MavenRepositoryConfig
from tests.unit.base import MavenCacheCase, app_evictor
from tests.unit.maven.test_maven_front import basic

JAR = "com/example/lib/1.0/lib-1.0.jar"
POM = "com/example/lib/1.0/lib-1.0.pom"
CENTRAL_JAR = "org/example/dep/1.0/dep-1.0.jar"
SNAP_DIR = "com/example/lib/2.0-SNAPSHOT"

UPSTREAM_METADATA = b"""<?xml version="1.0" encoding="UTF-8"?>
<metadata>
  <groupId>com.example</groupId>
  <artifactId>lib</artifactId>
  <versioning>
    <latest>0.9</latest>
    <release>0.9</release>
    <versions><version>0.8</version><version>0.9</version></versions>
    <lastUpdated>20240101000000</lastUpdated>
  </versioning>
</metadata>
"""

HOSTED_METADATA = b"""<?xml version="1.0" encoding="UTF-8"?>
<metadata>
  <groupId>com.example</groupId>
  <artifactId>lib</artifactId>
  <versioning>
    <latest>2.0-SNAPSHOT</latest>
    <release>1.0</release>
    <versions><version>1.0</version><version>2.0-SNAPSHOT</version></versions>
    <lastUpdated>20261123120000</lastUpdated>
  </versioning>
</metadata>
"""


class HostedBase(MavenCacheCase):
    extra_repositories = (
        MavenRepositoryConfig(id="releases", type="hosted"),
        MavenRepositoryConfig(id="loose", type="hosted", redeploy="allow"),
        MavenRepositoryConfig(id="public", type="group", members=("releases", "central")),
    )

    def setUp(self):
        super().setUp()
        self.dep = os.urandom(3000)
        self.upstream.put(CENTRAL_JAR, self.dep)
        self.upstream.put("com/example/lib/maven-metadata.xml", UPSTREAM_METADATA)
        self.add_user("admin", "admin-pw", "admin")
        self.add_user("writer", "writer-pw", "read-write")
        self.add_user("reader", "reader-pw", "read-only")
        self.writer = {"Authorization": basic("writer", "writer-pw")}

    def call(self, method, path, headers=None, body=None):
        response = self.successResultOf(self.request(method, path, headers, body))
        return response, self.successResultOf(self.read_body(response))

    def put(self, repo, path, body, headers=None):
        return self.call("PUT", f"/artifacts/{repo}/{path}", self.writer if headers is None else headers, body)

    def error(self, body):
        return json.loads(body)["errors"][0]

    def entry(self, repo, path):
        return self.successResultOf(defer.Deferred.fromCoroutine(self.app.index.get_entry("maven", repo, path)))

    def token(self, repositories, scope, user="admin"):
        response, body = self.call(
            "POST",
            "/token",
            {"Authorization": basic(user, f"{user}-pw"), "Content-Type": "application/x-www-form-urlencoded"},
            f"repositories={repositories}&scope={scope}".encode(),
        )
        return response.code, body.decode()


class DeployAuthTests(HostedBase):
    def test_anonymous_is_challenged(self):
        """No credentials: 401 with a Basic challenge (what makes mvn send its <server> password)."""
        response, body = self.put("releases", JAR, b"x", headers={})
        self.assertEqual(response.code, 401)
        self.assertIn('Basic realm="harbor-cache"', response.headers.getRawHeaders(b"WWW-Authenticate")[1].decode())
        self.assertIsNone(self.entry("releases", JAR))

    def test_basic_password_by_role(self):
        """read-write and admin deploy with user:password; read-only is 403; a wrong password 401."""
        self.assertEqual(self.put("releases", JAR, b"jar")[0].code, 201)
        response, _ = self.put("releases", POM, b"pom", {"Authorization": basic("admin", "admin-pw")})
        self.assertEqual(response.code, 201)
        response, body = self.put("releases", "a/b/1/b-1.jar", b"x", {"Authorization": basic("reader", "reader-pw")})
        self.assertEqual((response.code, self.error(body)["code"]), (403, "DENIED"))
        response, _ = self.put("releases", "a/b/1/b-1.jar", b"x", {"Authorization": basic("writer", "nope")})
        self.assertEqual(response.code, 401)
        self.assertIsNone(self.entry("releases", "a/b/1/b-1.jar"))

    def test_password_remembered_until_it_changes(self):
        """A verified password is not re-hashed per PUT, but a changed stored hash ends that."""
        calls = self.passwords.checks
        del calls[:]
        self.put("releases", JAR, b"jar")
        self.put("releases", POM, b"pom")
        self.assertEqual(len(calls), 1)
        self.add_user("writer2", "writer-pw", "read-write")  # other user: other key
        self.put("releases", "x/y/1/y-1.jar", b"y", {"Authorization": basic("writer2", "writer-pw")})
        self.assertEqual(len(calls), 2)

    def test_write_token(self):
        """A token with artifacts:write on the repository deploys; read-only tokens and roles cannot."""
        status, token = self.token("releases", "artifacts:write")
        self.assertEqual(status, 200, token)
        response, _ = self.put("releases", JAR, b"jar", {"Authorization": "Bearer " + token})
        self.assertEqual(response.code, 201)
        response, _ = self.put("releases", POM, b"pom", {"Authorization": basic("admin", token)})
        self.assertEqual(response.code, 201)
        _, read_token = self.token("releases", "artifacts:read")
        response, body = self.put("releases", "a/b/1/b-1.jar", b"x", {"Authorization": "Bearer " + read_token})
        self.assertEqual(response.code, 403)
        self.assertIn("artifacts:write", self.error(body)["message"])
        _, other = self.token("loose", "artifacts:write")
        self.assertEqual(self.put("releases", "a/b/1/b-1.jar", b"x", {"Authorization": "Bearer " + other})[0].code, 403)
        status, _ = self.token("releases", "artifacts:write", user="reader")
        self.assertEqual(status, 403)

    def test_put_to_proxy_group_unknown(self):
        """PUT to a proxy or a group is 405 (with Allow); to an unknown repository 404; a bad path 400."""
        for repo in ("central", "public"):
            response, body = self.put(repo, JAR, b"x")
            self.assertEqual((response.code, self.error(body)["code"]), (405, "UNSUPPORTED"), repo)
            self.assertIn(b"deploy to a hosted", response.phrase)
            self.assertEqual(response.headers.getRawHeaders(b"Allow"), [b"GET, HEAD, DELETE"])
        self.assertEqual(self.put("nope", JAR, b"x")[0].code, 404)
        self.assertEqual(self.put("releases", "a/../b.jar", b"x")[0].code, 400)


class DeployTests(HostedBase):
    def test_deploy_and_serve(self):
        """The deployed bytes come back with their content type; the file is a hosted entry.

        3 MiB: above limits.max_body_bytes, so this only passes because the
        deploy route streams its body (a buffered one would be 413)."""
        jar = os.urandom(3 << 20)
        self.assertEqual(self.put("releases", JAR, jar)[0].code, 201)
        response, body = self.call("GET", "/artifacts/releases/" + JAR)
        self.assertEqual((response.code, body), (200, jar))
        self.assertEqual(response.headers.getRawHeaders(b"Content-Type"), [b"application/java-archive"])
        entry = self.entry("releases", JAR)
        self.assertEqual((entry.kind, entry.sha1), ("hosted", hashlib.sha1(jar).hexdigest()))
        self.assertEqual(self.upstream.total(), 0)  # a hosted repository never asks an upstream
        self.assertEqual(self.call("GET", "/artifacts/releases/" + POM)[0].code, 404)
        self.assertEqual(os.listdir(self.app.storage.tmp_dir), [])

    def test_deploy_is_audited(self):
        """A deploy leaves an artifact.deploy record with the deployer; checksum sidecars leave none."""
        jar = os.urandom(1000)
        self.put("releases", JAR, jar)
        self.put("releases", JAR + ".sha1", hashlib.sha1(jar).hexdigest().encode())
        total, rows = self.successResultOf(defer.Deferred.fromCoroutine(self.app.index.audit_page(offset=0, limit=10)))
        self.assertEqual(
            [(r.action, r.actor, r.target) for r in rows], [("artifact.deploy", "writer", "releases/" + JAR)]
        )

    def test_refused_deploys_are_audited(self):
        """409 (release redeploy), 403 (a reader) and 401 with bad credentials are artifact.deploy.refused with
        the status and reason; the anonymous 401 challenge is routine and not recorded."""
        self.put("releases", JAR, b"first")
        self.assertEqual(self.put("releases", JAR, b"again")[0].code, 409)
        self.assertEqual(self.put("releases", POM, b"x", {"Authorization": basic("reader", "reader-pw")})[0].code, 403)
        self.assertEqual(self.put("releases", POM, b"x", {"Authorization": basic("writer", "wrong")})[0].code, 401)
        self.assertEqual(self.put("releases", POM, b"x", {})[0].code, 401)
        _, rows = self.successResultOf(
            defer.Deferred.fromCoroutine(
                self.app.index.audit_page(offset=0, limit=10, action="artifact.deploy.refused")
            )
        )
        self.assertEqual(
            [(r.actor, r.target, json.loads(r.detail or "{}")["status"]) for r in rows],
            [
                ("writer", "releases/" + POM, 401),
                ("reader", "releases/" + POM, 403),
                ("writer", "releases/" + JAR, 409),
            ],
        )

    def test_redeploy_release_refused(self):
        """A second PUT of a release is 409 with the reason in the status line; the first bytes stay."""
        self.put("releases", JAR, b"first")
        response, body = self.put("releases", JAR, b"second")
        self.assertEqual(response.code, 409)
        self.assertIn(b"already deployed", response.phrase)
        self.assertIn("does not allow redeploying", self.error(body)["message"])
        self.assertEqual(self.call("GET", "/artifacts/releases/" + JAR)[1], b"first")
        blobs = [f for _, _, files in os.walk(os.path.join(self.app.storage.root, "blobs")) for f in files]
        self.assertEqual(len(blobs), 1)  # "second" was stored, refused, and removed again

    def test_release_race_lost_between_check_and_insert(self):
        """Another node commits the same release path after our check, before our insert: 409, our file removed.

        (On PostgreSQL this is two nodes deploying at once; the loser used to get 500 from the unique key.)
        """
        real = self.app.index._exec
        rival = "sha256:" + "0" * 64

        def _exec(txn, sql, args=()):
            if sql.lstrip().startswith("INSERT INTO entries") and not getattr(_exec, "fired", False):
                _exec.fired = True
                real(
                    txn,
                    """INSERT INTO entries (kind, type, repository, key, digest, size, created_at, fetched_at,
                           last_access, access_count) VALUES ('hosted', 'maven', 'releases', ?, ?, 5, 1, 1, 1, 0)""",
                    (JAR, rival),
                )
            return real(txn, sql, args)

        self.patch(self.app.index, "_exec", _exec)
        response, body = self.put("releases", JAR, b"mine")
        self.assertEqual((response.code, self.error(body)["code"]), (409, "CONFLICT"))
        self.assertIsNone(self.app.storage.stat_blob("sha256:" + hashlib.sha256(b"mine").hexdigest()))
        entry = self.successResultOf(defer.Deferred.fromCoroutine(self.app.index.get_entry("maven", "releases", JAR)))
        self.assertEqual(entry.digest, rival)

    def test_redeploy_allowed_by_policy(self):
        self.put("loose", JAR, b"first")
        response, _ = self.put("loose", JAR, b"second")
        self.assertEqual(response.code, 200)
        self.assertEqual(self.call("GET", "/artifacts/loose/" + JAR)[1], b"second")

    def test_snapshots_and_metadata_replace(self):
        """Timestamped SNAPSHOT files, their metadata and the artifact metadata may be redeployed."""
        for build in (1, 2):
            name = f"{SNAP_DIR}/lib-2.0-20261123.12000{build}-{build}.jar"
            self.assertEqual(self.put("releases", name, b"build %d" % build)[0].code, 201)
            meta = b"<metadata><version>2.0-SNAPSHOT</version><build>%d</build></metadata>" % build
            self.assertIn(self.put("releases", SNAP_DIR + "/maven-metadata.xml", meta)[0].code, (200, 201))
            sha1 = hashlib.sha1(meta).hexdigest().encode()
            self.assertIn(self.put("releases", SNAP_DIR + "/maven-metadata.xml.sha1", sha1)[0].code, (200, 201))
        self.assertIn(b"<build>2</build>", self.call("GET", f"/artifacts/releases/{SNAP_DIR}/maven-metadata.xml")[1])
        self.assertEqual(
            self.call("GET", f"/artifacts/releases/{SNAP_DIR}/lib-2.0-20261123.120001-1.jar")[1], b"build 1"
        )
        self.assertEqual(self.put("releases", f"{SNAP_DIR}/lib-2.0-SNAPSHOT.jar", b"a")[0].code, 201)
        self.assertEqual(self.put("releases", f"{SNAP_DIR}/lib-2.0-SNAPSHOT.jar", b"b")[0].code, 200)

    def test_redeployed_file_gets_its_own_headers(self):
        """A redeployed SNAPSHOT metadata file is answered with its new ETag and length, never the old ones."""
        path = f"/artifacts/releases/{SNAP_DIR}/maven-metadata.xml"
        seen = set()
        for build in (1, 2, 3):
            meta = b"<metadata><build>%d</build>%s</metadata>" % (build, b" " * build)
            self.assertIn(self.put("releases", SNAP_DIR + "/maven-metadata.xml", meta)[0].code, (200, 201))
            for _ in range(2):  # (the second answer comes from memory)
                response, body = self.call("GET", path)
                self.assertEqual(body, meta)
                self.assertEqual(response.length, len(meta))
                etag = response.headers.getRawHeaders("ETag")[0]
                self.assertEqual(etag, '"%s"' % hashlib.sha256(meta).hexdigest())
            seen.add(etag)
        self.assertEqual(len(seen), 3)

    def test_wrong_checksum_refused(self):
        jar = b"the jar"
        self.put("releases", JAR, jar)
        response, body = self.put("releases", JAR + ".sha1", hashlib.sha1(b"other").hexdigest().encode())
        self.assertEqual((response.code, self.error(body)["code"]), (400, "DIGEST_INVALID"))
        self.assertIn(b"sha1 of", response.phrase)
        self.assertIsNone(self.entry("releases", JAR + ".sha1"))
        for bad in (b"not hex", b""):
            self.assertEqual(self.put("releases", JAR + ".md5", bad)[0].code, 400, bad)
        self.assertEqual(self.put("releases", JAR + ".md5", b"a" * 2000)[0].code, 400)
        self.assertIsNone(self.entry("releases", JAR + ".md5"))
        response, body = self.put("releases", POM + ".sha1", hashlib.sha1(b"").hexdigest().encode())
        self.assertEqual(response.code, 400)
        self.assertIn("not deployed", self.error(body)["message"])
        self.assertEqual(os.listdir(self.app.storage.tmp_dir), [])

    def test_right_checksums_and_retries(self):
        jar = b"the jar"
        self.put("releases", JAR, jar)
        for algo in ("sha1", "md5", "sha256", "sha512"):
            text = f"{hashlib.new(algo, jar).hexdigest()}  lib-1.0.jar\n".encode()
            self.assertEqual(self.put("releases", f"{JAR}.{algo}", text)[0].code, 201, algo)
            self.assertEqual(self.call("GET", f"/artifacts/releases/{JAR}.{algo}")[1], text)
            self.assertEqual(self.put("releases", f"{JAR}.{algo}", text)[0].code, 200, algo)  # a retry

    def test_replaced_on_another_node(self):
        """Metadata another node (same index) replaced is served new; a release is remembered in memory."""
        meta = "com/example/lib/maven-metadata.xml"
        self.put("releases", meta, b"<metadata>one</metadata>")
        self.put("releases", JAR, b"jar")
        self.assertEqual(self.call("GET", "/artifacts/releases/" + meta)[1], b"<metadata>one</metadata>")
        self.call("GET", "/artifacts/releases/" + JAR)

        def elsewhere(path, body):
            digest = self.successResultOf(defer.Deferred.fromCoroutine(self.app.storage.store_bytes(body)))
            self.successResultOf(
                defer.Deferred.fromCoroutine(
                    self.app.index.put_hosted_maven_file(
                        repository="releases",
                        key=path,
                        digest=digest,
                        size=len(body),
                        media_type="application/xml",
                        sha1=hashlib.sha1(body).hexdigest(),
                        now=self.clock.seconds(),
                        overwrite=True,
                    )
                )
            )

        elsewhere(meta, b"<metadata>two</metadata>")
        self.assertEqual(self.call("GET", "/artifacts/releases/" + meta)[1], b"<metadata>two</metadata>")

    def test_checksums_computed_when_not_deployed(self):
        """A hosted file's checksum nobody uploaded is computed (gradle asks for .sha1)."""
        jar = b"jar bytes"
        self.put("releases", JAR, jar)
        for algo in ("sha1", "md5", "sha256", "sha512"):
            response, body = self.call("GET", f"/artifacts/releases/{JAR}.{algo}")
            self.assertEqual((response.code, body), (200, hashlib.new(algo, jar).hexdigest().encode()), algo)
        self.assertEqual(self.call("GET", f"/artifacts/releases/{POM}.sha1")[0].code, 404)

    def test_hosted_survives_cache_clear_and_eviction(self):
        """DELETE /api/v1/cache (clear_proxy) and eviction passes leave deployed files alone."""
        self.put("releases", JAR, b"deployed")
        self.call("GET", "/artifacts/central/" + CENTRAL_JAR)
        self.assertIsNotNone(self.entry("central", CENTRAL_JAR))
        evictor = app_evictor(self)
        evictor.invalidators.append(self.app.maven.invalidate)
        self.successResultOf(defer.Deferred.fromCoroutine(evictor.clear_proxy()))
        self.assertIsNone(self.entry("central", CENTRAL_JAR))
        self.assertEqual(self.call("GET", "/artifacts/releases/" + JAR)[1], b"deployed")
        # A size-driven pass with room for nothing still keeps the deployed file.
        self.call("GET", "/artifacts/central/" + CENTRAL_JAR)
        self.successResultOf(defer.Deferred.fromCoroutine(self.app.settings.update([("cache.max_size", "1")])))
        self.clock.advance(3600)
        self.successResultOf(defer.Deferred.fromCoroutine(evictor.run()))
        self.assertIsNone(self.entry("central", CENTRAL_JAR))
        self.assertEqual(self.call("GET", "/artifacts/releases/" + JAR)[1], b"deployed")

    def test_delete_from_hosted_and_not_from_group(self):
        _, token = self.token("releases,public", "artifacts:delete")
        self.put("releases", JAR, b"jar")
        response, _ = self.call("DELETE", "/artifacts/public/" + JAR, {"Authorization": "Bearer " + token})
        self.assertEqual(response.code, 405)
        response, _ = self.call("DELETE", "/artifacts/releases/" + JAR, {"Authorization": "Bearer " + token})
        self.assertEqual(response.code, 204)
        self.assertEqual(self.call("GET", "/artifacts/releases/" + JAR)[0].code, 404)


class GroupTests(HostedBase):
    def test_members_in_order(self):
        """The group serves the hosted member's file, then falls through to the proxy member."""
        self.put("releases", JAR, b"hosted jar")
        self.assertEqual(self.call("GET", "/artifacts/public/" + JAR)[1], b"hosted jar")
        response, body = self.call("GET", "/artifacts/public/" + CENTRAL_JAR)
        self.assertEqual((response.code, body), (200, self.dep))
        self.assertEqual(
            self.call("GET", "/artifacts/public/" + CENTRAL_JAR + ".sha1")[1],
            hashlib.sha1(self.dep).hexdigest().encode(),
        )
        self.assertEqual(self.call("GET", "/artifacts/public/no/such/1/such-1.jar")[0].code, 404)
        # The first member wins when both have the path.
        self.upstream.put(JAR, b"central jar")
        self.assertEqual(self.call("GET", "/artifacts/public/" + JAR)[1], b"hosted jar")

    def test_member_failure_when_nobody_has_it(self):
        """A member refusing (upstream 403) makes a miss 502; an unreachable one is a 404, as for the proxy."""
        self.upstream.status["no/such/1/such-1.jar"] = 403
        response, body = self.call("GET", "/artifacts/public/no/such/1/such-1.jar")
        self.assertEqual(response.code, 502)
        self.assertIn("central", json.dumps(self.error(body)["detail"]))
        self.http.down = True
        self.assertEqual(self.call("GET", "/artifacts/public/no/such/2/such-2.jar")[0].code, 404)

    def test_merged_metadata_and_checksums(self):
        """maven-metadata.xml is the union of the members'; its checksums are of the merged file."""
        self.put("releases", "com/example/lib/maven-metadata.xml", HOSTED_METADATA)
        response, merged = self.call("GET", "/artifacts/public/com/example/lib/maven-metadata.xml")
        self.assertEqual(response.code, 200, merged)
        root = ET.fromstring(merged)
        self.assertEqual(
            [v.text for v in root.findall("versioning/versions/version")], ["0.8", "0.9", "1.0", "2.0-SNAPSHOT"]
        )
        self.assertEqual(root.findtext("versioning/latest"), "2.0-SNAPSHOT")
        self.assertEqual(root.findtext("versioning/release"), "1.0")
        self.assertEqual(root.findtext("versioning/lastUpdated"), "20261123120000")
        for algo in ("sha1", "md5", "sha256", "sha512"):
            response, body = self.call("GET", f"/artifacts/public/com/example/lib/maven-metadata.xml.{algo}")
            self.assertEqual((response.code, body), (200, hashlib.new(algo, merged).hexdigest().encode()), algo)
        # Only one member has it: served as that member's bytes.
        self.assertEqual(self.call("GET", "/artifacts/public/com/example/other/maven-metadata.xml")[0].code, 404)
        response, body = self.call("GET", "/artifacts/central/com/example/lib/maven-metadata.xml")
        self.assertEqual(body, UPSTREAM_METADATA)

    def test_merged_metadata_conditional_get(self):
        self.put("releases", "com/example/lib/maven-metadata.xml", HOSTED_METADATA)
        response, _ = self.call("GET", "/artifacts/public/com/example/lib/maven-metadata.xml")
        etag = response.headers.getRawHeaders(b"ETag")[0].decode()
        response, body = self.call(
            "GET", "/artifacts/public/com/example/lib/maven-metadata.xml", {"If-None-Match": etag}
        )
        self.assertEqual((response.code, body), (304, b""))

    def test_bad_member_metadata_is_502(self):
        self.put("releases", "com/example/lib/maven-metadata.xml", b"<not-metadata/>")
        response, body = self.call("GET", "/artifacts/public/com/example/lib/maven-metadata.xml")
        self.assertEqual(response.code, 502)

    def test_repositories_browse_info(self):
        """/repositories gives type, members and summed counts; browse is the union; info names the member."""
        self.put("releases", JAR, b"hosted jar")
        self.call("GET", "/artifacts/public/" + CENTRAL_JAR)
        _, body = self.call("GET", "/repositories")
        docs = {r["id"]: r for r in json.loads(body)["repositories"]}
        self.assertEqual(docs["central"]["type"], "proxy")
        self.assertEqual(
            (docs["releases"]["type"], docs["releases"]["url"]), ("hosted", "http://cache.test/artifacts/releases/")
        )
        self.assertEqual((docs["public"]["type"], docs["public"]["members"]), ("group", ["releases", "central"]))
        self.assertEqual(
            docs["public"]["artifactCount"], docs["releases"]["artifactCount"] + docs["central"]["artifactCount"]
        )
        self.assertEqual(docs["public"]["artifactCount"], 2)
        _, body = self.call("GET", "/repositories/public/browse")
        self.assertEqual([e["name"] for e in json.loads(body)["entries"]], ["com", "org"])
        response, body = self.call("GET", "/repositories/public/info?path=" + JAR)
        doc = json.loads(body)
        self.assertEqual((doc["repositoryId"], doc["member"], doc["size"]), ("public", "releases", 10))
        response, body = self.call("GET", "/repositories/public/info?path=no/such.jar")
        self.assertEqual(response.code, 400)
        response, body = self.call("GET", "/repositories/public/browse?path=no/such")
        self.assertEqual(response.code, 400)

    def test_group_browse_pages(self):
        """A group's browse pages through the union of its members' children, each once, in order."""
        self.put("releases", JAR, b"hosted jar")
        self.call("GET", "/artifacts/public/" + CENTRAL_JAR)
        _, body = self.call("GET", "/repositories/public/browse?limit=1")
        first = json.loads(body)
        self.assertEqual([e["name"] for e in first["entries"]], ["com"])
        _, body = self.call("GET", "/repositories/public/browse?limit=1&cursor=" + first["next"])
        second = json.loads(body)
        self.assertEqual([e["name"] for e in second["entries"]], ["org"])
        self.assertNotIn("next", second)
