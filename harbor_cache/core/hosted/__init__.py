"""Hosted OCI content: which pushes, upload sessions, manifests and deletes are accepted, and how they are stored."""
