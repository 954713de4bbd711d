"""One labeling round of a select run: its number, its random stream, and the strategy's picks.

Select runs with the same labeled set are one round (a new budget or strategy is no new round); a
new labeled set starts the next one, unless ``--round`` names it; a rerun keeps its own. The
strategy draws from ``default_rng([seed, round])``: the same inputs, config and seed give the same
batch. Items a reviewer said to always pick come first (no score), the strategy fills the rest of
the budget from the pool.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from curate.errors import CurateError
from curate.select import registry
from curate.select.pool import Candidates

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Picks:
    """The batch of one run, in rank order, and the round it belongs to."""

    round: int
    labeled_set: str  # digest of the labeled ids (:func:`labeled_key`)
    rows: np.ndarray  # int64: manifest rows in pick order (reviewed keeps first)
    scores: np.ndarray  # float64 per pick, NaN where there is none
    pool_rows: np.ndarray  # the strategy's picks as pool rows (after the reviewed keeps)
    query: list[str | None] | None  # similar: the query that mined each pick (None for reviewed keeps)
    weak: list[str]  # similar: queries with nothing at --min-similarity or above
    warmup: str | None  # hybrid: why the batch starts with TypiClust's typical items


def pick(config, cand: Candidates, run_id: str, earlier: list[dict], device: torch.device) -> Picks:
    """Number the round of run ``run_id`` (``earlier``: the sidecars of the earlier select runs) and
    let the strategy of ``config`` (a ``SelectConfig``) pick from ``cand``."""
    strategy = registry.get(config.strategy)
    pool = cand.pool
    options = _options(config, cand.class_names, device)
    if options.quota is not None and pool.probs is None:
        raise CurateError("class quotas need predictions (or --probe)")
    if options.quota is not None and config.strategy != "hybrid":
        raise CurateError("class quotas are supported by the hybrid strategy")
    warmup = registry.hybrid_warmup(pool, options) if config.strategy == "hybrid" else None

    key = labeled_key(cand.ids, cand.labeled)
    number = round_number(earlier, run_id, config.round, key)
    rng = np.random.default_rng([config.seed, number])
    forced = np.flatnonzero(cand.forced)
    budget = max(0, config.budget - len(forced))
    picks, scores, *rest = strategy.fn(pool, min(budget, int(pool.candidates.sum())), rng, options)
    extra = rest[0] if rest else {}
    rows = np.concatenate([forced, cand.rows[picks]]).astype(np.int64)
    scores = np.concatenate([np.full(len(forced), np.nan), np.asarray(scores, dtype=np.float64)])
    query, weak = None, []
    if "query" in extra:
        names = cand.queries.names
        query = [names[q] if q >= 0 else None for q in [-1] * len(forced) + list(extra["query"])]
        weak = [names[q] for q in extra.get("weak", [])][:1000]
    return Picks(number, key, rows, scores, np.asarray(picks), query, weak, warmup)


def _options(config, names: list[str], device: torch.device) -> registry.Options:
    """The batch options with what this run derives: the parsed --dup-threshold, the quotas, the device."""
    batch = config.batch
    return registry.Options.of(batch, dup_threshold=registry.dup_threshold(batch.dup_threshold),
                               quota=_quota(config, names), device=device)


def _quota(config, names: list[str]) -> dict[int, int] | int | None:
    batch = config.batch
    if not batch.class_quota:
        return batch.quota_per_class
    index = {n: i for i, n in enumerate(names)}
    caps: dict[int, int] = {}
    for name, value in batch.class_quota:
        if name not in index:
            raise CurateError(f"class quota for unknown class {name!r} (classes: {', '.join(names[:20])})")
        caps[index[name]] = int(value) if value >= 1 else int(np.ceil(value * config.budget))
    if batch.quota_per_class is not None:
        return {i: caps.get(i, batch.quota_per_class) for i in range(len(names))}
    return caps


def labeled_key(ids: list[str], labeled: np.ndarray) -> str:
    """A digest of the labeled ids: select runs with the same labeled set are one labeling round."""
    digest = hashlib.sha256("\n".join(sorted(ids[r] for r in np.flatnonzero(labeled))).encode())
    return digest.hexdigest()[:16]


def round_number(earlier: list[dict], run_id: str, given: int | None, key: str) -> int:
    """The run's labeling round: its own (a rerun), ``--round``, the round of an earlier run with the
    same labeled set (a new budget or strategy is no new round), else one past the latest."""
    same = [m for m in earlier if m.get("run_id") == run_id]  # rerun after its export file was removed
    if same:
        return same[-1]["round"]
    if given:
        return given
    alike = [m for m in earlier if m.get("labeled_set") == key]
    return alike[-1]["round"] if alike else 1 + max((m.get("round", 0) for m in earlier), default=0)
