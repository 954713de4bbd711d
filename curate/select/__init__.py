"""Choosing what to keep (prune) and what to label next (select)."""
