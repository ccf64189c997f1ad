"""The policy tables (retention_rules, immutable_rules) and the hosted-tag reads, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.index import Index
from tests.unit.base import postgres_pool, run, sqlite_pool


class PolicyRowsMixin:
    def open_pool(self) -> Any:
        raise NotImplementedError

    def setUp(self) -> None:
        self.index = Index(self.open_pool())
        run(self, self.index.migrate())

    def test_retention_rules_round_trip(self) -> None:
        case: Any = self
        made = run(case, self.index.create_retention_rule("team-a/*", 3, None, ["v*", "latest"], 5.0))
        other = run(case, self.index.create_retention_rule("b/*", None, 7, [], 6.0))
        case.assertNotEqual(made.id, other.id)
        case.assertEqual((made.keep_last, made.keep_days, made.keep_tag_patterns), (3, None, ["v*", "latest"]))
        changed = run(case, self.index.update_retention_rule(made.id, "team-*", None, 2, [], 9.0))
        case.assertEqual(
            (changed.repositories, changed.keep_days, changed.created_at, changed.updated_at), ("team-*", 2, 5.0, 9.0)
        )
        case.assertIsNone(run(case, self.index.update_retention_rule(999, "x", 1, None, [], 9.0)))
        case.assertEqual([r.id for r in run(case, self.index.list_retention_rules())], [made.id, other.id])
        case.assertTrue(run(case, self.index.delete_retention_rule(made.id)))
        case.assertFalse(run(case, self.index.delete_retention_rule(made.id)))
        case.assertIsNone(run(case, self.index.get_retention_rule(made.id)))

    def test_immutable_rules_round_trip(self) -> None:
        case: Any = self
        made = run(case, self.index.create_immutable_rule("team-a/*", "v*", 5.0))
        case.assertEqual(run(case, self.index.list_immutable_rules()), [made])
        case.assertEqual(run(case, self.index.delete_immutable_rule(made.id)), made)
        case.assertIsNone(run(case, self.index.delete_immutable_rule(made.id)))

    def test_hosted_tags(self) -> None:
        """Pushed tags only (not cached ones), newest push first per repository; tags of one digest."""
        case: Any = self
        for tag, at in (("a", 1.0), ("b", 3.0), ("c", 2.0)):
            run(
                case,
                self.index.put_hosted_manifest(
                    repository="r",
                    key="sha256:1",
                    digest="sha256:1",
                    size=1,
                    media_type="m",
                    now=at,
                    tag=tag,
                    referrer=None,
                ),
            )
        run(case, self.index.put_tag("r", "cached", "sha256:2", "proxy", "m", 4.0))
        case.assertEqual(
            [(t.tag, t.pushed_at) for t in run(case, self.index.list_hosted_tags())],
            [("b", 3.0), ("c", 2.0), ("a", 1.0)],
        )
        case.assertEqual(run(case, self.index.hosted_tags_of("r", "sha256:1")), ["a", "b", "c"])
        case.assertEqual(run(case, self.index.hosted_tags_of("r", "sha256:2")), [])


class SqlitePolicyRowsTests(PolicyRowsMixin, SynchronousTestCase):
    def open_pool(self) -> Any:
        return sqlite_pool(self)


class PostgresPolicyRowsTests(PolicyRowsMixin, SynchronousTestCase):
    def open_pool(self) -> Any:
        return postgres_pool(self)
