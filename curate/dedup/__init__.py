"""Deduplication: ``exact`` (content hash), ``semantic`` and ``knn`` (an embedding store), ``fuzzy`` and
``near`` (cheap signals, each candidate pair verified; ``fuzzy`` is ``near`` without the semantic signal).

One stage per module (exact, semantic, knn, near); groups and decision tables in ``groups``, the
threshold rule in ``rules``, near's candidate pairs in ``candidates`` and their verification in ``verify``.
"""
