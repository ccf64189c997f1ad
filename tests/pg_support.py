"""A throwaway PostgreSQL cluster for the tests, started by the tests themselves.

One cluster per test process, started on first use: ``initdb`` into a temp
dir, ``postgres`` listening on 127.0.0.1 on a free port with its unix socket in
that dir, fsync off (nothing in it outlives the run), stopped and removed at
exit. PostgreSQL refuses to run as root, so as root the cluster runs as the
unprivileged ``nobody`` (the temp dir is handed to it); as any other user it
runs as that user.

Each unit test gets its own schema (``fresh_schema_url``) and each
integration test its own database (``fresh_database_url``), so tests never
see each other's rows.

``HARBOR_TEST_POSTGRES_URL`` points the tests at an existing server instead
(a superuser URL). When no server can be had, `server_url` raises
``SkipTest`` with the reason, except under ``CI=true``, where it raises
``RuntimeError``: CI installs PostgreSQL, so a missing server is a defect.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse

from twisted.trial.unittest import SkipTest

PG_BIN_DIRS = ("/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/14/bin")
UNPRIVILEGED_USER = "nobody"

_state: dict = {}
_names = itertools.count(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> str | None:
    for d in PG_BIN_DIRS:
        if os.path.exists(os.path.join(d, "initdb")) and os.path.exists(os.path.join(d, "postgres")):
            return d
    found = shutil.which("initdb")
    return os.path.dirname(found) if found and shutil.which("postgres") else None


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"PostgreSQL is required under CI: {reason}")
    raise SkipTest(f"no PostgreSQL for the tests: {reason}")


def _start() -> str:
    import psycopg2  # noqa: F401  (the driver is the first thing that can be missing)

    bindir = _pg_bin()
    if bindir is None:
        raise OSError("initdb/postgres not found (apt-get install postgresql)")
    root = tempfile.mkdtemp(prefix="harbor-pg-")
    run_as: dict = {}
    if os.geteuid() == 0:
        user = pwd.getpwnam(UNPRIVILEGED_USER)
        os.chown(root, user.pw_uid, user.pw_gid)
        os.chmod(root, 0o700)
        run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": root}
    data = os.path.join(root, "data")
    subprocess.run(
        [
            os.path.join(bindir, "initdb"),
            "-D",
            data,
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=root,
        **run_as,
    )
    port = _free_port()
    command = [
        os.path.join(bindir, "postgres"),
        "-D",
        data,
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-k",
        root,
        "-F",
        "-c",
        "max_connections=200",
        "-c",
        "full_page_writes=off",
        "-c",
        "synchronous_commit=off",
    ]
    _state.update(root=root, launch={"args": command, "env": env, "cwd": root, **run_as})
    atexit.register(stop)
    _launch()
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    _wait_accepting(url)
    return url


def _launch() -> None:
    """Start ``postgres`` on the cluster's files and port (first start, or `resume` after `pause`)."""
    log = open(os.path.join(_state["root"], "postgres.log"), "ab")
    launch = dict(_state["launch"])
    proc = subprocess.Popen(launch.pop("args"), stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **launch)
    _state.update(proc=proc, log=log)


def _wait_accepting(url: str) -> None:
    import psycopg2

    proc = _state["proc"]
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise OSError(f"postgres exited with {proc.returncode}: {_log_tail()}")
        try:
            psycopg2.connect(url, connect_timeout=2).close()
            return
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise OSError(f"postgres did not accept connections within 30 s: {_log_tail()}") from None
            time.sleep(0.05)


def _log_tail() -> str:
    try:
        with open(os.path.join(_state["root"], "postgres.log"), "rb") as f:
            return f.read()[-2000:].decode("utf-8", "replace")
    except (KeyError, OSError):
        return ""


def stop() -> None:
    """Fast shutdown of the cluster this process started, then remove its files."""
    _shut_down()
    _state.pop("launch", None)
    root = _state.pop("root", None)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


def _shut_down() -> None:
    proc = _state.pop("proc", None)
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log = _state.pop("log", None)
    if log is not None:
        log.close()


def pause() -> None:
    """Stop the throwaway cluster (a fast shutdown: clients are cut off), keeping its files and port.

    A database outage for the tests that need one; `resume` starts it again.
    Raises SkipTest for a server given by ``HARBOR_TEST_POSTGRES_URL`` (not ours to stop).
    """
    if os.environ.get("HARBOR_TEST_POSTGRES_URL"):
        raise SkipTest("HARBOR_TEST_POSTGRES_URL names a server the tests may not stop")
    server_url()
    _shut_down()


def resume() -> None:
    """Start the cluster `pause` stopped, on the same port, and wait until it accepts connections."""
    if "proc" in _state or "launch" not in _state:
        return
    _launch()
    _wait_accepting(_state["url"])


def server_url() -> str:
    """A superuser URL of a server for the tests (starting the throwaway cluster on first use)."""
    given = os.environ.get("HARBOR_TEST_POSTGRES_URL")
    if given:
        return given
    if "url" in _state:
        return _state["url"]
    if "error" in _state:
        _unavailable(_state["error"])
    try:
        _state["url"] = _start()
    except ImportError as e:
        _state["error"] = f"psycopg2 missing ({e})"
    except (OSError, KeyError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", b"") or b""
        _state["error"] = f"{e} {detail.decode('utf-8', 'replace')[-500:]}".strip()
        stop()
    if "error" in _state:
        _unavailable(_state["error"])
    return _state["url"]


def admin(sql: str) -> None:
    """Run one statement as the superuser, outside any transaction."""
    import psycopg2

    conn = psycopg2.connect(server_url(), connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def _with(url: str, path: str | None = None, options: str | None = None) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query)
    if options:
        query.append(("options", options))
    return urllib.parse.urlunsplit(
        parts._replace(path=path or parts.path, query=urllib.parse.urlencode(query, quote_via=urllib.parse.quote))
    )


def fresh_schema_url(case) -> str:
    """A URL whose connections see only a new, empty schema (dropped at the test's cleanup)."""
    name = f"t{os.getpid()}_{next(_names)}"
    admin(f"CREATE SCHEMA {name}")
    case.addCleanup(admin, f"DROP SCHEMA IF EXISTS {name} CASCADE")
    return _with(server_url(), options=f"-c search_path={name}")


def fresh_database_url(case) -> str:
    """A URL of a new, empty database (dropped at the test's cleanup, connections or not)."""
    name = f"d{os.getpid()}_{next(_names)}"
    admin(f"CREATE DATABASE {name}")
    case.addCleanup(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return _with(server_url(), path="/" + name)
