"""What users install is what CI tests: the wheel, in a clean virtualenv, started as the README starts it.

CI installs the checkout in editable mode, where every file of the tree is
there whatever the package metadata says; a user's ``pip install .`` gets
only what the wheel holds (a ``ui/*`` glob once left out ``ui/views/`` and
``ui/icons/``: a blank console).  So this module builds the wheel from a
clean copy of the checkout (no stale ``build/`` filling gaps), installs it
into a new virtualenv without the system's site packages, and runs that:

- the wheel holds every file under ``harbor_cache/ui/`` and the twistd plugin;
- ``<venv>/bin/twistd -n harbor-cache`` with no config file, in an empty
  directory (so ``./data`` is new and the admin password is read from
  ``data/admin-password``), serves every console file, renders the console in
  Chromium, and pulls with skopeo through an upstream added by the API;
- the same with the least config that names a Maven repository (Maven
  repositories come only from the file), answering a Maven GET;
- ``twistd -ny harbor.tac`` from the checkout.

The only option the no-config start gets is ``--listen``: the default
``tcp:5001`` on every interface would collide with parallel runs and is not
loopback.  ``.ci/run`` prepares the install once (``python -m
tests.integration.test_installed_it DIR``) and passes it in
``$HARBOR_INSTALLED_VENV`` and ``$HARBOR_INSTALLED_WHEEL``; without them the
first test builds its own under a temp dir.  Nothing here skips: the
packaging is ours, so a missing piece is a failure.
"""

from __future__ import annotations

import atexit
import glob
import json
import os
import shutil
import sys
import tempfile
import zipfile

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import oci_support as oci
from tests.integration import support
from tests.integration import test_console_chromium_it as chromium

UI_DIR = os.path.join(support.REPO_ROOT, "harbor_cache", "ui")
PLUGIN = "twisted/plugins/harbor_cache_plugin.py"
TAC = os.path.join(support.REPO_ROOT, "harbor.tac")
ENV_VENV = "HARBOR_INSTALLED_VENV"
ENV_WHEEL = "HARBOR_INSTALLED_WHEEL"
WAIT = 15

# left out of the copy the wheel is built from: at the top, what a checkout gathers; anywhere, byte code
_TOP_LEVEL_JUNK = {".git", ".venv", "build", "dist", "data", "screenshots"}


def _ignore(directory, names):
    top = os.path.abspath(directory) == support.REPO_ROOT
    return {
        n
        for n in names
        if (top and (n in _TOP_LEVEL_JUNK or n.startswith("_trial_temp")))
        or n == "__pycache__"
        or n.endswith((".pyc", ".egg-info"))
        or n == "dropin.cache"
    }


def prepare(out: str) -> tuple[str, str]:
    """Build the wheel from a clean copy of the checkout and install it into a new virtualenv under ``out``.

    Returns ``(venv, wheel)``. The virtualenv is made by the base interpreter
    of ``sys.executable`` (``venv`` from inside a virtualenv does that), without
    ``--system-site-packages``: only the wheel and its declared dependencies.
    """
    shutil.rmtree(out, ignore_errors=True)
    src, wheels, venv = (os.path.join(out, n) for n in ("src", "wheel", "venv"))
    shutil.copytree(support.REPO_ROOT, src, ignore=_ignore)
    support.check_ok(
        support.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, src], timeout=600)
    )
    built = glob.glob(os.path.join(wheels, "harbor_cache-*.whl"))
    if len(built) != 1:
        raise AssertionError("expected one harbor_cache wheel in %s, found %r" % (wheels, built))
    support.check_ok(support.run([sys.executable, "-m", "venv", venv]))
    support.check_ok(support.run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q", built[0]]))
    shutil.rmtree(src, ignore_errors=True)
    return venv, built[0]


_INSTALLED: tuple[str, str] | None = None


def installed() -> tuple[str, str]:
    """(venv, wheel): the ones .ci/run passed in, else built once for this process (removed at exit)."""
    global _INSTALLED
    if _INSTALLED is None:
        venv, wheel = os.environ.get(ENV_VENV), os.environ.get(ENV_WHEEL)
        if venv or wheel:
            for path in (os.path.join(venv or "", "bin", "twistd"), wheel or ""):
                if not os.path.isfile(path):
                    raise AssertionError(
                        "%s=%r / %s=%r: %s is missing (did .ci/run's wheel build or install fail?)"
                        % (ENV_VENV, venv, ENV_WHEEL, wheel, path)
                    )
            _INSTALLED = (os.path.abspath(venv or ""), os.path.abspath(wheel or ""))
        else:
            out = tempfile.mkdtemp(prefix="harbor-it-installed-")
            atexit.register(shutil.rmtree, out, True)
            _INSTALLED = prepare(out)
    return _INSTALLED


def checkout_ui_files() -> list[str]:
    """Every file under harbor_cache/ui/ in the checkout, as a path in the package ("harbor_cache/ui/...")."""
    names = []
    for dirpath, dirnames, filenames in os.walk(UI_DIR):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), os.path.dirname(UI_DIR))
            names.append("harbor_cache/ui/" + rel.split(os.sep, 1)[1].replace(os.sep, "/"))
    return sorted(names)


