"""Sync rules (core/operations/sync.py, sync_rules.py): validation, tag choice, platforms, runs, limits, history."""

from __future__ import annotations

import json
from typing import Any

from twisted.trial import unittest

from harbor_cache.core.operations.sync_rules import newest_first, parse_rule, select_tags, wanted_platform
from harbor_cache.errors import BadRequest, Conflict
from harbor_cache.testing import FakeMavenRepo, FakeRegistry
from tests.unit.base import OCI_INDEX, OCI_MANIFEST, MavenCacheCase, OciCacheCase

RULE = {"upstream": "fake", "repositories": ["library/python"], "tags": ["3.*-slim"], "interval_seconds": 600}


class RuleParsingTests(unittest.TestCase):
    def test_oci_rule(self) -> None:
        rule = parse_rule({**RULE, "newest": 5, "platforms": ["linux/amd64", "linux/arm/v7"]}, 300)
        self.assertEqual((rule.kind, rule.upstream, rule.newest), ("oci", "fake", 5))
        self.assertEqual(rule.platforms, ("linux/amd64", "linux/arm/v7"))
        self.assertTrue(rule.enabled)

    def test_maven_rule(self) -> None:
        rule = parse_rule(
            {"maven_repository": "central", "artifacts": ["org.example:lib"], "interval_seconds": 300}, 300
        )
        self.assertEqual((rule.kind, rule.artifacts), ("maven", ("org.example:lib",)))

    def test_bad_rules_say_which_field(self) -> None:
        cases: list[tuple[dict[str, Any], str]] = [
            ({**RULE, "interval_seconds": 10}, "interval_seconds"),
            ({**RULE, "interval_seconds": True}, "interval_seconds"),
            ({**RULE, "tags": ["3.[0-9]"]}, "tags"),
            ({**RULE, "tags": []}, "tags"),
            ({**RULE, "repositories": ["Library/Python"]}, "repositories"),
            ({**RULE, "newest": 0}, "newest"),
            ({**RULE, "platforms": ["linux"]}, "platforms"),
            ({**RULE, "enabled": "yes"}, "enabled"),
            ({**RULE, "upstream": ""}, "upstream"),
            ({"maven_repository": "central", "artifacts": ["org.example"], "interval_seconds": 300}, "artifacts"),
        ]
        for body, field in cases:
            with self.assertRaises(BadRequest) as caught:
                parse_rule(body, 300)
            self.assertIn(field, str(caught.exception), body)


