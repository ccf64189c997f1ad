"""The audit log: who did what and when, kept in the index for the console.

Fronts call `AuditLog.record` after an action succeeded (or, for a failed
login, after it failed); the upstream health monitor records the blocks and
unblocks it decides (``upstream.block``/``upstream.unblock``, no actor).  Recording never fails the action it describes: a
write error is logged and swallowed, because refusing a push or a login
because the log could not be written would turn a bookkeeping fault into an
outage.  Records older than ``audit.retention_days`` are dropped by `prune`
(run by the service's hourly timer; 0 keeps everything).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime
    from twisted.web.iweb import IRequest

    from harbor_cache.index import Index
    from harbor_cache.settings.runtime import RuntimeSettings

log = Logger()

DAY = 86400.0

#: every action the server records, by area (the console's filter offers these)
ACTIONS = (
    "login",
    "login.failed",
    "login.ldap",
    "login.oidc",
    "user.create",
    "user.update",
    "user.delete",
    "user.cli_secret",
    "robot.create",
    "robot.update",
    "robot.rotate",
    "robot.disable",
    "robot.delete",
    "config.update",
    "config.reset",
    "cache.clear",
    "cache.cleanup",
    "cache.delete",
    "image.push",
    "image.push.refused",
    "image.delete",
    "artifact.deploy",
    "artifact.deploy.refused",
    "artifact.delete",
    "maven.snapshot_cleanup",
    "upstream.create",
    "upstream.update",
    "upstream.delete",
    "upstream.block",
    "upstream.unblock",
    "retention.create",
    "retention.update",
    "retention.delete",
    "retention.run",
    "immutable.create",
    "immutable.delete",
    "immutable.refused",
    "gc.run",
    "quota.create",
    "quota.update",
    "quota.delete",
    "quota.refused",
    "sync.create",
    "sync.update",
    "sync.delete",
    "sync.run",
)


def client_of(request: IRequest) -> str | None:
    """The peer address of a request (no proxy headers are trusted)."""
    try:
        return request.getClientAddress().host
    except Exception:
        return None


class AuditLog:
    def __init__(self, index: Index, clock: IReactorTime, settings: RuntimeSettings) -> None:
        self.index = index
        self.clock = clock
        self.settings = settings

    async def record(
        self,
        action: str,
        *,
        actor: str | None,
        target: str | None = None,
        detail: dict[str, Any] | None = None,
        request: IRequest | None = None,
        client: str | None = None,
    ) -> None:
        """``client``: the caller's address when there is no request at hand (else taken from ``request``)."""
        if client is None and request is not None:
            client = client_of(request)
        try:
            await self.index.add_audit(
                at=self.clock.seconds(),
                actor=actor,
                action=action,
                target=target,
                detail=json.dumps(detail, sort_keys=True) if detail else None,
                client=client,
            )
        except Exception:
            log.failure("could not write audit record {action} by {actor}", action=action, actor=actor)

    async def prune(self) -> int:
        days = self.settings.get("audit.retention_days")
        if days <= 0:
            return 0
        return await self.index.prune_audit(self.clock.seconds() - days * DAY)
