"""Filesystem access (local paths and fsspec URIs), atomic writes and hashing."""