def _clean_env(**extra: str) -> dict[str, str]:
    """Our environment without anything that would make the checkout importable or configure the server."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "HARBOR_CACHE_CONFIG", "HARBOR_CACHE_ADMIN_PASSWORD")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class InstalledServer(support._Peer):
    """``<venv>/bin/twistd -n harbor-cache`` run in an empty directory, as a user runs it after ``pip install``.

    No config file unless ``config_toml`` is given (then ``--config`` names it);
    ``--listen`` puts it on a free loopback port. Data in ``./data`` of that
    directory; the admin password is the one the first start writes there.
    """

    def __init__(self, venv: str, config_toml: str | None = None):
        self.dir = tempfile.mkdtemp(prefix="harbor-it-installed-server-")
        self.port = support.free_port()
        self.hostport = "%s:%d" % (support.LOOPBACK, self.port)
        self.url = "http://" + self.hostport
        self.data_dir = os.path.join(self.dir, "data")
        self.cmd = [
            os.path.join(venv, "bin", "twistd"),
            "-n",
            "harbor-cache",
            "--listen",
            "tcp:%d:interface=%s" % (self.port, support.LOOPBACK),
        ]
        if config_toml is not None:
            path = os.path.join(self.dir, "harbor-cache.toml")
            with open(path, "w") as f:
                f.write(config_toml)
            self.cmd += ["--config", path]
        self.log_path = os.path.join(self.dir, "server.log")
        self._launch(support._Daemon("installed harbor-cache :%d" % self.port, self.log_path), True)

    def start(self):
        self._daemon.start(self.cmd, env=_clean_env(), cwd=self.dir)
        self._daemon.wait_ready(self.url + "/health", 60)

    @property
    def admin_password(self) -> str:
        with open(os.path.join(self.data_dir, "admin-password")) as f:
            return f.read().strip()

    def login(self) -> str:
        status, _, body = support.http(
            "POST", self.url + "/api/v1/auth/login", body={"username": "admin", "password": self.admin_password}
        )
        if status != 200:
            raise AssertionError("login: %d %r" % (status, body[:500]))
        return json.loads(body)["token"]


def _chrome(profile: str):
    """Debian's headless chromium through chromedriver, as the console tests drive it."""
    return chromium.start_chromium(profile, window="1280,900", logs=True)


