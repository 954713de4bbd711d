"""``curate prune``: shrink the kept pool to a target size, keeping diversity and class balance."""
