"""Tag retention (issue 28, point 2): the keep clauses, rules through /api/v1/retention, runs, the schedule."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.core.hosted.retention import DAY, doomed
from harbor_cache.index.policies import HostedTag, RetentionRuleRow
from tests.unit.base import HostedRegistryCase

NOW = 1_000 * DAY


def rule(
    repositories: str = "team-a/*", keep_last: int | None = None, keep_days: int | None = None, keep_tags: str = "[]"
) -> RetentionRuleRow:
    return RetentionRuleRow(1, repositories, keep_last, keep_days, keep_tags, 0.0, 0.0)


def tags(repository: str = "team-a/app") -> list[HostedTag]:
    """t0 pushed today, t1 a day ago, ... t4 four days ago, plus 'latest' ten days ago."""
    out = [HostedTag(repository, f"t{i}", f"sha256:{i}", NOW - i * DAY) for i in range(5)]
    return out + [HostedTag(repository, "latest", "sha256:l", NOW - 10 * DAY)]


def names(found: list[HostedTag]) -> list[str]:
    return sorted(t.tag for t in found)


class KeepClauseTests(SynchronousTestCase):
    def test_keep_last(self) -> None:
        self.assertEqual(names(doomed([rule(keep_last=2)], tags(), NOW)), ["latest", "t2", "t3", "t4"])

    def test_keep_days(self) -> None:
        """Pushed within D days (inclusive) is kept."""
        self.assertEqual(names(doomed([rule(keep_days=2)], tags(), NOW)), ["latest", "t3", "t4"])

    def test_keep_tags_patterns(self) -> None:
        found = doomed([rule(keep_tags='["latest", "t1*"]')], tags(), NOW)
        self.assertEqual(names(found), ["t0", "t2", "t3", "t4"])
        self.assertEqual(names(doomed([rule(keep_tags='["latest", "t?"]')], tags(), NOW)), [])

    def test_any_clause_keeps(self) -> None:
        """keep_last 1 OR keep_days 3 OR latest: only t4 goes."""
        found = doomed([rule(keep_last=1, keep_days=3, keep_tags='["latest"]')], tags(), NOW)
        self.assertEqual(names(found), ["t4"])

    def test_only_matching_repositories_and_any_rule_keeps(self) -> None:
        """A repository no rule covers loses nothing; two rules covering one repository keep the union."""
        self.assertEqual(doomed([rule(keep_last=1)], tags("team-b/app"), NOW), [])
        both = [rule(keep_last=1), rule("team-a/app", keep_tags='["t4"]')]
        self.assertEqual(names(doomed(both, tags(), NOW)), ["latest", "t1", "t2", "t3"])


class RetentionApiTests(HostedRegistryCase):
    def setUp(self) -> None:
        super().setUp()
        self.body = self.image_manifest("team-a/app", [b"layer"])
        for tag in ("old", "v1", "mid", "new"):
            self.assertEqual(self.put_manifest("team-a/app", tag, self.body)[0].code, 201)
            self.clock.advance(DAY)
        self.put_manifest("team-b/app", "old", self.image_manifest("team-b/app", [b"b"]))

    def tag_list(self, name: str = "team-a/app") -> list[str]:
        import json

        return json.loads(self.fetch("GET", f"/v2/{name}/tags/list")[1])["tags"]

    def test_crud(self) -> None:
        code, made = self.api("POST", "/api/v1/retention", {"repositories": "team-a/*", "keep_last": 2})
        self.assertEqual(code, 201, made)
        self.assertEqual(
            {k: made[k] for k in ("repositories", "keep_last", "keep_days", "keep_tags")},
            {"repositories": "team-a/*", "keep_last": 2, "keep_days": None, "keep_tags": []},
        )
        path = f"/api/v1/retention/{made['id']}"
        self.assertEqual(self.api("GET", path), (200, made))
        code, changed = self.api("PUT", path, {"repositories": "team-*", "keep_days": 7, "keep_tags": ["v*"]})
        self.assertEqual((code, changed["keep_last"], changed["keep_tags"]), (200, None, ["v*"]))
        self.assertEqual(self.api("GET", "/api/v1/retention")[1]["rules"], [changed])
        self.assertEqual(self.api("DELETE", path)[0], 204)
        self.assertEqual(self.api("GET", path)[0], 404)
        self.assertEqual(self.api("PUT", path, {"repositories": "x", "keep_last": 1})[0], 404)
        actions = [a for a, _ in self.audit_actions()]
        for action in ("retention.create", "retention.update", "retention.delete"):
            self.assertIn(action, actions)

    def test_bad_rules_are_a_clear_400(self) -> None:
        for body, words in (
            ({"repositories": "team-a/*"}, "at least one"),
            ({"keep_last": 1}, "repositories"),
            ({"repositories": "team-a/[x]", "keep_last": 1}, "repositories"),
            ({"repositories": "team-a/*", "keep_last": -1}, "keep_last"),
            ({"repositories": "team-a/*", "keep_days": "7"}, "keep_days"),
            ({"repositories": "team-a/*", "keep_tags": ["ok", "b@d"]}, "keep_tags"),
            ({"repositories": "team-a/*", "keep_tags": "v*"}, "keep_tags"),
        ):
            code, answer = self.api("POST", "/api/v1/retention", body)
            self.assertEqual(code, 400, body)
            self.assertIn(words, answer["errors"][0]["message"])
        self.assertEqual(self.api("GET", "/api/v1/retention")[1]["rules"], [])

    def test_dry_run_lists_and_run_deletes(self) -> None:
        """Dry run lists repository, tag, digest, pushed_at and deletes nothing; a run deletes just those tags."""
        _, made = self.api(
            "POST", "/api/v1/retention", {"repositories": "team-a/*", "keep_last": 1, "keep_tags": ["v*"]}
        )
        self.assertEqual(self.fetch("GET", "/v2/team-a/app/manifests/mid")[0].code, 200)  # now held in memory too
        code, dry = self.api("POST", f"/api/v1/retention/{made['id']}/run", {"dry_run": True})
        self.assertEqual(code, 200, dry)
        self.assertEqual(
            [(t["repository"], t["tag"]) for t in dry["tags"]], [("team-a/app", "mid"), ("team-a/app", "old")]
        )
        self.assertEqual(set(dry["tags"][0]), {"repository", "tag", "digest", "pushed_at"})
        self.assertEqual((dry["dry_run"], dry["deleted"]), (True, 0))
        self.assertEqual(self.tag_list(), ["mid", "new", "old", "v1"])
        code, done = self.api("POST", "/api/v1/retention/run", {"dry_run": False})
        self.assertEqual((code, done["deleted"]), (200, 2))
        self.assertEqual(self.tag_list(), ["new", "v1"])
        self.assertEqual(self.fetch("GET", "/v2/team-a/app/manifests/mid")[0].code, 404)
        self.assertEqual(self.tag_list("team-b/app"), ["old"])
        # The manifest stays (garbage collection's business); the tags went as a /v2/ DELETE does.
        self.assertEqual(self.fetch("GET", f"/v2/team-a/app/manifests/{dry['tags'][0]['digest']}")[0].code, 200)
        self.assertIn(("retention.run", "all rules"), self.audit_actions())
        self.assertEqual(self.api("POST", "/api/v1/retention/999/run", {"dry_run": True})[0], 404)
        self.assertEqual(self.api("POST", "/api/v1/retention/run", {"dry_run": "yes"})[0], 400)

    def test_immutable_tags_are_kept(self) -> None:
        self.api("POST", "/api/v1/immutable-tags", {"repositories": "team-a/*", "tags": "o*"})
        self.api("POST", "/api/v1/retention", {"repositories": "team-a/*", "keep_last": 1})
        _, dry = self.api("POST", "/api/v1/retention/run", {"dry_run": True})
        self.assertEqual([t["tag"] for t in dry["tags"]], ["mid", "v1"])

    def test_schedule(self) -> None:
        """The tick runs every rule once per retention.interval_seconds (the first one interval after start)."""
        self.api("POST", "/api/v1/retention", {"repositories": "team-a/*", "keep_last": 3})

        def tick() -> bool:
            return bool(self.successResultOf(self.drive(self.app.retention.run_if_due())))

        self.assertFalse(tick())
        self.clock.advance(3599)
        self.assertFalse(tick())
        self.assertEqual(len(self.tag_list()), 4)
        self.clock.advance(1)
        self.assertTrue(tick())
        self.assertEqual(self.tag_list(), ["mid", "new", "v1"])
        self.successResultOf(self.drive(self.app.settings.update([("retention.interval_seconds", "0")])))
        self.clock.advance(7200)
        self.assertFalse(tick())
