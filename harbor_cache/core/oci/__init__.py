"""The OCI pull-through cache: hit, miss, join, revalidate or serve stale for proxied blobs, manifests and tags."""
