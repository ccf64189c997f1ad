"""State that several nodes share through the index: runtime settings changed on one apply on the other."""

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.settings.runtime import RuntimeSettings
from tests.fakes import migrated_index


class SettingsAcrossNodesTests(SynchronousTestCase):
    def wait(self, coro):
        return self.successResultOf(Deferred.fromCoroutine(coro))

    def test_a_change_on_one_node_applies_on_the_other_after_reload(self):
        index = migrated_index(self)
        a, b = RuntimeSettings(index, Clock()), RuntimeSettings(index, Clock())
        self.wait(a.load())
        self.wait(b.load())
        self.wait(a.update([("registry.anonymous_pull", "false"), ("uploads.max_sessions", "7")]))
        self.assertTrue(b.get("registry.anonymous_pull"))
        self.wait(b.reload())
        self.assertEqual((b.get("registry.anonymous_pull"), b.get("uploads.max_sessions")), (False, 7))
        self.assertEqual(b.entry("uploads.max_sessions")["value"], "7")
        self.wait(a.reset("uploads.max_sessions"))
        self.wait(b.reload())
        self.assertEqual(b.get("uploads.max_sessions"), 1024)
        self.assertIsNone(b.entry("uploads.max_sessions")["updated_at"])