class WheelIT(SynchronousTestCase):
    """The wheel and the virtualenv it went into."""

    def setUp(self):
        self.venv, self.wheel = installed()
        with zipfile.ZipFile(self.wheel) as z:
            self.names = set(z.namelist())

    def test_wheel_holds_every_console_file(self):
        """Every file under harbor_cache/ui/ of the checkout, subfolders included, is in the wheel."""
        expected = checkout_ui_files()
        self.assertIn("harbor_cache/ui/views/maven.js", expected)  # the walk itself sees subfolders
        self.assertEqual([n for n in expected if n not in self.names], [])

    def test_wheel_holds_every_module(self):
        """Every .py under harbor_cache/ of the checkout is in the wheel (no subpackage left behind)."""
        root = os.path.dirname(os.path.dirname(UI_DIR))
        expected = []
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, "harbor_cache")):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            expected += [
                os.path.relpath(os.path.join(dirpath, n), root).replace(os.sep, "/")
                for n in filenames
                if n.endswith(".py")
            ]
        self.assertIn("harbor_cache/settings/startup.py", expected)
        self.assertEqual([n for n in sorted(expected) if n not in self.names], [])

    def test_wheel_holds_the_twistd_plugin_and_no_twisted_package_file(self):
        """twisted/plugins/harbor_cache_plugin.py ships; Twisted's own __init__ files are never overwritten."""
        self.assertIn(PLUGIN, self.names)
        self.assertNotIn("twisted/__init__.py", self.names)
        self.assertNotIn("twisted/plugins/__init__.py", self.names)
        self.assertEqual([n for n in self.names if "__pycache__" in n or n.endswith(".pyc")], [])

    def test_venv_is_clean_and_finds_the_installed_package_and_plugin(self):
        """No system site packages; harbor_cache comes from the venv; twistd sees the harbor-cache plugin."""
        with open(os.path.join(self.venv, "pyvenv.cfg")) as f:
            self.assertIn("include-system-site-packages = false", f.read())
        script = (
            "import json, harbor_cache; from twisted.plugin import getPlugins;"
            "from twisted.application.service import IServiceMaker;"
            "print(json.dumps([harbor_cache.__file__, [p.tapname for p in getPlugins(IServiceMaker)]]))"
        )
        cwd = tempfile.mkdtemp(prefix="harbor-it-installed-cwd-")
        self.addCleanup(shutil.rmtree, cwd, True)
        cp = support.check_ok(
            support.run([os.path.join(self.venv, "bin", "python"), "-c", script], env=_clean_env(), cwd=cwd)
        )
        where, plugins = json.loads(cp.stdout.strip().splitlines()[-1])
        self.assertTrue(os.path.realpath(where).startswith(os.path.realpath(self.venv) + os.sep), where)
        self.assertIn("harbor-cache", plugins)


