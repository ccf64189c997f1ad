"""Eviction: retention, LRU/LFU/FIFO victims, hosted content, readers, batches, stats.

Synchronous, on the collaborators of an app built by `harbor_cache.testing.build_app`:
SQL on a real sqlite file through InlinePool, files through InlineIO, time from a
Clock.  Each test builds the Evictor it examines (batch size, counted yields).
"""

from __future__ import annotations

import os

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.core.operations.eviction import DAY, Evictor, human_size
from harbor_cache.storage import RangeProducer
from harbor_cache.testing import build_app

T0 = 1_700_000_000.0


class PausingConsumer:
    """A consumer that pauses its producer at once: a client reading slowly."""

    def __init__(self):
        self.data = b""
        self.producer = None

    def registerProducer(self, producer, streaming):
        self.producer = producer
        producer.pauseProducing()

    def unregisterProducer(self):
        self.producer = None

    def write(self, data):
        self.data += data


class EvictionCase(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(T0)
        self.app = app = build_app(self.mktemp(), clock=self.clock)
        self.addCleanup(app.db_pool.close)
        self.index = app.index
        self.pool = app.db_pool
        self.storage = app.storage
        self.settings = app.settings
        self.access = app.access
        self.downloads = app.downloads
        self.cooperations = 0
        self.invalidated = []
        self.evictor = self.make_evictor()

    def make_evictor(self, batch_size=500, cooperate=None):
        def _cooperate():
            self.cooperations += 1
            return defer.succeed(None)

        evictor = Evictor(
            index=self.index,
            storage=self.storage,
            downloads=self.downloads,
            settings=self.settings,
            access=self.access,
            clock=self.clock,
            batch_size=batch_size,
            cooperate=cooperate or _cooperate,
        )
        evictor.invalidators.append(lambda *a: self.invalidated.append(a))
        return evictor

    def count_calls(self, name: str) -> list:
        """The arguments of every call of ``self.index.<name>`` from now on (the calls still go through)."""
        calls: list = []
        real = getattr(self.index, name)

        async def counted(*args, **kw):
            calls.append(list(args[0]) if len(args) == 1 and not kw else args)
            return await real(*args, **kw)

        self.patch(self.index, name, counted)
        return calls

    def wait(self, coro):
        return self.successResultOf(defer.ensureDeferred(coro))

    def configure(self, **values):
        pairs = [(k.replace("__", "."), str(v)) for k, v in values.items()]
        self.wait(self.settings.update(pairs))

    def add(
        self,
        name,
        size=100,
        *,
        kind="proxy",
        type_="blob",
        repository="",
        created=0.0,
        accessed=None,
        hits=0,
        data=None,
    ):
        """Store a file of ``size`` bytes and an entry for it; returns the entry."""
        data = data if data is not None else (name.encode() * size)[:size]
        digest = self.wait(self.storage.store_bytes(data))
        key = digest if type_ == "blob" else name
        entry = self.wait(
            self.index.put_entry(
                kind=kind, type_=type_, repository=repository, key=key, digest=digest, size=len(data), now=T0 + created
            )
        )
        if accessed is not None or hits:
            when = T0 + (accessed if accessed is not None else created)
            self.wait(self.index.record_access({entry.id: (when, hits)}, {}))
        return entry

    def remaining(self):
        rows = self.wait(self.index.proxy_entries_page("id", None, 10_000))
        hosted = self.pool.conn.execute("SELECT id FROM entries WHERE kind = 'hosted'").fetchall()
        return sorted([r.id for r in rows] + [r[0] for r in hosted])

    def on_disk(self, entry):
        return os.path.exists(self.storage.blob_path(entry.digest))

    def run_pass(self):
        return self.wait(self.evictor.run())


class PolicyTests(EvictionCase):
    def test_lru_evicts_least_recently_accessed_until_under_limit(self):
        """lru: the two entries accessed longest ago go; 200 bytes are left under a 250-byte limit."""
        a = self.add("a", created=0, accessed=40)
        b = self.add("b", created=1, accessed=10)
        c = self.add("c", created=2, accessed=30)
        d = self.add("d", created=3, accessed=20)
        self.configure(cache__max_size=250, cache__eviction_policy="lru")
        self.assertEqual(self.run_pass(), 2)
        self.assertEqual(self.remaining(), sorted([a.id, c.id]))
        self.assertFalse(self.on_disk(b))
        self.assertFalse(self.on_disk(d))
        self.assertTrue(self.on_disk(a))
        self.assertTrue(self.on_disk(c))

    def test_lfu_evicts_least_frequently_used(self):
        """lfu: the entries with the fewest hits go first, whatever their age."""
        a = self.add("a", created=0, accessed=1, hits=5)
        b = self.add("b", created=1, accessed=50, hits=1)
        c = self.add("c", created=2, accessed=2, hits=3)
        d = self.add("d", created=3, accessed=60, hits=2)
        self.configure(cache__max_size=250, cache__eviction_policy="lfu")
        self.assertEqual(self.run_pass(), 2)
        self.assertEqual(self.remaining(), sorted([a.id, c.id]))
        self.assertFalse(self.on_disk(b))
        self.assertFalse(self.on_disk(d))

    def test_lfu_ties_break_by_last_access(self):
        """lfu: among equal counts the one accessed longest ago goes."""
        a = self.add("a", created=0, accessed=30, hits=1)
        self.add("b", created=1, accessed=10, hits=1)
        self.configure(cache__max_size=150, cache__eviction_policy="lfu")
        self.assertEqual(self.run_pass(), 1)
        self.assertEqual(self.remaining(), [a.id])

    def test_fifo_evicts_oldest_created(self):
        """fifo: creation order, even for entries accessed a moment ago."""
        a = self.add("a", created=0, accessed=100, hits=9)
        b = self.add("b", created=1, accessed=2)
        c = self.add("c", created=2, accessed=3)
        self.configure(cache__max_size=150, cache__eviction_policy="fifo")
        self.assertEqual(self.run_pass(), 2)
        self.assertEqual(self.remaining(), [c.id])
        self.assertFalse(self.on_disk(a))
        self.assertFalse(self.on_disk(b))

    def test_under_limit_nothing_is_evicted(self):
        """Below cache.max_size a pass removes nothing."""
        self.add("a")
        self.add("b")
        self.assertEqual(self.run_pass(), 0)
        self.assertEqual(len(self.remaining()), 2)

    def test_unflushed_hits_count(self):
        """A pass flushes the access recorder first, so a hit seconds ago protects the entry under lru."""
        a = self.add("a", created=0, accessed=0)
        b = self.add("b", created=1, accessed=1)
        self.clock.advance(100)
        self.access.touch(a.id)
        self.configure(cache__max_size=150)
        self.assertEqual(self.run_pass(), 1)
        self.assertEqual(self.remaining(), [a.id])
        self.assertFalse(self.on_disk(b))

    def test_smaller_limit_applies_at_next_pass(self):
        """Changing cache.max_size through the settings takes effect at the next pass, without a restart."""
        for n in "abcd":
            self.add(n, created="abcd".index(n))
        self.assertEqual(self.run_pass(), 0)
        self.configure(cache__max_size=100)
        self.assertEqual(self.run_pass(), 3)
        self.assertEqual(len(self.remaining()), 1)


class RetentionTests(EvictionCase):
    def test_entries_unused_for_retention_days_go(self):
        """Retention removes proxy entries not accessed for cache.retention_days, even under the size limit."""
        old = self.add("old", created=0, accessed=0)
        fresh = self.add("fresh", created=0, accessed=2 * DAY)
        self.clock.advance(2 * DAY + 10)
        self.configure(cache__retention_days=1)
        self.assertEqual(self.run_pass(), 1)
        self.assertEqual(self.remaining(), [fresh.id])
        self.assertFalse(self.on_disk(old))

    def test_retention_zero_is_off(self):
        """cache.retention_days = 0 keeps everything (only the size limit applies)."""
        self.add("old", created=0, accessed=0)
        self.clock.advance(400 * DAY)
        self.configure(cache__retention_days=0)
        self.assertEqual(self.run_pass(), 0)

    def test_retention_never_removes_hosted(self):
        """Pushed content is never expired by retention."""
        hosted = self.add("pushed", kind="hosted", type_="manifest", repository="me/app", created=0)
        self.clock.advance(100 * DAY)
        self.configure(cache__retention_days=1)
        self.assertEqual(self.run_pass(), 0)
        self.assertEqual(self.remaining(), [hosted.id])
        self.assertTrue(self.on_disk(hosted))


class SafetyTests(EvictionCase):
    def test_hosted_survives_and_does_not_count(self):
        """Hosted entries are never evicted and their bytes do not count against cache.max_size."""
        hosted = self.add("hosted", size=1000, kind="hosted", created=0, accessed=0)
        proxy = self.add("proxy", size=100, created=5, accessed=5)
        self.configure(cache__max_size=100)
        self.assertEqual(self.run_pass(), 0)
        self.configure(cache__max_size=50)
        self.assertEqual(self.run_pass(), 1)
        self.assertEqual(self.remaining(), [hosted.id])
        self.assertTrue(self.on_disk(hosted))
        self.assertFalse(self.on_disk(proxy))

    def test_entry_that_became_hosted_is_not_deleted(self):
        """The DELETE re-checks kind: an entry pushed after it was picked survives."""
        entry = self.add("x")
        self.wait(
            self.index.put_entry(
                kind="hosted",
                type_="blob",
                repository="",
                key=entry.key,
                digest=entry.digest,
                size=entry.size,
                now=T0 + 5,
            )
        )
        deleted, orphans = self.wait(self.index.delete_proxy_entries([entry.id]))
        self.assertEqual((deleted, orphans), ([], []))
        self.assertEqual(self.remaining(), [entry.id])

    def test_streamed_blob_is_not_deleted_under_its_reader(self):
        """An entry whose file is being streamed is skipped; the next candidate goes instead."""
        streamed = self.add("streamed", created=0, accessed=0)
        other = self.add("other", created=1, accessed=1)
        keep = self.add("keep", created=2, accessed=2)
        consumer = PausingConsumer()
        producer = RangeProducer(self.storage.open_stored(streamed.digest), consumer)
        producer.start()
        self.assertIn(streamed.digest, self.storage.digests_being_read())
        self.configure(cache__max_size=200)
        self.assertEqual(self.run_pass(), 1)
        self.assertEqual(self.remaining(), sorted([streamed.id, keep.id]))
        self.assertTrue(self.on_disk(streamed))
        self.assertFalse(self.on_disk(other))
        # The reader still gets every byte.
        producer.resumeProducing()
        self.assertEqual(len(consumer.data), streamed.size)

    def test_clear_while_streaming_defers_the_file(self):
        """DELETE /api/v1/cache removes the row of a streamed blob but unlinks its file only once nobody reads it."""
        streamed = self.add("streamed")
        consumer = PausingConsumer()
        producer = RangeProducer(self.storage.open_stored(streamed.digest), consumer)
        producer.start()
        self.assertEqual(self.wait(self.evictor.clear_proxy()), 1)
        self.assertEqual(self.remaining(), [])
        self.assertTrue(self.on_disk(streamed))
        self.assertEqual(self.evictor.pending_files, {streamed.digest})
        producer.resumeProducing()  # reads to the end, then leaves the readers
        self.assertEqual(len(consumer.data), streamed.size)
        self.run_pass()
        self.assertFalse(self.on_disk(streamed))
        self.assertEqual(self.evictor.pending_files, set())

    def test_pending_file_recommitted_is_kept(self):
        """A pending file whose digest is back in the index (fetched again) is not deleted."""
        entry = self.add("again")
        self.evictor.pending_files.add(entry.digest)
        self.run_pass()
        self.assertTrue(self.on_disk(entry))
        self.assertEqual(self.evictor.pending_files, set())

    def test_downloading_digest_is_skipped(self):
        """An entry whose digest is in the in-flight table is not evicted."""
        busy = self.add("busy", created=0, accessed=0)
        other = self.add("other", created=1, accessed=1)
        self.downloads.inflight[("blob", busy.digest)] = object()
        self.configure(cache__max_size=100)
        self.assertEqual(self.run_pass(), 1)
        self.assertEqual(self.remaining(), [busy.id])
        self.assertFalse(self.on_disk(other))

    def test_a_file_fetched_again_whose_row_is_on_its_way_is_kept(self):
        """A Maven file fetched again after its row went: the download renamed the same bytes into the store and
        waits for the writer to add its row; the clear's unlink (rows gone, digest unreferenced) leaves it."""
        old = self.add("com/acme/a/1/a-1.jar", type_="maven", repository="central")
        self.add("other")

        class Finishing:  # a `Download` past `TempBlob.finish`: hashes known, keyed by path (no digest in it)
            temp = type("Temp", (), {"hashes": {"sha256": old.digest.partition(":")[2], "sha1": "0" * 40}})()

        key = ("maven", "central", old.key)
        self.downloads.inflight[key] = Finishing()
        self.assertEqual(self.wait(self.evictor.clear_proxy()), 2)
        self.assertTrue(self.on_disk(old))
        self.assertEqual(self.evictor.pending_files, {old.digest})
        # its row lands, the download leaves the table: the next pass keeps the file for the row
        del self.downloads.inflight[key]
        again = self.add("com/acme/a/1/a-1.jar", type_="maven", repository="central")
        self.run_pass()
        self.assertTrue(self.on_disk(again))
        self.assertEqual(self.evictor.pending_files, set())

    def test_a_digest_a_push_is_committing_is_kept(self):
        """A hosted push of the same bytes holds the digest between its rename and its row (`Storage.commit`):
        the clear deletes the cached row and leaves the file; once the hosted row is there the next pass keeps it."""
        cached = self.add("cached")
        commit = self.storage.commit()
        commit.add(cached.digest)
        self.assertIn(cached.digest, self.evictor.busy_digests())
        self.assertEqual(self.wait(self.evictor.clear_proxy()), 1)
        self.assertTrue(self.on_disk(cached))
        self.assertEqual(self.evictor.pending_files, {cached.digest})
        self.add("cached", kind="hosted")  # the push's row
        commit.release()
        self.run_pass()
        self.assertTrue(self.on_disk(cached))
        self.assertEqual(self.evictor.pending_files, set())

    def test_a_push_begun_after_the_busy_check_keeps_its_file(self):
        """A push that holds the digest after the unlink asked `busy_digests` (its rename may come before the
        unlink runs on the I/O pool): the store's unlink checks the hold again and leaves the file."""
        cached = self.add("cached")
        commit = self.storage.commit()
        real = self.evictor.busy_digests

        def busy_then_a_push():
            busy = real()
            commit.add(cached.digest)
            return busy

        self.patch(self.evictor, "busy_digests", busy_then_a_push)
        self.assertEqual(self.wait(self.evictor.clear_proxy()), 1)
        self.assertTrue(self.on_disk(cached))
        commit.release()

    def test_a_push_done_during_the_index_check_keeps_its_file(self):
        """A push of the same bytes that holds, renames, writes its row and releases while the unlink's index
        check is under way (its answer predates the row): the watch begun before the check keeps the file."""
        cached = self.add("cached")
        real = self.index.digests_referenced

        async def stale_check(digests):
            answer = await real(digests)  # (read before the push's row)
            with self.storage.commit() as commit:
                commit.add(cached.digest)
                self.add("cached", kind="hosted")  # the push: file in place again, row written
            return answer

        self.patch(self.index, "digests_referenced", stale_check)
        self.assertEqual(self.wait(self.evictor.clear_proxy()), 1)
        self.assertTrue(self.on_disk(cached))
        self.patch(self.index, "digests_referenced", real)
        self.run_pass()  # the pending file now has its hosted row: kept for good
        self.assertTrue(self.on_disk(cached))
        self.assertEqual(self.evictor.pending_files, set())

    def test_shared_digest_file_kept_until_last_reference(self):
        """A file referenced by two entries stays until both are gone."""
        data = b"m" * 100
        first = self.add("one", type_="manifest", repository="a/x", data=data, created=0, accessed=0)
        second = self.add("two", type_="manifest", repository="b/x", data=data, created=1, accessed=1)
        self.assertEqual(first.digest, second.digest)
        deleted, orphans = self.wait(self.index.delete_proxy_entries([first.id]))
        self.assertEqual(orphans, [])
        self.assertEqual(self.remaining(), [second.id])
        self.configure(cache__max_size=1)
        self.assertEqual(self.run_pass(), 1)
        self.assertFalse(self.on_disk(second))

    def test_invalidators_hear_each_deleted_entry(self):
        """Every registered invalidator is told (type, repository, key) of each removed entry."""
        m = self.add("manifest", type_="manifest", repository="lib/x", created=0, accessed=0)
        b = self.add("blob", created=1, accessed=1)
        self.wait(self.evictor.clear_proxy())
        self.assertEqual(sorted(self.invalidated), sorted([("manifest", "lib/x", m.key), ("blob", "", b.key)]))

    def test_a_failing_invalidator_does_not_stop_eviction(self):
        """An invalidator that raises is logged; the pass goes on."""
        self.evictor.invalidators.insert(0, lambda *a: 1 / 0)
        self.add("x")
        self.assertEqual(self.wait(self.evictor.clear_proxy()), 1)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_clear_keeps_hosted(self):
        """clear_proxy removes every proxy entry and file, and no hosted one."""
        hosted = self.add("hosted", kind="hosted")
        proxies = [self.add(n) for n in "abc"]
        self.assertEqual(self.wait(self.evictor.clear_proxy()), 3)
        self.assertEqual(self.remaining(), [hosted.id])
        self.assertTrue(self.on_disk(hosted))
        self.assertFalse(any(self.on_disk(p) for p in proxies))

    def test_clear_refreshes_the_planner_statistics(self):
        """After DELETE /api/v1/cache sqlite's statistics count the rows left (ANALYZE), not those before."""

        def entries_rows(txn):
            txn.execute("SELECT stat FROM sqlite_stat1 WHERE idx = 'entries_kind_access'")
            row = txn.fetchone()
            return int(row[0].split()[0]) if row else None

        hosted = self.add("hosted", kind="hosted")
        for n in "abcdef":
            self.add(n)
        self.wait(self.index.analyze())
        self.assertEqual(self.successResultOf(self.pool.runInteraction(entries_rows)), 7)
        self.assertEqual(self.wait(self.evictor.clear_proxy()), 6)
        self.assertEqual(self.remaining(), [hosted.id])
        self.assertEqual(self.successResultOf(self.pool.runInteraction(entries_rows)), 1)

    def test_a_pass_with_nothing_to_evict_reads_the_maintained_total(self):
        """Under max_size, with retention off, a pass pages through no entries: one row says nothing is due."""
        for n in "abc":
            self.add(n)
        self.configure(cache__max_size=10_000, cache__retention_days=0)
        pages = self.count_calls("proxy_entries_page")
        self.assertEqual(self.wait(self.evictor.run()), 0)
        self.assertEqual(pages, [])
        self.assertEqual(self.evictor.last_pass["evictable_size"], 300)

    def test_access_recorder_forgets_deleted_entries(self):
        """Pending touches of evicted entries are dropped (no UPDATE of a row that is gone)."""
        e = self.add("x")
        self.access.touch(e.id)
        self.wait(self.evictor.clear_proxy())
        self.assertEqual(self.wait(self.access.flush()), 0)


class RebuildClearTests(SafetyTests):
    """Every safety test again with DELETE /api/v1/cache done in one rebuilding transaction (index/clear_rebuild.py)."""

    def setUp(self):
        super().setUp()
        self.configure(cache__clear_rebuild_min_entries=1)

    def test_the_clear_is_one_transaction(self):
        """With most of the index proxied, no batch deletion runs: the rows go at once, the files after."""
        hosted = self.add("hosted", kind="hosted")
        proxies = [self.add(f"p{i}") for i in range(5)]
        self.patch(self.index, "delete_proxy_entries", lambda ids: self.fail("batches ran"))
        self.assertEqual(self.wait(self.evictor.clear_proxy()), 5)
        self.assertEqual(self.remaining(), [hosted.id])
        self.assertFalse(any(self.on_disk(p) for p in proxies))
        self.assertTrue(self.on_disk(hosted))
        self.assertEqual(self.wait(self.index.cleared_rows_page(0, 10)), [])  # its rows are dropped after

    def test_a_digest_shared_with_hosted_content_keeps_its_file(self):
        """A proxy row whose bytes a hosted row also names goes; the file stays for the hosted row."""
        data = b"s" * 100
        hosted = self.add("h", kind="hosted", type_="manifest", repository="a/x", data=data)
        proxy = self.add("p", type_="manifest", repository="b/x", data=data)
        others = [self.add(f"o{i}") for i in range(3)]
        self.assertEqual(self.wait(self.evictor.clear_proxy()), 4)
        self.assertEqual(self.remaining(), [hosted.id])
        self.assertTrue(self.on_disk(proxy))  # the same digest as hosted
        self.assertFalse(any(self.on_disk(o) for o in others))
        totals = self.wait(self.index.cache_totals())
        self.assertEqual((totals.entries, totals.proxy, totals.total_size), (1, 0, 100))
        self.assertEqual(self.wait(self.index.evictable_size()), 0)

    def test_a_hosted_heavy_index_is_cleared_in_batches(self):
        """Fewer proxied rows than hosted ones: the batches do it (the rebuild would re-read what stays)."""
        for i in range(3):
            self.add(f"h{i}", kind="hosted")
        self.add("p")
        calls = self.count_calls("delete_proxy_entries")
        self.assertEqual(self.wait(self.evictor.clear_proxy()), 1)
        self.assertEqual(len(calls), 1)

    def test_zero_turns_the_rebuild_off(self):
        """cache.clear_rebuild_min_entries = 0: always batches."""
        self.configure(cache__clear_rebuild_min_entries=0)
        self.add("p")
        self.patch(self.index, "clear_proxy_rebuild", lambda n: self.fail("rebuild ran"))
        self.assertEqual(self.wait(self.evictor.clear_proxy()), 1)

    def test_a_shared_index_is_cleared_in_batches(self):
        """Other processes write the same index ([server] workers): batches, whatever the setting says."""
        self.evictor.single_writer = False
        self.add("p")
        self.patch(self.index, "clear_proxy_rebuild", lambda n: self.fail("rebuild ran"))
        self.assertEqual(self.wait(self.evictor.clear_proxy()), 1)


class BatchTests(EvictionCase):
    def test_batches_yield_and_keep_order(self):
        """With small batches the pass hands the reactor back between batches and still picks lru victims."""
        self.evictor = self.make_evictor(batch_size=2)
        entries = [self.add(f"e{i}", created=i, accessed=10 - i) for i in range(7)]
        self.configure(cache__max_size=300)
        self.assertEqual(self.run_pass(), 4)
        self.assertEqual(self.remaining(), sorted(e.id for e in entries[:3]))
        self.assertGreaterEqual(self.cooperations, 1)

    def test_clear_deletes_in_batches_of_its_own_size(self):
        """A clear walks proxy rows by id in clear_batch_size transactions, yielding between them."""
        self.evictor = self.make_evictor(batch_size=2)
        self.evictor.clear_batch_size = 3
        for i in range(7):
            self.add(f"c{i}")
        calls = self.count_calls("delete_proxy_entries")
        self.assertEqual(self.wait(self.evictor.clear_proxy()), 7)
        self.assertEqual([len(c) for c in calls], [3, 3, 1])
        self.assertEqual(sum(calls, []), sorted(sum(calls, [])))  # by id
        self.assertGreaterEqual(self.cooperations, 2)

    def test_skipped_rows_do_not_stall_paging(self):
        """A page full of busy rows is skipped over, not fetched again forever."""
        self.evictor = self.make_evictor(batch_size=2)
        busy = [self.add(f"busy{i}", created=i, accessed=i) for i in range(4)]
        free = self.add("free", created=9, accessed=9)
        for e in busy:
            self.downloads.inflight[("blob", e.digest)] = object()
        self.configure(cache__max_size=400)
        self.assertEqual(self.run_pass(), 1)
        self.assertFalse(self.on_disk(free))

    def test_passes_do_not_overlap(self):
        """A second pass (the cleanup endpoint) waits for the running one (the timer's)."""
        gate = defer.Deferred()
        self.evictor = self.make_evictor(batch_size=1, cooperate=lambda: gate)
        for i in range(3):
            self.add(f"e{i}", created=i, accessed=i)
        self.configure(cache__max_size=100)
        first = defer.ensureDeferred(self.evictor.run())
        second = defer.ensureDeferred(self.evictor.run())
        self.assertNoResult(first)
        self.assertNoResult(second)
        gate.callback(None)
        self.assertEqual(self.successResultOf(first), 2)
        self.assertEqual(self.successResultOf(second), 0)

    def test_cancelled_caller_does_not_cut_a_pass(self):
        """A client that leaves (Klein cancels its Deferred) does not stop the pass half-way."""
        gate = defer.Deferred()
        self.evictor = self.make_evictor(batch_size=1, cooperate=lambda: gate)
        entries = [self.add(f"e{i}", created=i, accessed=i) for i in range(3)]
        waiting = defer.ensureDeferred(self.evictor.clear_proxy())
        waiting.cancel()
        self.failureResultOf(waiting, defer.CancelledError)
        gate.callback(None)
        self.assertEqual(self.remaining(), [])
        self.assertFalse(any(self.on_disk(e) for e in entries))


class StatsTests(EvictionCase):
    def test_stats_fields(self):
        """Counts by type, bytes with each digest once, hits and misses from the recorder."""
        data = b"z" * 300
        self.add("m1", type_="manifest", repository="a", data=data)
        self.add("m2", type_="manifest", repository="b", data=data)  # same file
        self.add("b1", size=1000)
        self.add("jar", type_="maven", repository="central", size=24)
        self.access.count("hits", 3)
        self.access.count("misses", 1)
        stats = self.wait(self.evictor.stats())
        self.assertEqual(
            stats,
            {
                "total_size": 1324,
                "total_size_human": "1.29 KB",
                "entry_count": 4,
                "manifest_count": 2,
                "blob_count": 2,
                "hit_count": 3,
                "miss_count": 1,
                "hit_rate": 0.75,
                # [storage] (issue 26): where the bytes are; null without a bucket
                "storage_backend": "filesystem",
                "bucket_bytes": None,
                "local_tier_bytes": None,
            },
        )

    def test_stats_of_an_empty_cache(self):
        """No entries and no lookups: zeros, and a hit rate of 0.0 (not a division error)."""
        stats = self.wait(self.evictor.stats())
        self.assertEqual(stats["total_size_human"], "0 B")
        self.assertEqual(stats["hit_rate"], 0.0)

    def test_human_size(self):
        """1024-based units with two decimals, as the seed's "1.00 GB"."""
        self.assertEqual(human_size(0), "0 B")
        self.assertEqual(human_size(1023), "1023 B")
        self.assertEqual(human_size(1024), "1.00 KB")
        self.assertEqual(human_size(1536), "1.50 KB")
        self.assertEqual(human_size(1 << 30), "1.00 GB")
        self.assertEqual(human_size((1 << 20) - 1), "1.00 MB")
        self.assertEqual(human_size(10 * (1 << 40)), "10.00 TB")


class FakeSpace:
    """A `DiskSpace` whose free bytes the test sets."""

    def __init__(self, floor):
        self.floor_bytes = floor
        self.free_bytes = floor

    def free(self):
        return self.free_bytes

    def shortfall(self):
        return max(0, self.floor_bytes - self.free_bytes)


class FreeSpaceFloorLogTests(EvictionCase):
    def setUp(self):
        super().setUp()
        self.space = self.evictor.space = FakeSpace(1 << 30)
        self.lines = []

        def observe(event):
            if event.get("log_namespace") == "harbor_cache.core.operations.eviction":
                self.lines.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def test_below_the_floor_is_logged_once_per_state_change(self):
        """A disk that stays below cache.min_free_bytes logs one line, not one per pass; so does the way back.

        First pass: below, one entry to evict (the "below" line); then nothing
        left to evict (one "no proxied content left" line for any number of
        passes); then free again (one "back above" line); below again: logged again.
        """
        self.add("a", 100)
        self.space.free_bytes -= 50
        self.assertEqual(self.run_pass(), 1)
        self.assertEqual(len([line for line in self.lines if "below cache.min_free_bytes: evicting" in line]), 1)
        for _ in range(5):
            self.assertEqual(self.run_pass(), 0)
        below = [line for line in self.lines if "below cache.min_free_bytes" in line]
        self.assertEqual(len(below), 2, below)  # "evicting", then "no proxied content left"
        self.assertIn("no proxied content left to evict", below[1])
        self.assertEqual(self.evictor.floor_state, "stuck")
        self.space.free_bytes = self.space.floor_bytes
        self.run_pass()
        self.run_pass()
        self.assertEqual(len([line for line in self.lines if "back above" in line]), 1)
        self.space.free_bytes -= 1
        self.run_pass()
        self.run_pass()
        self.assertEqual(len([line for line in self.lines if "below cache.min_free_bytes: evicting" in line]), 2)
