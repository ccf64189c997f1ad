"""The OCI cache core: decides hit, miss, join, revalidate or serve stale.

Blobs are content-addressed and shared by every repository name: a blob
known to the index is served from disk; otherwise one download per digest
(`Downloads`) feeds every client that asks.  Manifests are small: they are
fetched whole, verified against their digest, stored as blobs and kept in a
bounded memory cache so a warm pull by tag touches neither disk nor SQL.
Tags point at digests and are revalidated upstream with HEAD after
``cache.tag_ttl_seconds``; when the upstream cannot answer, the cached
manifest is served with ``stale=True`` (the front adds ``Warning: 110``).
"""

from __future__ import annotations

from harbor_cache.core.oci.blobs import ProxyBlobs
from harbor_cache.core.oci.referrers import ProxyReferrers


class OciCache(ProxyReferrers, ProxyBlobs):
    """The OCI cache core the fronts ask: blobs, manifests, tags and referrers (their modules say how each is decided)."""
