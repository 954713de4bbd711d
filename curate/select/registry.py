"""The selection strategies by name: one uniform signature over arrays, plus what each needs.

A strategy is ``fn(pool, budget, rng, options) -> (rows, scores[, extra])``: ``rows`` are pool
rows in pick order, ``scores`` the strategy's score of each pick (NaN when it has none),
``extra`` optional per-pick columns (``similar``: the query index of each pick). Strategy
modules are imported when a strategy runs, so listing them (``curate select --help``) stays
light. The stage builds the :class:`Pool` (arrays aligned row by row) and reads ``needs`` to load only what is
required and to explain what is missing; strategies read one :class:`Options`: the user's
:class:`BatchOptions` plus what the stage derives for the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from curate.errors import CurateError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Pool:
    """One row per item that is a candidate or labeled (the stage maps rows to manifest rows)."""

    candidates: np.ndarray  # bool [n]: may be picked
    labeled: np.ndarray  # bool [n]: already labeled
    embeddings: np.ndarray | None = None  # [n, d] unit rows (workspace embeddings)
    probs: np.ndarray | None = None  # [n, C] probabilities (rows of labeled items may be anything)
    mc: np.ndarray | None = None  # [n, T, C] MC-dropout probabilities
    model_features: np.ndarray | None = None  # [n, h] penultimate features, when the user has them
    vectors: np.ndarray | None = None  # the store's memory-mapped vectors (strategies that search the store)
    store_rows: np.ndarray | None = None  # [n] store row of each pool row
    queries: np.ndarray | None = None  # [Q, d] unit query vectors (similar)
    index: Any = None  # an AnnIndex over the store (similar on large pools), None: exact search
    groups: np.ndarray | None = None  # [n] dedup group of each row (-1: none), from the latest dedup run


@dataclass(frozen=True)
class BatchOptions:
    """How the strategies shape a batch, as the user sets them (``SelectConfig.batch``; each strategy
    reads the ones it has)."""

    uncertainty: str = "margin"  # hybrid: margin | entropy | least-confidence
    preselect: float = 10.0  # hybrid / cluster-margin: consider preselect x budget most uncertain
    power: float = 1.0  # hybrid: weight = uncertainty ** power
    typical_per_class: float = 3.0  # hybrid: TypiClust's batch while labeled < this x classes (0: never)
    # hybrid / similar: never two picks (or a pick and a labeled item) above this cosine; "auto": hybrid derives
    # it from the pool's own neighbour distances (similar: 0.9); "off": no check. Dedup groups apply regardless.
    dup_threshold: float | str | None = "auto"
    min_similarity: float | None = None  # similar: never pick an item less similar than this to its query
    quota_per_class: int | None = None  # hybrid: at most this many picks per predicted class
    class_quota: tuple[tuple[str, float], ...] = ()  # (class, count >= 1 or share of the budget < 1)
    clusters: int | None = None  # cluster-margin: k-means clusters (default about sqrt(pool)); similar: query groups
    per_query: int | None = None  # similar: at most this many picks per query
    # knobs added later (the stage leaves them out of the run id while at these defaults)
    class_aware: bool = False  # hybrid warm-up: least-labeled predicted class first (lost on the scenario suite)
    density: float = 1.0  # hybrid: weight x typicality ** density (0: plain uncertainty-weighted k-center)
    knn: int = 20  # typiclust / hybrid warm-up: neighbours of the typicality score
    cap: int = 4096  # typiclust / hybrid warm-up: members of a k-means cluster scored at most (a seeded sample)


@dataclass(frozen=True)
class Options(BatchOptions):
    """What a strategy reads: the batch options, and what the stage derives from them for one run
    (:meth:`of`): ``dup_threshold`` parsed, ``quota`` from ``quota_per_class`` / ``class_quota`` and
    the class names, the device."""

    quota: dict[int, int] | int | None = None  # hybrid: max picks per predicted class (index)
    device: str | torch.device = "auto"  # the stage passes its torch.device (resolved once for the run)

    @classmethod
    def of(cls, batch: BatchOptions, **derived: Any) -> Options:
        """``batch`` as the strategies read it, with the fields the stage derives for a run (``derived``)."""
        return cls(**{**vars(batch), **derived})


def dup_threshold(value: float | str | None) -> float | str | None:
    """``--dup-threshold`` as the strategies take it: a cosine in [-1, 1], ``"auto"``, or None (``off``)."""
    if value is None or value == "auto":
        return value
    if isinstance(value, str) and value.lower() in ("off", "none"):
        return None
    try:
        cosine = float(value)
    except (TypeError, ValueError):
        raise CurateError(f"--dup-threshold takes a cosine in [-1, 1], auto or off, not {value!r}") from None
    if not -1.0 <= cosine <= 1.0:
        raise CurateError("--dup-threshold must be a cosine similarity in [-1, 1] (or auto, off)")
    return cosine


Fn = Callable[[Pool, int, np.random.Generator, Options], tuple]


@dataclass(frozen=True)
class Strategy:
    name: str
    fn: Fn
    needs: tuple[str, ...]  # of "probs", "mc", "embeddings" (gathered in RAM), "store" (memory-mapped), "queries"
    help: str


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


def _uncertainty(name: str) -> Fn:
    def fn(pool: Pool, budget: int, rng: np.random.Generator, opt: Options):
        from curate.select import uncertainty

        source = pool.mc if name == "bald" else pool.probs
        scores = np.full(len(pool.candidates), -np.inf)
        rows = np.flatnonzero(pool.candidates)
        scores[rows] = uncertainty.uncertainty(name, source[rows], opt.device)
        picks = uncertainty.top_scores(scores, pool.candidates, budget)
        return picks, scores[picks]
    return fn


def _random(pool: Pool, budget: int, rng: np.random.Generator, opt: Options):
    rows = np.flatnonzero(pool.candidates)
    picks = rng.permutation(rows)[:budget]
    return picks, np.full(len(picks), np.nan)


def _coreset(pool: Pool, budget: int, rng: np.random.Generator, opt: Options):
    from curate.select.kcenter import kcenter_greedy

    x = _unit(pool.model_features) if pool.model_features is not None else pool.embeddings
    result = kcenter_greedy(x, budget, candidates=pool.candidates, initial=np.flatnonzero(pool.labeled),
                            device=opt.device)
    return result.picks, result.distances.astype(np.float64)


def _badge(pool: Pool, budget: int, rng: np.random.Generator, opt: Options):
    from curate.select import badge

    h = pool.model_features if pool.model_features is not None else pool.embeddings
    return badge.badge(pool.probs, h, pool.candidates, budget, rng, opt.device)


def _typiclust(pool: Pool, budget: int, rng: np.random.Generator, opt: Options):
    from curate.select import typiclust

    return typiclust.typiclust(pool.embeddings, pool.candidates, pool.labeled, budget, rng, knn=opt.knn,
                               cap=opt.cap, device=opt.device)


def _cluster_margin(pool: Pool, budget: int, rng: np.random.Generator, opt: Options):
    from curate.select import cluster_margin, typiclust, uncertainty

    members = pool.candidates | pool.labeled
    k = opt.clusters or max(2, int(round(np.sqrt(members.sum()))))
    labels = typiclust.cluster_pool(pool.embeddings, members, k, int(rng.integers(2**31)), opt.device)
    u = np.zeros(len(members))
    rows = np.flatnonzero(pool.candidates)
    u[rows] = uncertainty.margin(pool.probs[rows], opt.device)
    return cluster_margin.cluster_margin(u, labels, pool.candidates, budget, opt.preselect)


def hybrid_warmup(pool: Pool, opt: Options) -> str | None:
    """Why the hybrid's batch starts with TypiClust's typical items (None: it does not). Without
    predictions every batch is a cold start; with them, while labels are fewer than
    ``typical_per_class`` per class."""
    if not opt.typical_per_class:
        return None
    if pool.probs is None:
        return "no model predictions, a cold start (--predictions or --probe add the uncertainty part)"
    labeled, classes = int(pool.labeled.sum()), pool.probs.shape[1]
    if labeled < opt.typical_per_class * classes:
        return f"{labeled:,} labeled items, fewer than {opt.typical_per_class:g} per class for {classes} classes"
    return None


def _hybrid_uncertainty(pool: Pool, candidates: np.ndarray, opt: Options) -> np.ndarray:
    """The uncertainty of every candidate row in [0, 1] (all 1 without predictions: plain diversity)."""
    from curate.select import uncertainty

    if pool.probs is None:
        return np.ones(len(pool.candidates))
    u = np.zeros(len(pool.candidates))
    rows = np.flatnonzero(candidates)
    u[rows] = uncertainty.uncertainty(opt.uncertainty, pool.probs[rows], opt.device)
    if opt.uncertainty == "entropy" and pool.probs.shape[1] > 1:
        u /= np.log(pool.probs.shape[1])  # in [0, 1] like the others
    return u


def _hybrid(pool: Pool, budget: int, rng: np.random.Generator, opt: Options):
    from curate.select import hybrid, redundancy, typiclust

    members = pool.candidates | pool.labeled
    candidates = pool.candidates & ~redundancy.blocked_by_labeled(pool.groups, pool.labeled)
    u = _hybrid_uncertainty(pool, candidates, opt)
    classes = np.argmax(pool.probs, axis=1) if opt.quota is not None else None
    labeled = pool.labeled
    first = np.empty(0, np.int64)
    warm_score = u  # a warm-up pick's score: its uncertainty, or its typicality without a model
    warm = hybrid_warmup(pool, opt) is not None
    if warm:  # drawn first from ``rng``: the typiclust strategy's own batch for this rng
        predicted = np.argmax(pool.probs, axis=1) if opt.class_aware and pool.probs is not None else None
        order, typical = typiclust.typiclust(pool.embeddings, candidates, labeled, budget, rng, knn=opt.knn,
                                             cap=opt.cap, device=opt.device, classes=predicted)
        if pool.probs is None:
            warm_score = np.zeros(len(u))
            warm_score[order] = typical
    threshold = redundancy.resolve_threshold(opt.dup_threshold, pool.embeddings, members,
                                             int(rng.integers(2**31)), opt.device)
    if warm:
        first = order[hybrid.accept(pool.embeddings, order, labeled, budget, threshold, classes,
                                    opt.quota, opt.device, pool.groups)]
        if len(first) == budget:
            return first, warm_score[first]
        labeled = labeled.copy()
        labeled[first] = True  # top up with the uncertainty x diversity picks, away from these
    quota = opt.quota
    if quota is not None and len(first):  # what the first picks used of each class's quota
        caps = hybrid.quota_array(classes, quota)
        quota = dict(enumerate((caps - np.bincount(classes[first], minlength=len(caps))).clip(0).tolist()))
    groups = pool.groups
    if groups is not None and len(first):  # the warm-up's groups are taken
        candidates = candidates & ~(np.isin(groups, groups[first][groups[first] >= 0]) & (groups >= 0))
    picks, scores = hybrid.hybrid(pool.embeddings, u, candidates & ~labeled, labeled, budget - len(first),
                                  opt.preselect, threshold, classes, quota, opt.device, opt.power, groups,
                                  opt.density, members)
    return np.concatenate([first, picks]), np.concatenate([warm_score[first], scores])


def _similar(pool: Pool, budget: int, rng: np.random.Generator, opt: Options):
    from curate.select import mining

    n_store = len(pool.vectors)
    cand = np.zeros(n_store, dtype=bool)
    cand[pool.store_rows[pool.candidates]] = True
    lab = np.zeros(n_store, dtype=bool)
    lab[pool.store_rows[pool.labeled]] = True
    retriever = mining.choose_retriever(pool.vectors, cand, pool.index, opt.device)
    threshold = opt.dup_threshold if opt.dup_threshold != "auto" else 0.9  # mining: near-copies of a query's hits
    result = mining.mine(pool.vectors, pool.queries, cand, lab, budget, retriever, opt.per_query,
                         threshold, opt.clusters, int(rng.integers(2**31)), opt.device,
                         min_similarity=opt.min_similarity)
    back = np.full(n_store, -1, dtype=np.int64)
    back[pool.store_rows] = np.arange(len(pool.store_rows))
    weak = result.weak if result.weak is not None else np.empty(0, np.int64)
    return back[result.rows], result.similarity, {"query": result.query, "weak": weak}


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Strategy("hybrid", _hybrid, ("embeddings",),
             "(default) the most uncertain (margin) preselected, then uncertainty x typicality-weighted k-center "
             "on the embeddings; TypiClust's batch while labels are few (--typical-per-class) and as the cold "
             "start without predictions/--probe; never two of a dedup group nor near-duplicates "
             "(--dup-threshold); --quota-per-class."),
    Strategy("least-confidence", _uncertainty("least-confidence"), ("probs",),
             "1 - max probability. Needs predictions (or --probe)."),
    Strategy("margin", _uncertainty("margin"), ("probs",),
             "smallest gap between the two top classes. Needs predictions (or --probe)."),
    Strategy("entropy", _uncertainty("entropy"), ("probs",),
             "highest predictive entropy. Needs predictions (or --probe)."),
    Strategy("bald", _uncertainty("bald"), ("mc",),
             "mutual information over MC-dropout samples [N, T, C]. Needs predictions with MC samples."),
    Strategy("coreset", _coreset, ("embeddings",),
             "k-center greedy from the labeled set (model features when given, else embeddings). No model."),
    Strategy("badge", _badge, ("probs", "embeddings"),
             "k-means++ on gradient embeddings (probs × model features or embeddings). Needs predictions."),
    Strategy("typiclust", _typiclust, ("embeddings",),
             "cold start: most typical item of each uncovered k-means cluster. No model needed."),
    Strategy("cluster-margin", _cluster_margin, ("probs", "embeddings"),
             "large batches: lowest-margin items round-robin over embedding clusters. Needs predictions."),
    Strategy("similar", _similar, ("store", "queries"),
             "targeted mining: the unlabeled items nearest to --queries (workspace ids, or a folder / .jsonl of "
             "external images or texts), spread round-robin over query clusters; never near-duplicates."),
    Strategy("random", _random, (), "uniform sample of the candidates (seeded). Needs nothing."),
)}


def get(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise CurateError(f"unknown strategy {name!r} (choose from {', '.join(STRATEGIES)})")
    return STRATEGIES[name]
