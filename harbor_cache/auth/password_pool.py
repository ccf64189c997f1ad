"""The threads bcrypt runs on: a small pool of its own.

bcrypt at cost 12 holds a thread for ~250 ms on purpose. On the reactor's
shared pool (10 threads, also used for DNS resolution and the I/O helpers)
a burst of wrong-password requests once stalled cold fetches for 12-19 s,
since every thread was hashing. Here at most ``PASSWORD_THREADS`` hashes
run at once and the rest queue behind them, so password checks can slow
only each other, never name resolution or file I/O.

The pool starts on first use and stops when the reactor shuts down.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

# Two hashes at a time: enough for logins, and leaves the machine's other cores to serving.
PASSWORD_THREADS = 2

_pool: ThreadPool | None = None


def password_pool() -> ThreadPool:
    """The running bcrypt pool (started, with a shutdown trigger, on first call)."""
    global _pool
    if _pool is None:
        from twisted.internet import reactor

        pool = ThreadPool(minthreads=0, maxthreads=PASSWORD_THREADS, name="harbor-bcrypt")
        pool.start()
        core: Any = reactor  # the interface's stub has no `self`, so mypy misreads the arguments
        core.addSystemEventTrigger("during", "shutdown", _stop, pool)
        _pool = pool
    return _pool


def _stop(pool: ThreadPool) -> None:
    global _pool
    if _pool is pool:
        _pool = None
    pool.stop()


def run_hashing(fn: Callable[..., Any], *args: Any):
    """``fn(*args)`` on the bcrypt pool; a Deferred of its result."""
    from twisted.internet import reactor

    return deferToThreadPool(reactor, password_pool(), fn, *args)  # type: ignore[arg-type]  # the global reactor
