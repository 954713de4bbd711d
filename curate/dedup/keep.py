"""Keep policies: which copy of a duplicate group survives, as one global priority order.

Every embedded row gets a rank (0 = kept first). Within a cluster the order is the
SemDeDup order; across clusters the same ranks decide pairs that straddle a boundary, so
one rule holds everywhere:

- ``hard``: farthest from its cluster centroid first (the SemDeDup paper's default: keep the
  less prototypical copy);
- ``easy``: closest to its centroid first;
- ``random``: a seeded random order;
- ``column:NAME[:asc|desc]``: by a manifest column (``desc``, the default, keeps the largest
  first, e.g. ``column:width``); nulls last;
- ``quality`` (the default of every dedup method but exact): the best copy by a key order
  (``quality.py``): images with the most pixels, then the most bytes per pixel (least compressed),
  then the sharpest when a ``sharpness`` array is given; texts with the longest
  whitespace-normalised text, then the fewest words no other text writes, then the most distinct
  words, then the fewest capitals. Kinds are ranked within themselves. ``near`` and ``fuzzy``
  then reorder each group of verified pairs by comparing its members with each other
  (``compare.py``: the original, the member the others were derived from, comes first).

Ties fall back to manifest order, so ranks are deterministic.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curate.dedup.quality import quality_order
from curate.errors import CurateError

POLICIES = ("quality", "hard", "easy", "random")


def parse_policy(spec: str) -> tuple[str, str | None, bool]:
    """``(kind, column, descending)``; a bad spec is a one-line error."""
    if spec in POLICIES:
        return spec, None, False
    if spec.startswith("column:"):
        parts = spec.split(":")
        if len(parts) in (2, 3) and parts[1] and (len(parts) == 2 or parts[2] in ("asc", "desc")):
            return "column", parts[1], len(parts) == 2 or parts[2] == "desc"
    raise CurateError(f"unknown keep policy {spec!r}: use quality, hard, easy, random or column:NAME[:asc|desc]")


def priority_ranks(spec: str, centroid_sim: np.ndarray, manifest_rows: np.ndarray,
                   manifest: pa.Table | None = None, seed: int = 0,
                   sharpness: np.ndarray | None = None) -> np.ndarray:
    """Rank of every store row (0 = kept first) under policy ``spec``.

    ``sharpness`` (``quality`` only): per manifest row (index = manifest row, length = the
    manifest's rows), NaN where unknown, e.g. from ``quality.image_sharpness``.
    """
    kind, column, descending = parse_policy(spec)
    n = len(manifest_rows)
    if kind == "quality":
        if manifest is None:
            raise CurateError("keep policy 'quality' needs the manifest")
        if sharpness is not None and len(sharpness) != manifest.num_rows:
            raise CurateError(f"keep policy 'quality': sharpness has {len(sharpness)} values, "
                              f"the manifest {manifest.num_rows} rows")
        order = quality_order(manifest_rows, manifest, sharpness)
        ranks = np.empty(n, dtype=np.int64)
        ranks[order] = np.arange(n)
        return ranks
    if kind == "hard":
        key = centroid_sim.astype(np.float64)
    elif kind == "easy":
        key = -centroid_sim.astype(np.float64)
    elif kind == "random":
        key = np.random.default_rng(seed).random(n)
    else:
        if manifest is None or column not in manifest.column_names:
            raise CurateError(f"keep policy {spec!r}: the manifest has no column {column!r}")
        values = manifest.column(column).take(pa.array(manifest_rows)).to_numpy(zero_copy_only=False)
        try:
            numeric = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise CurateError(f"keep policy {spec!r}: column {column!r} is not numeric") from exc
        key = -numeric if descending else numeric
        key = np.where(np.isnan(key), np.inf, key)  # nulls last
    order = np.lexsort((manifest_rows, key))
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(n)
    return ranks
