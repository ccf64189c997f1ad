"""The LDAP directory: is this username/password a user there, and in which groups (``[auth.ldap]``).

ldap3 is a blocking library, so every conversation with the directory runs on
a small thread pool of its own (``LDAP_THREADS``), never on the reactor and
never on the shared pool that DNS and file I/O use: a directory that hangs
slows LDAP logins only.  Each step has ``timeout_seconds`` to connect and to
receive an answer.

One `authenticate` is the usual dance: open (StartTLS unless ``ldaps://``,
certificates checked against ``ca_file`` or the system's CA store), bind as
the service (``bind_dn``; anonymous when none is set), search the user with
the escaped username in ``user_filter`` (exactly one entry, or no user), bind
as that entry with the password on a second connection, then find the
groups (``group_filter`` under ``group_base``, or the user's ``memberOf``).
An empty password is refused before any bind: an LDAP simple bind with a DN
and no password is an *unauthenticated* bind that many servers accept.

A directory that cannot be reached, times out, refuses TLS or refuses the
service bind raises `DirectoryUnavailable` (the caller answers 503).  The
bind password is never put into a message, a log line or a repr.
"""

from __future__ import annotations

import math
import ssl
from dataclasses import dataclass
from typing import Any

from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from harbor_cache.errors import DirectoryUnavailable
from harbor_cache.grammar.ldap_filters import fill_filter, first_rdn_value
from harbor_cache.settings.ldap import LdapConfig

# Logins that may talk to the directory at once (the rest queue): a slow directory slows logins, nothing else.
LDAP_THREADS = 2


@dataclass(frozen=True)
class DirectoryUser:
    """A user the directory vouched for: its DN and the ``cn`` of each group it is in."""

    dn: str
    groups: tuple[str, ...]


class LdapDirectory:
    """``authenticate(username, password)`` against one directory, on a thread pool started on first use."""

    def __init__(self, config: LdapConfig, reactor: Any = None, threads: int = LDAP_THREADS) -> None:
        self.config = config
        self._reactor = reactor
        self._threads = threads
        self._pool: ThreadPool | None = None

    def __repr__(self) -> str:
        return f"LdapDirectory({self.config.url})"

    def _run(self, fn, *args):
        reactor = self._reactor
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = self._reactor = global_reactor
        if self._pool is None:
            pool = ThreadPool(minthreads=0, maxthreads=self._threads, name="harbor-ldap")
            pool.start()
            reactor.addSystemEventTrigger("during", "shutdown", self.close)
            self._pool = pool
        return deferToThreadPool(reactor, self._pool, fn, *args)

    def close(self) -> None:
        """Stop the pool (it starts again on the next `authenticate`)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()

    async def authenticate(self, username: str, password: str) -> DirectoryUser | None:
        """The user when the directory accepts the password, else None; `DirectoryUnavailable` when it
        cannot be asked."""
        if not username or not password:
            return None  # never an unauthenticated bind
        return await self._run(self._authenticate_blocking, username, password)

    # -- on the pool's threads ------------------------------------------------------------

    def _authenticate_blocking(self, username: str, password: str) -> DirectoryUser | None:
        import ldap3
        from ldap3.core.exceptions import LDAPException

        c = self.config
        try:
            server = self._server(ldap3)
            service = self._open(ldap3, server, c.bind_dn, c.bind_password)
            try:
                if not service.bind():
                    raise DirectoryUnavailable(
                        "the LDAP directory refused the service bind",
                        {"url": c.url, "result": service.result.get("description")},
                    )
                dn = self._find_user(ldap3, service, username)
                if dn is None:
                    return None
                user = self._open(ldap3, server, dn, password)
                try:
                    if not user.bind():
                        return None
                finally:
                    user.unbind()
                return DirectoryUser(dn=dn, groups=self._groups(ldap3, service, dn, username))
            finally:
                service.unbind()
        except LDAPException as e:
            raise DirectoryUnavailable(
                "the LDAP directory cannot be reached", {"url": c.url, "reason": type(e).__name__}
            ) from None
        except (OSError, ssl.SSLError) as e:
            raise DirectoryUnavailable(
                "the LDAP directory cannot be reached", {"url": c.url, "reason": type(e).__name__}
            ) from None

    def _server(self, ldap3) -> Any:
        c = self.config
        tls = None
        if c.ldaps or c.start_tls:
            tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=c.ca_file)
        return ldap3.Server(
            c.host, port=c.port, use_ssl=c.ldaps, tls=tls, get_info=ldap3.NONE, connect_timeout=c.timeout_seconds
        )

    def _open(self, ldap3, server, user: str | None, password: str | None) -> Any:
        c = self.config
        conn = ldap3.Connection(
            server,
            user=user,
            password=password,
            authentication=ldap3.SIMPLE if user else ldap3.ANONYMOUS,
            receive_timeout=math.ceil(c.timeout_seconds),  # whole seconds: ldap3 packs it into SO_RCVTIMEO
            read_only=True,
            raise_exceptions=False,
            auto_referrals=False,
        )
        conn.open()
        if c.start_tls and not conn.start_tls():
            raise DirectoryUnavailable("the LDAP directory refused StartTLS", {"url": c.url})
        return conn

    def _find_user(self, ldap3, conn, username: str) -> str | None:
        c = self.config
        query = fill_filter(c.user_filter, username=username)
        conn.search(c.user_base, query, search_scope=ldap3.SUBTREE, attributes=[], size_limit=2)
        _check_search(conn, c)
        entries = [e for e in conn.response or () if e.get("type") == "searchResEntry"]
        if len(entries) != 1:
            return None  # no such user, or a filter that matches several: nobody
        return entries[0]["dn"]

    def _groups(self, ldap3, conn, dn: str, username: str) -> tuple[str, ...]:
        c = self.config
        if c.group_membership == "memberOf":
            conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["memberOf"])
            _check_search(conn, c)
            values: list[str] = []
            for entry in conn.response or ():
                if entry.get("type") == "searchResEntry":
                    values += list(entry.get("attributes", {}).get("memberOf") or ())
            names = (first_rdn_value(v) for v in values)
            return tuple(sorted({n for n in names if n}))
        query = fill_filter(c.group_filter, dn=dn, username=username)
        conn.search(c.group_base, query, search_scope=ldap3.SUBTREE, attributes=["cn"])
        _check_search(conn, c)
        found: set[str] = set()
        for entry in conn.response or ():
            if entry.get("type") == "searchResEntry":
                cn = entry.get("attributes", {}).get("cn")
                found.update([cn] if isinstance(cn, str) else list(cn or ()))
        return tuple(sorted(found))


# Result codes of a search that mean "nothing there", not "directory broken" (0 success, 4 size limit, 32 no such
# object: a base that does not exist yet).
_SEARCH_OK = (0, 4, 32)


def _check_search(conn, c: LdapConfig) -> None:
    result = conn.result or {}
    if result.get("result") not in _SEARCH_OK:
        raise DirectoryUnavailable(
            "the LDAP directory refused a search", {"url": c.url, "result": result.get("description")}
        )
