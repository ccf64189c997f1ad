"""A missing optional driver is one clear line at start-up (issue 23.4); what the file declares is known.

`require` is the mechanism any optional dependency uses; the subprocess
test runs the real ``twist harbor-cache`` with psycopg2 made unimportable
(a module of that name that raises ImportError, first on PYTHONPATH) and
checks what an operator sees: one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from harbor_cache.settings.optional import MissingDependency, require
from harbor_cache.settings.startup import load_config, parse_config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PG_MESSAGE = "`[index] url` is PostgreSQL but psycopg2 is not installed: pip install 'harbor-cache[postgresql]'"


class RequireTests(SynchronousTestCase):
    def block(self, module):
        """``import module`` raises ImportError until the test ends (None in sys.modules does that)."""
        saved = {k: v for k, v in sys.modules.items() if k == module or k.startswith(module + ".")}
        self.addCleanup(lambda: (sys.modules.pop(module, None), sys.modules.update(saved)))
        for k in saved:
            del sys.modules[k]
        sys.modules[module] = None

    def test_require_names_the_setting_and_the_fix(self):
        """A missing module: MissingDependency with the setting, the module and the pip line."""
        self.block("json")
        e = self.assertRaises(MissingDependency, require, "json", needed_by="`[x] y` is on", extra="x")
        self.assertEqual(str(e), "`[x] y` is on but json is not installed: pip install 'harbor-cache[x]'")
        require("os", needed_by="unused", extra="unused")  # present: nothing happens

    def test_postgresql_index_without_psycopg2(self):
        """parse_config refuses a PostgreSQL [index] url when the driver cannot be imported."""
        self.block("psycopg2")
        e = self.assertRaises(MissingDependency, parse_config, {"index": {"url": "postgresql://127.0.0.1/h"}})
        self.assertEqual(str(e), PG_MESSAGE)
        parse_config({"index": {"url": "sqlite:"}})  # the embedded file needs nothing more

    def test_start_prints_one_line_and_fails(self):
        """twist harbor-cache with psycopg2 unimportable: exactly that line, exit status non-zero."""
        shim = os.path.abspath(self.mktemp())
        os.makedirs(shim)
        with open(os.path.join(shim, "psycopg2.py"), "w") as f:
            f.write('raise ImportError("psycopg2 is blocked by this test")\n')
        config = os.path.join(shim, "harbor.toml")
        with open(config, "w") as f:
            f.write('[index]\nurl = "postgresql://127.0.0.1:1/harbor"\n')
        env = {k: v for k, v in os.environ.items() if k != "HARBOR_CACHE_CONFIG"}
        env["PYTHONPATH"] = os.pathsep.join([shim, REPO_ROOT])
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "twisted",
                "harbor-cache",
                "--config",
                config,
                "--data-dir",
                os.path.abspath(self.mktemp()),
            ],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        self.assertNotEqual(done.returncode, 0)
        self.assertEqual((done.stdout, done.stderr), ("", PG_MESSAGE + "\n"))

    def test_a_bad_config_file_is_one_line_too(self):
        """A ConfigError at start-up is the same: its message alone, non-zero exit, no traceback."""
        config = os.path.abspath(self.mktemp())
        with open(config, "w") as f:
            f.write("[server\n")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "twisted",
                "harbor-cache",
                "--config",
                config,
                "--data-dir",
                os.path.abspath(self.mktemp()),
            ],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": REPO_ROOT},
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        self.assertNotEqual(done.returncode, 0)
        self.assertEqual(len(done.stderr.splitlines()), 1, done.stderr)
        self.assertIn(config, done.stderr)
        self.assertNotIn("Traceback", done.stderr)


class DeclaredUpstreamsTests(SynchronousTestCase):
    """What the catalog needs to apply the file's [[upstreams]] (issue 23.5)."""

    def test_declared_only_when_the_file_has_upstreams(self):
        """upstreams_declared: the key is there (an empty array too); absent: the embedded default."""
        self.assertFalse(parse_config({}).upstreams_declared)
        self.assertTrue(parse_config({"upstreams": []}).upstreams_declared)
        c = parse_config({"upstreams": [{"name": "a", "url": "http://127.0.0.1:1"}]})
        self.assertEqual((c.upstreams_declared, [u.name for u in c.upstreams]), (True, ["a"]))

    def test_the_file_is_remembered(self):
        """load_config keeps the file's absolute path (named by the API's 409); none without a file."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("upstreams = []\n")
        self.assertEqual(load_config(path, environ={}).config_file, os.path.abspath(path))
        self.assertIsNone(load_config(environ={}).config_file)


class WithoutOptionalDriversTests(SynchronousTestCase):
    def test_the_server_imports_without_botocore_or_psycopg2(self):
        """`pip install .` brings neither botocore ([s3]) nor psycopg2 ([postgresql]): the default server must not
        import them (a module of the S3 backend imported at start once made every install fail to start)."""
        code = (
            "import sys\n"
            "sys.modules['botocore'] = None\n"
            "sys.modules['psycopg2'] = None\n"
            "import harbor_cache.service, harbor_cache.daemon, harbor_cache.process, harbor_cache.supervisor\n"
            "import harbor_cache.migrate_storage\n"
            "print('imported')\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        self.assertEqual((done.returncode, done.stdout.strip()), (0, "imported"), done.stderr[-2000:])
