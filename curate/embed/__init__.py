"""Embedding: a registry of embedders, an fp16 embedding store, local and Ray executors."""
