"""Whether an account may act now (disabled, expired), and the record of a robot's last use.

Every way in asks `refusal`: the username/password check
(`core.identity.credentials.Credentials`, so Basic on ``/v2/`` and Maven,
``/v2/token``, ``POST /token`` and the API login), and every re-check of a
token already minted (`core.identity.token_holders.current_holder` for
registry and artifact tokens, ``api.front.ApiFront.authorize`` for
management tokens).  A disabled or expired account is refused everywhere at
once, with 401, though its tokens have not expired yet.

Last use (time and client address) is shown for robots so an admin can tell a
forgotten robot from a busy one.  It is a bookkeeping write on every
authenticated request, so `LastUse` throttles it: at most one write per robot
per `LAST_USE_INTERVAL` seconds, started without the request waiting for it,
and a failed write is logged and forgotten — it never fails the request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from harbor_cache.index.rows import User

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from harbor_cache.index import Index

log = Logger()

#: at most one last-use write per robot this often (seconds)
LAST_USE_INTERVAL = 60.0
#: robots whose last write time is remembered; beyond that the oldest are forgotten (one extra write each)
LAST_USE_MEMORY = 10_000


def refusal(user: User, now: float) -> str | None:
    """Why ``user`` may not act now ("account disabled", "account expired"), or None when it may."""
    if user.disabled:
        return "account disabled"
    if user.expires_at is not None and now >= user.expires_at:
        return "account expired"
    return None


class LastUse:
    """Throttled, fire-and-forget writes of a robot's last use (users are not tracked)."""

    def __init__(self, index: Index, clock: IReactorTime, interval: float = LAST_USE_INTERVAL) -> None:
        self.index = index
        self.clock = clock
        self.interval = interval
        self._written: dict[int, float] = {}  # robot id -> when its last write started
        self.pending: set[defer.Deferred[None]] = set()  # writes in flight (tests wait for them)

    def note(self, user: User, client: str | None) -> None:
        """Remember that ``user`` acted from ``client`` now; returns at once, whatever the index does."""
        if user.kind != "robot":
            return
        now = self.clock.seconds()
        last = self._written.get(user.id)
        if last is not None and now - last < self.interval:
            return
        if len(self._written) >= LAST_USE_MEMORY:
            self._written.pop(next(iter(self._written)))
        self._written[user.id] = now
        try:
            d = defer.ensureDeferred(self.index.note_robot_use(user.id, now, client))
        except Exception:
            log.failure("could not record the last use of {username}", username=user.username)
            return
        self.pending.add(d)

        def done(result: object) -> None:
            self.pending.discard(d)
            if isinstance(result, Failure):
                log.failure("could not record the last use of {username}", result, username=user.username)

        d.addBoth(done)
