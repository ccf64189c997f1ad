"""State that several nodes share through the index: runtime settings changed on one apply on the other."""

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.settings.runtime import RuntimeSettings
from tests.unit.base import migrated_index


class SettingsAcrossNodesTests(SynchronousTestCase):
    def wait(self, coro):
        return self.successResultOf(Deferred.fromCoroutine(coro))

    def test_a_change_on_one_node_applies_on_the_other_after_reload(self):
        index = migrated_index(self)
        clock_b = Clock()
        a, b = RuntimeSettings(index, Clock()), RuntimeSettings(index, clock_b)
        self.wait(a.load())
        self.wait(b.load())
        self.wait(a.update([("registry.anonymous_pull", "false"), ("uploads.max_sessions", "7")]))
        self.assertTrue(b.get("registry.anonymous_pull"))
        self.wait(b.reload())
        self.assertEqual((b.get("registry.anonymous_pull"), b.get("uploads.max_sessions")), (False, 7))
        self.assertEqual(b.entry("uploads.max_sessions")["value"], "7")
        self.wait(a.reset("uploads.max_sessions"))
        clock_b.advance(42)
        self.wait(b.reload())
        self.assertEqual(b.get("uploads.max_sessions"), 1024)
        # the default is dated when this node saw it come back (a key never set: this node's start, 0)
        self.assertEqual(b.entry("uploads.max_sessions")["updated_at"], 42)
        self.assertEqual(b.entry("cache.max_size")["updated_at"], 0)