class TagChoiceTests(unittest.TestCase):
    def test_newest_by_version_then_plain_tags(self) -> None:
        tags = ["3.9-slim", "3.12-slim", "3.10.2-slim", "latest", "3.12.1-slim", "alpine", "v2"]
        self.assertEqual(
            newest_first(tags), ["3.12.1-slim", "3.12-slim", "3.10.2-slim", "3.9-slim", "v2", "alpine", "latest"]
        )

    def test_select_globs_and_newest(self) -> None:
        tags = ["3.9-slim", "3.12-slim", "3.11-slim", "3.12", "latest", "3.10-slim"]
        self.assertEqual(select_tags(tags, ("3.*-slim",), 2), ["3.12-slim", "3.11-slim"])
        self.assertEqual(
            select_tags(tags, ("3.*-slim", "latest"), None),
            ["3.12-slim", "3.11-slim", "3.10-slim", "3.9-slim", "latest"],
        )

    def test_platform_filter(self) -> None:
        amd = {"platform": {"os": "linux", "architecture": "amd64"}}
        arm = {"platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}
        attestation = {"annotations": {"vnd.docker.reference.type": "attestation-manifest"}}
        self.assertTrue(wanted_platform(amd, ("linux/amd64",)))
        self.assertTrue(wanted_platform(arm, ("linux/arm64",)))
        self.assertFalse(wanted_platform(arm, ("linux/amd64",)))
        self.assertFalse(wanted_platform(attestation, ("linux/amd64",)))
        self.assertTrue(wanted_platform(attestation, ()))


class SyncRunTests(OciCacheCase):
    """Runs over the fake registry, through the app's own SyncRules."""

    upstream: FakeRegistry

    def image(self, tag: str, layer: bytes, name: str = "library/python") -> str:
        config = self.upstream.add_blob(b'{"tag": "%s"}' % tag.encode())
        layer_digest = self.upstream.add_blob(layer)
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 10},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": len(layer)}
            ],
        }
        return self.upstream.add_manifest(name, tag, doc)[1]

    def create(self, **fields: Any) -> int:
        view = self.successResultOf(self.drive(self.app.sync.create({**RULE, **fields})))
        return int(view["id"])

    def run_rule(self, rule_id: int) -> dict[str, Any]:
        started = self.successResultOf(self.drive(self.app.sync.start(rule_id)))
        self.flush()
        return dict(self.successResultOf(started[1]))

    def test_unknown_upstream_and_foreign_repository_are_400(self) -> None:
        for fields, text in (({"upstream": "nope"}, "no OCI upstream named 'nope'"),):
            failure = self.failureResultOf(self.drive(self.app.sync.create({**RULE, **fields})), BadRequest)
            self.assertIn(text, str(failure.value))

    def test_run_fetches_new_tags_then_nothing(self) -> None:
        self.image("3.11-slim", b"layer-311")
        self.image("3.12-slim", b"layer-312")
        self.image("3.12", b"layer-312-full")
        rule_id = self.create()
        run = self.run_rule(rule_id)
        self.assertEqual(run["status"], "succeeded", run)
        self.assertEqual((run["manifests"], run["blobs"], run["tags_seen"]), (2, 4, 3))
        self.assertGreater(run["bytes"], len(b"layer-311layer-312"))
        self.assertIsNotNone(self.successResultOf(self.drive(self.app.index.get_tag("library/python", "3.12-slim"))))
        self.assertIsNone(self.successResultOf(self.drive(self.app.index.get_tag("library/python", "3.12"))))
        # A second run finds nothing new: HEADs only, no manifest or blob GET.
        gets = self.upstream.count("GET", "/manifests/") + self.upstream.count("GET", "/blobs/")
        self.image("3.13-slim", b"layer-313")
        again = self.run_rule(rule_id)
        self.assertEqual((again["status"], again["manifests"], again["blobs"]), ("succeeded", 1, 2))
        self.assertEqual(self.upstream.count("GET", "/manifests/") + self.upstream.count("GET", "/blobs/"), gets + 3)
        history = self.successResultOf(self.drive(self.app.sync.runs(rule_id)))
        self.assertEqual([r["id"] for r in history], [again["id"], run["id"]])
        self.assertIsNotNone(history[0]["finished_at"])
        self.assertEqual(self.app.metrics.sync_runs.labels("succeeded")._value.get(), 2)

    def test_newest_keeps_only_the_newest(self) -> None:
        for minor in (9, 10, 11, 12):
            self.image(f"3.{minor}-slim", b"layer-%d" % minor)
        run = self.run_rule(self.create(newest=2))
        self.assertEqual(run["manifests"], 2)
        for tag, cached in (("3.12-slim", True), ("3.11-slim", True), ("3.10-slim", False)):
            row = self.successResultOf(self.drive(self.app.index.get_tag("library/python", tag)))
            self.assertEqual(row is not None, cached, tag)

    def test_index_fetches_only_listed_platforms(self) -> None:
        amd = self.image("amd", b"amd-layer")
        arm = self.image("arm", b"arm-layer")
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": amd,
                    "size": 1,
                    "platform": {"os": "linux", "architecture": "amd64"},
                },
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": arm,
                    "size": 1,
                    "platform": {"os": "linux", "architecture": "arm64"},
                },
            ],
        }
        self.upstream.add_manifest("library/python", "3.12-slim", index, OCI_INDEX)
        run = self.run_rule(self.create(platforms=["linux/arm64"]))
        self.assertEqual((run["status"], run["manifests"], run["blobs"]), ("succeeded", 2, 2), run)
        self.assertEqual(self.upstream.count("GET", f"/manifests/{amd}"), 0)
        self.assertEqual(self.upstream.count("GET", f"/manifests/{arm}"), 1)
        self.assertEqual(self.upstream.count("GET", "/blobs/"), 2)

    def test_rate_limit_stops_the_run(self) -> None:
        self.image("3.11-slim", b"layer-311")
        self.image("3.12-slim", b"layer-312")
        self.upstream.extra_headers[b"ratelimit-remaining"] = b"5;w=21600"
        run = self.run_rule(self.create())
        self.assertEqual(run["status"], "stopped")
        self.assertIn("5 requests left", run["error"])
        self.assertIn("sync.ratelimit_min_remaining", run["error"])
        self.assertEqual(self.upstream.count("GET", "/manifests/"), 0)
        self.assertEqual(self.app.metrics.sync_runs.labels("stopped")._value.get(), 1)

    def test_disk_floor_stops_the_run(self) -> None:
        self.image("3.12-slim", b"layer-312")
        self.patch(self.app.space, "free", lambda: 0)
        run = self.run_rule(self.create())
        self.assertEqual(run["status"], "stopped")
        self.assertIn("below its floor", run["error"])

    def test_failure_is_recorded(self) -> None:
        self.upstream.status = 500
        run = self.run_rule(self.create())
        self.assertEqual(run["status"], "failed")
        self.assertIn("500", run["error"])

    def test_one_run_per_rule(self) -> None:
        self.image("3.12-slim", b"layer-312")
        self.upstream.hold[self.upstream.add_blob(b"layer-312")] = 2
        rule_id = self.create()
        _, running = self.successResultOf(self.drive(self.app.sync.start(rule_id)))
        self.failureResultOf(self.drive(self.app.sync.start(rule_id)), Conflict)
        listed = self.successResultOf(self.drive(self.app.sync.list_rules()))
        self.assertEqual(listed[0]["last_run"]["status"], "running")
        self.upstream.release()
        self.flush()
        self.assertEqual(self.successResultOf(running)["status"], "succeeded")

    def test_schedule_runs_due_rules_only(self) -> None:
        self.image("3.12-slim", b"layer-312")
        rule_id = self.create()
        disabled = self.create(enabled=False)
        self.assertEqual(self.successResultOf(self.drive(self.app.sync.run_due())), [rule_id])
        self.flush()
        self.assertEqual(self.successResultOf(self.drive(self.app.sync.run_due())), [])
        self.clock.advance(601)
        self.assertEqual(self.successResultOf(self.drive(self.app.sync.run_due())), [rule_id])
        self.flush()
        self.assertEqual(self.successResultOf(self.drive(self.app.sync.runs(disabled))), [])

    def test_rule_view_round_trips(self) -> None:
        rule_id = self.create(newest=3, platforms=["linux/amd64"])
        view = self.successResultOf(self.drive(self.app.sync.get(rule_id)))
        self.assertEqual(
            {k: view[k] for k in ("kind", "upstream", "repositories", "tags", "newest", "platforms", "enabled")},
            {
                "kind": "oci",
                "upstream": "fake",
                "repositories": ["library/python"],
                "tags": ["3.*-slim"],
                "newest": 3,
                "platforms": ["linux/amd64"],
                "enabled": True,
            },
        )
        json.dumps(view)


