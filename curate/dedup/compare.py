"""Which member of a duplicate group is the original: the copies of a group compared with each other.

A fixed key order (most pixels, longest text) cannot tell an original from a copy that is longer
(an OCR copy that reads ``m`` as ``rn``) or larger (a letterboxed copy), nor from a brightened copy
with as many pixels. Here the members of each group are compared pairwise: for each pair, a judge
(:mod:`curate.dedup.compare_texts`, :mod:`curate.dedup.compare_images`) votes which of the two the
other was derived from (it holds the other's words, it is sharper, in colour, without a border...),
and in groups of three or more, which is closer to the group's consensus (copies are damaged
independently, so the original is the member the others agree with). Members are ordered by their
pairwise wins (a Copeland count), then by the sum of their votes, then by the cheap key order.

Bounded cost: in each group the top :attr:`CompareConfig.top` members of the cheap key order plus
:attr:`CompareConfig.sample` others (seeded) are compared, so a group of 10,000 members costs at most
``(top + sample)`` fetches and ``(top + sample)^2 / 2`` pairwise votes. Members outside the compared
set follow it in the cheap order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from curate.dedup.groups import components

Votes = Callable[[np.ndarray], np.ndarray]  # compared manifest rows -> antisymmetric (k, k) votes


@dataclass(frozen=True)
class CompareConfig:
    """How many members of a group are compared (the rest keep the cheap key order)."""

    top: int = 16  # the best members by the cheap key order
    sample: int = 16  # plus this many others of the group, a seeded sample
    seed: int = 0

    def __post_init__(self) -> None:
        if self.top < 1 or self.sample < 0:
            raise ValueError(f"compare: top must be >= 1 and sample >= 0, not {self.top} and {self.sample}")


def copeland_order(votes: np.ndarray) -> np.ndarray:
    """Positions best first from an antisymmetric vote matrix (``votes[i, j] > 0``: i is the original
    rather than j): most pairwise wins minus losses, then the largest vote sum, then position."""
    votes = np.asarray(votes, dtype=np.float64)
    k = len(votes)
    wins = np.sign(votes).sum(axis=1)
    margin = votes.sum(axis=1)
    return np.lexsort((np.arange(k), -margin, -wins))


def groups_of(a: np.ndarray, b: np.ndarray, ranks: np.ndarray) -> list[np.ndarray]:
    """Connected components of the pairs (a[i], b[i]) over the rows they name, each as its manifest rows
    in rank order (best first). Union-find over the named rows only (no work for rows in no pair)."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if len(a) == 0:
        return []
    nodes, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    roots = components(len(nodes), inverse[: len(a)], inverse[len(a):])
    order = np.lexsort((nodes, ranks[nodes], roots))  # by group, then rank, then row
    cuts = np.flatnonzero(np.diff(roots[order])) + 1
    return [nodes[part] for part in np.split(order, cuts)]


def compared_members(members: np.ndarray, config: CompareConfig) -> np.ndarray:
    """The members of one group (rank order) that are compared: the top ones and a seeded sample of the
    rest, in rank order."""
    head, rest = members[: config.top], members[config.top:]
    if len(rest) > config.sample:
        rng = np.random.default_rng([config.seed, int(members.min())])
        rest = rest[np.sort(rng.choice(len(rest), config.sample, replace=False))]
    return np.concatenate([head, rest])


def compare_copies(manifest: pa.Table, ranks: np.ndarray, a: np.ndarray, b: np.ndarray,
                   fetch: Callable[[dict], Any] | None = None,
                   config: CompareConfig = CompareConfig()) -> np.ndarray:
    """``ranks`` (per manifest row, 0 = kept first) with the members of every group of the pairs
    ``(a[i], b[i])`` reordered by comparing them: each group takes the same set of ranks it had, so
    rows outside groups and the order between groups are unchanged.

    Members of the kind of the group's best-ranked member (``text`` or ``image``) are compared; a
    member that cannot be read loses to every readable one. ``fetch``: manifest row dict -> payload
    bytes, for images (default ``PayloadFetcher().fetch``)."""
    from curate.dedup.compare_images import ImageCopies
    from curate.dedup.compare_texts import TextCopies

    ranks = np.asarray(ranks, dtype=np.int64).copy()
    groups = [g for g in groups_of(a, b, ranks) if len(g) > 1]
    if not groups:
        return ranks
    kinds = manifest.column("kind").to_numpy(zero_copy_only=False)
    chosen: list[tuple[np.ndarray, np.ndarray, str]] = []  # (members, compared, kind)
    for members in groups:
        kind = kinds[members[0]]
        compared = compared_members(members[kinds[members] == kind], config)
        if kind in ("text", "image") and len(compared) > 1:
            chosen.append((members, compared, kind))
    text_rows = [c for _, c, k in chosen if k == "text"]
    judges: dict[str, Any] = {}
    if text_rows:
        judges["text"] = TextCopies(manifest, np.concatenate(text_rows), seed=config.seed)
    if any(k == "image" for _, _, k in chosen):
        judges["image"] = ImageCopies(manifest, fetch)
    for members, compared, kind in chosen:
        best_first = compared[copeland_order(judges[kind].votes(compared))]
        rest = members[~np.isin(members, compared)] if len(members) > len(compared) else members[:0]
        ranks[np.concatenate([best_first, rest])] = np.sort(ranks[members])
    return ranks
