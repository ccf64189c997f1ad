"""The index: every SQL statement of harbor-cache, one store per family of tables.

`Index` is what the rest of the program holds: it composes the stores (each
a `Store` over the same pool, as Synapse composes its ``DataStore``), so a
call site reads ``index.get_entry(...)`` whichever store answers it.  The
pools and the two dialects are in `harbor_cache.index.engine`, the schema in
`harbor_cache.index.migrations`, the rows the stores return (frozen
dataclasses) in `harbor_cache.index.rows`.  Times are float epoch seconds.
"""

from harbor_cache.index.audit import AuditStore
from harbor_cache.index.console import ConsoleStore
from harbor_cache.index.engine import (
    Store,
    dialect_of,
    dialect_of_url,
    open_pool,
    open_postgres_pool,
    open_sqlite_pool,
)
from harbor_cache.index.entries import EntriesStore, EntryWrite
from harbor_cache.index.eviction import EvictionStore
from harbor_cache.index.external_users import ExternalUsersStore
from harbor_cache.index.gc import GcStore
from harbor_cache.index.groups import GroupsStore
from harbor_cache.index.history import HistoryStore
from harbor_cache.index.hosted import HostedStore
from harbor_cache.index.image_facts import ImageFactsStore
from harbor_cache.index.leases import LeasesStore
from harbor_cache.index.listings import ListingsStore
from harbor_cache.index.maven import MavenStore
from harbor_cache.index.migrations import SchemaStore
from harbor_cache.index.nodes import NodesStore
from harbor_cache.index.policies import PoliciesStore
from harbor_cache.index.quotas import QuotasStore
from harbor_cache.index.robots import RobotsStore
from harbor_cache.index.search import SearchStore
from harbor_cache.index.settings import SettingsStore
from harbor_cache.index.sync import SyncStore
from harbor_cache.index.tags import TagsStore
from harbor_cache.index.uploads import UploadsStore
from harbor_cache.index.upstreams import UpstreamsStore
from harbor_cache.index.users import UsersStore

__all__ = [
    "EntryWrite",
    "Index",
    "Store",
    "dialect_of",
    "dialect_of_url",
    "open_pool",
    "open_postgres_pool",
    "open_sqlite_pool",
]


class Index(
    SchemaStore,
    EntriesStore,
    EvictionStore,
    ListingsStore,
    TagsStore,
    HostedStore,
    MavenStore,
    UsersStore,
    GroupsStore,
    ExternalUsersStore,
    RobotsStore,
    SettingsStore,
    UpstreamsStore,
    LeasesStore,
    UploadsStore,
    AuditStore,
    ConsoleStore,
    ImageFactsStore,
    NodesStore,
    PoliciesStore,
    GcStore,
    QuotasStore,
    SyncStore,
    HistoryStore,
    SearchStore,
):
    """Every query the rest of the program makes, by name: the stores over one pool."""
