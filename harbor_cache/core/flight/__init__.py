"""Shared cache machinery: one download per key, leases, bounded memory, single-flight and access outcomes."""
