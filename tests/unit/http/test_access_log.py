"""The access log file (``[log] access_file``): buffering, flushes, line content, wiring, default unchanged."""

from __future__ import annotations

import json
import os
import time

from treq.client import HTTPClient
from treq.testing import RequestTraversalAgent
from twisted.application import service
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.daemon import make_service
from harbor_cache.http.access_log import AccessLogFile, AccessLogService, resolve_path
from harbor_cache.http.resources import Root
from harbor_cache.http.site import HarborSite
from harbor_cache.metrics import Metrics
from harbor_cache.settings.startup import Config, ConfigError, parse_config
from harbor_cache.testing import build_app

# 2026-12-03T08:00:00Z
NOON_ISH = 1796284800.0


class _FakeRequest:
    """What `HarborSite.log` reads."""

    front = "site"

    def __init__(self, method: bytes, code: int, cache_status: str | None, upstream: str | None, lost: bool):
        self.method, self.code, self.uri = method, code, b"/x?y=1"
        self.cache_status, self.upstream, self.sentLength = cache_status, upstream, 12
        self.started_at = time.monotonic()
        if lost:
            self.channel_lost = True


class AccessLogFileTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(NOON_ISH + 0.25)
        self.path = os.path.abspath(self.mktemp())
        self.log = AccessLogFile(self.path, self.clock)
        self.addCleanup(self.log.close)

    def lines(self) -> list[dict]:
        with open(self.path, encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    def one(self, path: str = "/a", status: str = "200") -> None:
        self.log.line("GET", path, status, 5, 1.23456789, "hit", "-")

    def test_line_is_buffered_until_the_timer(self):
        """Nothing is written at once; the timer writes everything buffered one second after the first line."""
        self.one("/a")
        self.clock.advance(0.5)
        self.one("/b")
        self.assertEqual(self.lines(), [])
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(0.5)
        self.assertEqual([x["path"] for x in self.lines()], ["/a", "/b"])
        self.assertEqual(self.clock.getDelayedCalls(), [], "no timer while nothing is buffered")
        self.one("/c")
        self.clock.advance(1.0)
        self.assertEqual([x["path"] for x in self.lines()], ["/a", "/b", "/c"])

    def test_rotation_by_size_keeps_every_line(self):
        """Past max_bytes the file becomes .1 (.1 -> .2, ...), a new one is opened; keep bounds the old ones."""
        path = os.path.join(os.path.abspath(self.mktemp()), "logs", "access.log")  # the directory is created
        log = AccessLogFile(path, self.clock, max_bytes=400, keep=2)
        self.addCleanup(log.close)
        for i in range(30):  # a line is ~170 bytes: a flush per line, a rotation every third flush
            log.line("GET", "/%d" % i, "200", 1, 1.0, "-", "-")
            log.flush()
        names = sorted(os.listdir(os.path.dirname(path)))
        self.assertEqual(names, ["access.log", "access.log.1", "access.log.2"])

        def paths(name):
            with open(os.path.join(os.path.dirname(path), name)) as f:
                return [json.loads(x)["path"] for x in f]

        kept = paths("access.log.2") + paths("access.log.1") + paths("access.log")
        self.assertEqual(kept, ["/%d" % i for i in range(30 - len(kept), 30)], "in order, none lost or split")
        self.assertEqual(len(paths("access.log.1")), 3)
        self.assertLessEqual(os.path.getsize(path + ".1"), 400 + 200)

    def test_rotation_continues_an_existing_file(self):
        """The size of a file already there counts (a restart does not let it grow past max_bytes)."""
        with open(self.path + "-old", "w") as f:
            f.write("x" * 1000 + "\n")
        log = AccessLogFile(self.path + "-old", self.clock, max_bytes=1000)
        self.addCleanup(log.close)
        self.one()
        log.line("GET", "/a", "200", 5, 1.0, "hit", "-")
        log.flush()
        self.assertTrue(os.path.exists(self.path + "-old.1"))
        self.assertEqual(os.path.getsize(self.path + "-old"), 0)

    def test_no_rotation_with_zero(self):
        log = AccessLogFile(self.path + "-big", self.clock, max_bytes=0)
        self.addCleanup(log.close)
        for _ in range(20):
            log.line("GET", "/a", "200", 5, 1.0, "hit", "-")
            log.flush()
        self.assertFalse(os.path.exists(self.path + "-big.1"))

    def test_large_buffer_is_written_at_once(self):
        """Over flush_bytes the buffer is written without waiting, and the pending timer is cancelled."""
        log = AccessLogFile(self.path + "-small", self.clock, flush_bytes=300)
        self.addCleanup(log.close)
        log.line("GET", "/a", "200", 1, 1.0, "-", "-")
        self.assertEqual(os.path.getsize(log.path), 0)
        log.line("GET", "/" + "b" * 300, "200", 1, 1.0, "-", "-")
        with open(log.path) as f:
            self.assertEqual(len(f.read().splitlines()), 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_close_flushes_and_later_lines_are_written_through(self):
        self.one("/a")
        self.log.close()
        self.assertEqual([x["path"] for x in self.lines()], ["/a"])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.one("/late")
        self.assertEqual([x["path"] for x in self.lines()], ["/a", "/late"])

    def test_appends_to_an_existing_file(self):
        with open(self.path + "-old", "w") as f:
            f.write('{"old": 1}\n')
        log = AccessLogFile(self.path + "-old", self.clock)
        log.line("GET", "/a", "200", 1, 1.0, "-", "-")
        log.close()
        with open(self.path + "-old") as f:
            self.assertEqual([json.loads(x) for x in f][0], {"old": 1})

    def test_line_fields(self):
        self.log.line("HEAD", "/v2/x/manifests/é?n=1", "aborted", 0, 12.3456789, "miss", "hub")
        self.log.flush()
        self.assertEqual(
            self.lines(),
            [
                {
                    "time": "2026-12-03T08:00:00.250Z",
                    "method": "HEAD",
                    "path": "/v2/x/manifests/é?n=1",
                    "status": "aborted",
                    "bytes": 0,
                    "duration_ms": 12.346,
                    "cache_status": "miss",
                    "upstream": "hub",
                }
            ],
        )

    def test_line_is_what_json_dumps_writes(self):
        """The hand-built line is byte for byte the compact json.dumps of the fields (quotes, escapes, Unicode)."""
        for path, duration in (('/a"b\\c\n\x01', 0.5), ("/é/\u2028/\U0001f600", 1e-7), ("/x", 123456789.123456)):
            self.log.line("GET", path, "200", 7, duration, "hit", 'up"stream')
        self.log.flush()
        with open(self.path, encoding="utf-8") as f:
            raw = f.read().splitlines()
        for text in raw:
            fields = json.loads(text)
            self.assertEqual(text, json.dumps(fields, separators=(",", ":")))
        self.assertEqual([json.loads(x)["path"] for x in raw], ['/a"b\\c\n\x01', "/é/\u2028/\U0001f600", "/x"])
        self.assertEqual([json.loads(x)["duration_ms"] for x in raw], [0.5, 0.0, 123456789.123])

    def test_service_closes_on_stop(self):
        top = service.MultiService()
        AccessLogService(self.log).setServiceParent(top)
        top.startService()
        self.one("/a")
        top.stopService()
        self.assertTrue(self.log.closed)
        self.assertEqual([x["path"] for x in self.lines()], ["/a"])


class SiteAccessFileTests(SynchronousTestCase):
    """`HarborSite.log` writes the event's values to the file instead of emitting the event, when configured."""

    def setUp(self):
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        self.clock = Clock()
        self.clock.advance(NOON_ISH)

    def requests(self):
        return [
            _FakeRequest(b"GET", 200, "hit", None, False),
            _FakeRequest(b"HEAD", 404, None, "hub", False),
            _FakeRequest(b"BREW", 500, "miss", None, True),
        ]

    def access_events(self):
        return [e for e in self.events if e.get("log_namespace") == "harbor_cache.access"]

    def test_line_equals_the_event_and_no_event_is_emitted(self):
        plain = HarborSite(Root(), Metrics(), reactor=Clock())
        for request in self.requests():
            plain.log(request)
        expected = self.access_events()
        self.assertEqual(len(expected), 3, "default: one twisted.logger event per request")
        self.events.clear()

        path = os.path.abspath(self.mktemp())
        access_file = AccessLogFile(path, self.clock)
        site = HarborSite(Root(), Metrics(), reactor=Clock(), access_file=access_file)
        for request in self.requests():
            site.log(request)
        access_file.close()
        self.assertEqual(self.access_events(), [])
        with open(path) as f:
            lines = [json.loads(x) for x in f]
        keys = ("method", "path", "status", "bytes", "cache_status", "upstream")
        self.assertEqual([{k: x[k] for k in keys} for x in lines], [{k: e[k] for k in keys} for e in expected])
        for line, event in zip(lines, expected, strict=True):
            self.assertLess(abs(line["duration_ms"] - event["duration_ms"]), 50.0)
            self.assertEqual(line["time"], "2026-12-03T08:00:00.000Z")
        samples = {
            (s.labels.get("method"), s.labels.get("status")): s.value
            for s in site.metrics.responses.collect()[0].samples
            if s.name.endswith("_total")
        }
        self.assertEqual(samples, {("GET", "200"): 1.0, ("HEAD", "404"): 1.0, ("other", "aborted"): 1.0})


class ConfigTests(SynchronousTestCase):
    def test_default_is_the_rotated_file_in_the_data_dir(self):
        """Issue 30: no config file means logs/access.log (100 MiB, 5 kept), not the costly main-log event."""
        for config in (parse_config({}), parse_config({"log": {}}), Config()):
            self.assertEqual(
                (config.access_log_file, config.access_max_bytes, config.access_keep),
                ("logs/access.log", 100 * 1024 * 1024, 5),
            )

    def test_dash_is_the_main_log(self):
        self.assertIsNone(parse_config({"log": {"access_file": "-"}}).access_log_file)

    def test_rotation_settings(self):
        config = parse_config({"log": {"access_max_bytes": 0, "access_keep": 12}})
        self.assertEqual((config.access_max_bytes, config.access_keep), (0, 12))
        for doc, message in (
            ({"log": {"access_max_bytes": -1}}, "log.access_max_bytes"),
            ({"log": {"access_max_bytes": "1M"}}, "log.access_max_bytes"),
            ({"log": {"access_keep": 0}}, "log.access_keep"),
            ({"log": {"access_keep": True}}, "log.access_keep"),
        ):
            e = self.assertRaises(ConfigError, parse_config, doc)
            self.assertIn(message, str(e))

    def test_access_file(self):
        self.assertEqual(parse_config({"log": {"access_file": "logs/a.log"}}).access_log_file, "logs/a.log")
        for doc, message in (
            ({"log": {"access_file": ""}}, "log.access_file"),
            ({"log": {"access_file": 3}}, "log.access_file"),
            ({"log": "x"}, "[log]"),
            ({"log": {"error_file": "x"}}, "log.error_file: unknown key"),
        ):
            e = self.assertRaises(ConfigError, parse_config, doc)
            self.assertIn(message, str(e))

    def test_relative_to_data_dir(self):
        self.assertEqual(resolve_path("access.log", "/d"), "/d/access.log")
        self.assertEqual(resolve_path("/var/log/h.log", "/d"), "/var/log/h.log")

    def test_one_file_per_worker(self):
        self.assertEqual(resolve_path("logs/access.log", "/d", worker=1), "/d/logs/access-w1.log")
        self.assertEqual(resolve_path("/var/log/h", "/d", worker=0), "/var/log/h-w0")


class WiringTests(SynchronousTestCase):
    def test_default_opens_the_file_in_the_data_dir(self):
        app = build_app(self.mktemp(), access_log_file=Config().access_log_file)
        self.addCleanup(app.access_file.close)
        self.assertEqual(app.access_file.path, os.path.join(app.data_dir, "logs", "access.log"))
        self.assertEqual((app.access_file.max_bytes, app.access_file.keep), (100 * 1024 * 1024, 5))
        self.assertIs(app.site.access_file, app.access_file)

    def test_main_log_builds_no_file(self):
        app = build_app(self.mktemp(), access_log_file=None)
        self.assertIsNone(app.access_file)
        self.assertIsNone(app.site.access_file)
        self.assertEqual(os.listdir(app.data_dir).count("access.log"), 0)

    def test_configured_file_gets_a_line_per_request(self):
        """A relative path lands in the data dir; a request through the site is one line there."""
        clock = Clock()
        clock.advance(NOON_ISH)
        app = build_app(self.mktemp(), clock=clock, access_log_file="access.log")
        self.addCleanup(app.access_file.close)
        self.assertEqual(app.access_file.path, os.path.join(app.data_dir, "access.log"))
        self.assertIs(app.site.access_file, app.access_file)
        agent = RequestTraversalAgent(app.root)
        agent._serverFactory = HarborSite(
            app.root, app.metrics, reactor=agent._memoryReactor, access_file=app.access_file
        )
        d = HTTPClient(agent).get("http://cache.test/nothing/here")
        agent.flush()
        self.assertEqual(self.successResultOf(d).code, 404)
        clock.advance(1)
        with open(app.access_file.path) as f:
            (line,) = [json.loads(x) for x in f]
        self.assertEqual(
            (line["method"], line["path"], line["status"], line["cache_status"], line["upstream"]),
            ("GET", "/nothing/here", "404", "-", "-"),
        )
        self.assertGreater(line["bytes"], 0)

    def test_make_service_stops_it_after_the_state(self):
        """The AccessLogService is a child of the top service, before the state (so stopped after it)."""
        data_dir = os.path.abspath(self.mktemp())
        config = Config(
            listen="tcp:0:interface=127.0.0.1",
            data_dir=data_dir,
            upstreams=(),
            maven_repositories=(),
            access_log_file="a.log",
        )
        top = make_service(config)
        app = top.harbor
        self.addCleanup(app.access_file.close)
        self.addCleanup(app.db_pool.close)
        children = list(top)
        access = [c for c in children if isinstance(c, AccessLogService)]
        self.assertEqual(len(access), 1)
        self.assertIs(access[0].access_file, app.access_file)
        state = [i for i, c in enumerate(children) if type(c).__name__ == "HarborState"]
        self.assertLess(children.index(access[0]), state[0])
