"""Curated, versioned shards and their lineage."""