class NoConfigIT(SynchronousTestCase):
    """The installed server started with no config file."""

    def setUp(self):
        venv, _ = installed()
        self.srv = oci.class_fixture(self, lambda: InstalledServer(venv), InstalledServer.close)

    def test_a_every_console_file_is_served(self):
        """GET /ui/<file> answers 200 with the checkout's bytes for every file under harbor_cache/ui/."""
        wrong = []
        for name in checkout_ui_files():
            rel = name[len("harbor_cache/ui/") :]
            status, _, body = support.http("GET", "%s/ui/%s" % (self.srv.url, rel))
            with open(os.path.join(UI_DIR, rel), "rb") as f:
                if (status, body) != (200, f.read()):
                    wrong.append((rel, status))
        self.assertEqual(wrong, [])

    def test_b_console_in_chromium(self):
        """The Maven browser lists the repositories; logging in with data/admin-password shows the dashboard."""
        from tests.integration.test_console_chromium_it import _selenium

        _selenium()
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        profile = tempfile.mkdtemp(prefix="harbor-it-installed-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        driver = _chrome(profile)
        self.addCleanup(driver.quit)

        def wait(condition, message):
            # (an element found may be re-rendered before its text is read: look again)
            stale = [StaleElementReferenceException]
            return WebDriverWait(driver, WAIT, poll_frequency=0.1, ignored_exceptions=stale).until(condition, message)

        def heading(text):
            wait(
                lambda d: any(e.text == text for e in d.find_elements("css selector", "main h1")),
                "heading %r never shown" % text,
            )

        driver.get(self.srv.url + "/ui/#/maven")
        heading("Maven repositories")
        select = wait(ec.visibility_of_element_located(("css selector", "#repo-select")), "no repository selector")
        self.assertEqual([o.text for o in select.find_elements("css selector", "option")], ["central"])
        driver.get(self.srv.url + "/ui/#/login")
        wait(ec.visibility_of_element_located(("id", "login-username")), "no login form").send_keys("admin")
        driver.find_element("id", "login-password").send_keys(self.srv.admin_password)
        driver.find_element("id", "login-submit").click()
        heading("Dashboard")
        wait(ec.visibility_of_element_located(("css selector", "#dash-summary .stats")), "no dashboard summary")
        # (Chromium asks for /favicon.ico on its own; the console has none)
        severe = [
            e["message"]
            for e in driver.get_log("browser")
            if e.get("level") == "SEVERE" and "/favicon.ico " not in e["message"]
        ]
        self.assertEqual(severe, [], "the browser logged errors (a missing file answers 404)")

    def test_c_skopeo_pull_through_an_upstream_added_by_the_api(self):
        """POST /api/v1/upstreams (a loopback registry under prefix "loop"); skopeo copies library/test:1 through."""
        support.require("skopeo", "docker-registry")
        registry, images = support.shared_upstream()
        token = self.srv.login()
        status, _, body = support.http(
            "POST",
            self.srv.url + "/api/v1/upstreams",
            headers={"Authorization": "Bearer " + token},
            body={"name": "loop", "url": registry.url, "prefix": "loop"},
        )
        self.assertEqual(status, 201, body)
        out = tempfile.mkdtemp(prefix="harbor-it-installed-pull-")
        self.addCleanup(shutil.rmtree, out, True)
        layout = os.path.join(out, "layout")
        support.check_ok(
            support.skopeo(
                "copy",
                "--src-tls-verify=false",
                "docker://%s/loop/library/test:1" % self.srv.hostport,
                "oci:%s:1" % layout,
            )
        )
        with open(os.path.join(layout, "index.json")) as f:
            index = json.load(f)
        self.assertEqual([m["digest"] for m in index["manifests"]], [images["images"]["single"]["digest"]])


class MavenConfigIT(SynchronousTestCase):
    """The installed server with the least config that has a Maven repository: one [[maven.repositories]]."""

    def test_maven_get(self):
        """GET /artifacts/central/<pom> through a loopback nginx answers the upstream's bytes."""
        venv, _ = installed()
        maven = support.shared_maven_upstream()
        config = '[[maven.repositories]]\nid = "central"\nurl = "%s"\n' % maven.url
        srv = InstalledServer(venv, config)
        self.addCleanup(srv.close)
        path = "harness/small/1.0/small-1.0.pom"
        status, _, body = support.http("GET", "%s/artifacts/central/%s" % (srv.url, path))
        with open(os.path.join(maven.root, path), "rb") as f:
            self.assertEqual((status, body), (200, f.read()))


class TacIT(SynchronousTestCase):
    """``twistd -ny harbor.tac`` from the checkout."""

    def _twistd(self):
        # twistd of this interpreter, whether Twisted is in its venv or in the system's site packages
        return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]

    def test_starts_with_harbor_cache_config_and_answers_health(self):
        """$HARBOR_CACHE_CONFIG names the listen endpoint and data dir; /health answers 200."""
        work = tempfile.mkdtemp(prefix="harbor-it-tac-")
        self.addCleanup(shutil.rmtree, work, True)
        port = support.free_port()
        config = os.path.join(work, "harbor-cache.toml")
        with open(config, "w") as f:
            f.write(
                '[server]\nlisten = "tcp:%d:interface=%s"\ndata_dir = "%s"\n'
                % (port, support.LOOPBACK, os.path.join(work, "data"))
            )
        daemon = support._Daemon("harbor.tac :%d" % port, os.path.join(work, "twistd.log"))
        env = _clean_env(HARBOR_CACHE_CONFIG=config, PYTHONPATH=support.REPO_ROOT)
        daemon.start(self._twistd() + ["-ny", TAC, "--pidfile="], env=env, cwd=support.REPO_ROOT)
        self.addCleanup(daemon.stop)
        daemon.wait_ready("http://%s:%d/health" % (support.LOOPBACK, port), 60)

    def test_embedded_defaults_without_harbor_cache_config(self):
        """Without $HARBOR_CACHE_CONFIG the tac's service has the embedded defaults (tcp:5001, ./data)."""
        work = tempfile.mkdtemp(prefix="harbor-it-tac-")
        self.addCleanup(shutil.rmtree, work, True)
        script = (
            "import json, sys; from twisted.application import service;"
            "app = service.loadApplication(sys.argv[1], 'python');"
            "top = [s for s in service.IServiceCollection(app) if hasattr(s, 'harbor')][0];"
            "print(json.dumps([top.harbor.config.listen, top.harbor.config.data_dir]))"
        )
        cp = support.check_ok(
            support.run(
                [sys.executable, "-c", script, TAC], env=_clean_env(PYTHONPATH=support.REPO_ROOT), cwd=work, timeout=60
            )
        )
        self.assertEqual(json.loads(cp.stdout.strip().splitlines()[-1]), ["tcp:5001", "./data"])


if __name__ == "__main__":
    # .ci/run: python -m tests.integration.test_installed_it DIR  -> builds DIR/wheel, DIR/venv; prints both
    venv, wheel = prepare(os.path.abspath(sys.argv[1]))
    print("%s=%s" % (ENV_VENV, venv))
    print("%s=%s" % (ENV_WHEEL, wheel))