class MavenSyncTests(MavenCacheCase):
    """A Maven rule fetches maven-metadata.xml through the Maven core's get path."""

    upstream: FakeMavenRepo

    def test_metadata_is_prefetched(self) -> None:
        path = "org/example/lib/maven-metadata.xml"
        self.upstream.put(path, b"<metadata>v1</metadata>")
        body = {"maven_repository": "central", "artifacts": ["org.example:lib", "org.example:gone"]}
        view = self.successResultOf(self.drive(self.app.sync.create({**body, "interval_seconds": 300})))
        started = self.successResultOf(self.drive(self.app.sync.start(view["id"])))
        self.flush()
        run = self.successResultOf(started[1])
        self.assertEqual((run["status"], run["manifests"], run["tags_seen"]), ("succeeded", 1, 1), run)
        self.assertEqual(run["bytes"], len(b"<metadata>v1</metadata>"))
        self.assertEqual(self.upstream.count("GET", path), 1)
        # A client now gets it from the cache: no new upstream request.
        response, content = self.fetch("GET", "/artifacts/central/" + path, user=None)
        self.assertEqual((response.code, content), (200, b"<metadata>v1</metadata>"))
        self.assertEqual(self.upstream.count("GET", path), 1)

    def test_unknown_or_hosted_repository_is_400(self) -> None:
        body = {"maven_repository": "nope", "artifacts": ["a:b"], "interval_seconds": 300}
        failure = self.failureResultOf(self.drive(self.app.sync.create(body)), BadRequest)
        self.assertIn("not a proxy Maven repository", str(failure.value))
