"""Keeping the cache running: eviction, orphans, disk space, audit, upstream health and catalog, node names."""
