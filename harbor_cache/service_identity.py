"""The identity part of the wiring (service.py): who a caller is, and the admin routes about accounts.

`HarborApp` calls `build_credentials` before the fronts that check passwords
are built, and `attach_identity` once the management front exists.  Kept apart
from service.py so the wiring of accounts (local, LDAP, OIDC, robots, groups)
reads in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harbor_cache.api.groups import attach as attach_groups
from harbor_cache.api.oidc import attach as attach_oidc
from harbor_cache.api.robots import attach as attach_robots
from harbor_cache.core.identity.cli_secret import CliSecrets
from harbor_cache.core.identity.credentials import Credentials
from harbor_cache.core.identity.directory import DirectoryLogin
from harbor_cache.core.identity.groups import GroupService
from harbor_cache.core.identity.oidc import OidcLogin
from harbor_cache.core.identity.robots import RobotService
from harbor_cache.upstream.ldap import LdapDirectory
from harbor_cache.upstream.oidc import OidcProvider
from harbor_cache.upstream.oidc import client_for as oidc_client_for

if TYPE_CHECKING:
    from harbor_cache.service import HarborApp


def build_credentials(app: HarborApp) -> Credentials:
    """The one username/password check of /v2/, the Maven front and the management API (LDAP with [auth.ldap])."""
    credentials = Credentials(app.index, app.clock, app.check_password)
    ldap = app.config.ldap
    if ldap is not None:  # users who are not local are checked against the directory
        directory = LdapDirectory(ldap, app.reactor)
        credentials.directory = DirectoryLogin(directory, app.index, app.clock, ldap.group_roles, app.audit)
    return credentials


def attach_identity(app: HarborApp) -> None:
    """Groups, robot accounts, and ``[auth.oidc]`` console login (off without it) with CLI secrets."""
    clock = app.clock
    attach_groups(app.api_front, GroupService(app.index, clock))
    attach_robots(app.api_front, RobotService(app.index, clock, app.settings, hasher=app.hash_password))
    oidc = app.config.oidc
    login = None
    if oidc is not None:
        provider = OidcProvider(oidc, oidc_client_for(oidc, app.reactor, app.http), clock)
        login = OidcLogin(oidc, provider, app.index, clock, app.token_keys.management)
    attach_oidc(app.api_front, login, CliSecrets(app.index, clock, app.hash_password), app.public_url)
