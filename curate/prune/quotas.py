"""Integer quotas: split a keep budget over groups (classes or clusters) by weight, within capacity.

``allocate`` is water-filling: every group is asked for its weighted share of the budget; a
group that has fewer items than its share keeps all of them and the shortfall goes to the
groups that still have room, in proportion to their weights, until the budget is spent or
every group is full. Rounding is by largest remainder (ties to the earlier group), so the
quotas always sum to ``min(total, capacity of the weighted groups)``.

``class_quotas`` applies it to labels (equal shares, or a target distribution such as
``cat=0.5,dog=0.5``) and says in words what happened to every class that fell short.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from curate.errors import CurateError


def allocate(total: int, capacity: Sequence[int] | np.ndarray, weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """Quotas (int64, one per group) <= ``capacity``, proportional to ``weights``, summing to
    ``min(total, capacity[weights > 0].sum())``; groups of weight 0 get nothing."""
    cap = np.asarray(capacity, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64)
    if cap.shape != w.shape or (w < 0).any() or (cap < 0).any():
        raise ValueError("capacity and weights must be non-negative and of the same length")
    out = np.zeros(len(cap), dtype=np.int64)
    active = (w > 0) & (cap > 0)
    remaining = int(min(max(int(total), 0), int(cap[w > 0].sum())))
    ideal = np.zeros(len(cap))
    while active.any():
        ideal = np.where(active, remaining * w / w[active].sum(), 0.0)
        full = active & (cap <= ideal)
        if not full.any():
            break
        out[full] = cap[full]
        remaining -= int(cap[full].sum())
        active &= ~full
    if active.any():
        base = np.floor(ideal[active]).astype(np.int64)
        frac = ideal[active] - base
        extra = remaining - int(base.sum())
        order = np.lexsort((np.arange(len(base)), -frac))  # largest remainder, earlier group on ties
        base[order[:max(extra, 0)]] += 1
        out[active] = np.minimum(base, cap[active])
    return out


def parse_distribution(spec: str | Mapping[str, float]) -> dict[str, float]:
    """``"cat=0.5,dog=0.5"`` (or a mapping) -> weights normalised to sum 1."""
    if isinstance(spec, str):
        pairs = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, sep, value = part.rpartition("=")
            if not sep or not name.strip():
                raise CurateError(f"target distribution {spec!r}: expected CLASS=WEIGHT[,CLASS=WEIGHT...]")
            try:
                pairs[name.strip()] = float(value)
            except ValueError:
                raise CurateError(f"target distribution {spec!r}: {value!r} is not a number") from None
    else:
        pairs = {str(k): float(v) for k, v in spec.items()}
    if not pairs or any(not np.isfinite(v) or v < 0 for v in pairs.values()) or sum(pairs.values()) <= 0:
        raise CurateError(f"target distribution {spec!r}: weights must be non-negative numbers, not all zero")
    total = sum(pairs.values())
    return {k: v / total for k, v in pairs.items()}


@dataclass(frozen=True)
class ClassQuota:
    """One class: items it can keep, the share it was asked for, what it gets after redistribution."""

    name: str
    available: int
    share: int
    quota: int


def class_quotas(total: int, available: Mapping[str, int],
                 distribution: Mapping[str, float] | None = None) -> tuple[list[ClassQuota], list[str]]:
    """Per-class quotas (equal shares, or ``distribution``) and a message per class that fell short."""
    names = sorted(set(available) | set(distribution or {}))
    cap = np.array([available.get(n, 0) for n in names], dtype=np.int64)
    w = np.ones(len(names)) if distribution is None else np.array([distribution.get(n, 0.0) for n in names])
    share = allocate(total, np.full(len(names), max(int(total), 0)), w)
    quota = allocate(total, cap, w)
    rows = [ClassQuota(n, int(c), int(s), int(q)) for n, c, s, q in zip(names, cap, share, quota)]
    messages = []
    short = [r for r in rows if r.available < r.share]
    room = sum(r.quota - r.share for r in rows if r.quota > r.share)
    for r in short:
        messages.append(f"class {r.name!r} has {r.available:,} items, fewer than its quota of {r.share:,}: "
                        f"all {r.available:,} are kept and the shortfall of {r.share - r.available:,} "
                        "is redistributed to the other classes")
    missing = int(min(total, share.sum()) - quota.sum())
    if short and missing > 0:
        messages.append(f"the other classes had room for only {room:,} more: {missing:,} fewer kept than the target")
    if distribution is not None:
        left_out = [r for r in rows if r.share == 0 and r.available > 0 and distribution.get(r.name, 0.0) == 0]
        if left_out:
            listed = ", ".join(f"{r.name!r} ({r.available:,})" for r in left_out)
            messages.append(f"classes not in the target distribution keep nothing: {listed}")
    return rows, messages
