"""Deduplication stages: exact (content hash) now; semantic and kNN build on embeddings."""
