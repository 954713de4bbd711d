"""Near-duplicates from every available signal, each pair verified: ``--method fuzzy`` and ``near``.

Candidates come from cheap signals: identical bytes (``exact``), MinHash buckets of texts
(``minhash``), perceptual-hash buckets of images (``phash``) and, for ``near``, the nearest
neighbours in an embedding store (``semantic``). Every candidate pair is then verified by a
precise pairwise measure before it counts:

- texts: character n-gram Jaccard >= ``jaccard``, or (``near``) normalised edit similarity
  >= ``edit_similarity`` (typos break many n-grams but few characters); ``near`` then rejects a
  pair that only swaps a word or two for other real words (:mod:`curate.dedup.text_verify`);
- images: perceptual similarity after flip / crop / rotation alignment and tone mapping >= the
  pair's bar, ``image_similarity`` raised for images whose every copy scores high
  (:mod:`curate.dedup.image_verify`). Each image's ``MAX_IMAGE_CANDIDATES`` nearest hash
  candidates are verified.

Grouping without chains: ``group`` is the connected component of verified pairs, but an item
is removed only as the duplicate of a kept item it matches itself. Members are visited in
``--keep`` order (``quality`` by default: most pixels, least compressed, sharpest; the most
complete, best spelled text); each becomes the duplicate of the first kept member it has a
verified pair with, or of a removed member's keeper when it is close to that keeper too (the
loose bar ``2 * bar - 1``, checked on demand), or is kept. So a~b~c removes c for a only when a
and c are close. ``score`` and ``source`` are those of the
item's pair with its keeper (``source`` is ``transitive`` for a pair checked on demand). Every
verified pair is in ``<run-id>-pairs.parquet``.

Verification builds each image's view (alignment features) once, measures its copy floor only
when one of its pairs passes the coarse screen, and stops searching as soon as a pair clears its
bar.
Short texts (under ``EDIT_MIN_CHARS`` normalised characters) are not matched by edit similarity
and need a Jaccard of ``SHORT_JACCARD`` at least: there one changed word ("Return the number of
items in the queue." / "... in the stack.") is within any edit bar and at Jaccard 0.7.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.dedup.keep import parse_policy, priority_ranks
from curate.dedup.minhash import check_lsh
from curate.errors import CurateError
from curate.inputs import Manifest, Overrides, Store
from curate.manifest import OK
from curate.runner import Output, RunContext, Stage, StageResult, run_stage
from curate.workspace import Workspace

SIGNALS = ("exact", "minhash", "phash", "semantic")
EDIT_MIN_CHARS = 100  # texts shorter than this (normalised) pass on Jaccard only, at SHORT_JACCARD at least
SHORT_JACCARD = 0.85  # one changed word of a 40-character sentence leaves a Jaccard of about 0.7
MAX_IMAGE_CANDIDATES = 8  # perceptual-hash candidates verified per image: its nearest by Hamming distance


@dataclass(frozen=True)
class FuzzyConfig:
    """Lexical and perceptual near-duplicates; needs no embedding store."""

    jaccard: float = 0.7  # texts: verified character n-gram Jaccard a pair needs
    ngram: int = 5  # texts: character n-gram length
    bands: int = 25  # texts: MinHash LSH bands x rows; a pair at Jaccard 0.7 is a candidate 99% of the time
    rows: int = 5
    image_similarity: float = 0.92  # images: the lowest bar (raised per image, see image_verify) a pair needs
    hamming: int = 12  # images: perceptual-hash bits two candidates may differ in
    keep: str = "quality"
    seed: int = 0
    device: str = "auto"  # texts: the MinHash permutation step runs on this torch device when it is a GPU


@dataclass(frozen=True)
class NearConfig:
    """Every signal, each pair verified: the recommended method."""

    jaccard: float = 0.7
    ngram: int = 5
    bands: int = 25
    rows: int = 5
    image_similarity: float = 0.92
    hamming: int = 12
    edit_similarity: float = 0.85  # texts: or a normalised edit similarity at least this
    candidate_threshold: float = 0.8  # semantic candidates: cosine to one of the k nearest at least this
    knn: int = 10  # semantic candidates: nearest neighbours looked at per item
    model: str | None = None  # store slug or model spec for semantic candidates; None: the only store, if any
    keep: str = "quality"
    seed: int = 0
    device: str = "auto"


def _check(config: FuzzyConfig | NearConfig) -> None:
    for name in ("jaccard", "image_similarity", "edit_similarity", "candidate_threshold"):
        value = getattr(config, name, 0.5)
        if not (np.isfinite(value) and 0.0 < value <= 1.0):
            raise CurateError(f"--{name.replace('_', '-')} must be in (0, 1], not {value}")
    for name in ("ngram", "knn"):
        value = getattr(config, name, 1)
        if value < 1:
            raise CurateError(f"--{name} must be >= 1, not {value}")
    check_lsh(config.bands, config.rows)
    if not 0 <= config.hamming <= 64:
        raise CurateError(f"--hamming must be in [0, 64], not {config.hamming}")
    kind, _, _ = parse_policy(config.keep)
    if kind in ("hard", "easy"):
        raise CurateError(f"--keep {config.keep} needs cluster centroids (semantic dedup); fuzzy and near keep "
                          "quality, random or column:NAME")


class FuzzyDedup(Stage):
    """``curate dedup --method fuzzy``: MinHash for texts, perceptual hashes for images, verified."""

    name = "dedup"
    config_type = FuzzyConfig

    def validate(self, config: FuzzyConfig) -> None:
        _check(config)

    def prefix(self, config: FuzzyConfig) -> str:
        return "fuzzy"

    def inputs(self, config: FuzzyConfig) -> tuple:
        return (Manifest(), Overrides())

    def compute(self, ctx: RunContext) -> Output:
        return _near(ctx, None, "fuzzy")


class NearDedup(Stage):
    """``curate dedup --method near``: fuzzy's signals plus the store's nearest neighbours, verified."""

    name = "dedup"
    config_type = NearConfig

    def validate(self, config: NearConfig) -> None:
        _check(config)

    def prefix(self, config: NearConfig) -> str:
        return "near"

    def needs_store(self, config: NearConfig) -> bool:
        return config.model is not None  # without a model, the only store when there is one, else none

    def inputs(self, config: NearConfig) -> tuple:
        return (Manifest(), Store(need="if-any"), Overrides())  # the store's neighbours when there is one

    def compute(self, ctx: RunContext) -> Output:
        return _near(ctx, ctx.inputs.store, "near")


def fuzzy_dedup(ws: Workspace, config: FuzzyConfig = FuzzyConfig(), **run: Any) -> StageResult:
    return run_stage(ws, FuzzyDedup(), config, **run)


def near_dedup(ws: Workspace, config: NearConfig = NearConfig(), **run: Any) -> StageResult:
    return run_stage(ws, NearDedup(), config, **run)


@dataclass
class _Pairs:
    """Verified pairs of manifest rows (a < b), their score and the signals that proposed them."""

    a: np.ndarray
    b: np.ndarray
    score: np.ndarray
    source: list[str]


def _near(ctx: RunContext, store, method: str) -> Output:
    config, ws = ctx.config, ctx.ws
    manifest = ws.read_manifest(["id", "status", "kind", "text", "content_hash", "bytes", "width", "height",
                                 "source", "source_kind", "offset", "length", "format"])
    ok = pc.equal(manifest.column("status"), OK).to_numpy(zero_copy_only=False)
    kinds = manifest.column("kind").to_pylist()
    found: dict[tuple[int, int], set[str]] = {}
    _propose(found, "exact", _exact_candidates(manifest, ok))
    ctx.lap("exact")
    texts = np.flatnonzero(ok & (np.array(kinds, dtype=object) == "text"))
    images = np.flatnonzero(ok & (np.array(kinds, dtype=object) == "image"))
    text_values = manifest.column("text").to_pylist()
    if len(texts) > 1:
        _propose(found, "minhash", _minhash_candidates(text_values, texts, config))
    ctx.lap("minhash")
    pictures = _Pictures(manifest, ctx)
    if len(images) > 1:
        _propose(found, "phash", _phash_candidates(pictures, images, config))
    ctx.lap("phash")
    if store is not None:
        _propose(found, "semantic", _semantic_candidates(store, config))
        ctx.lap("semantic")
    verifier = _Verifier(kinds, text_values, pictures, config, method)
    pairs = _verify(found, verifier)
    ctx.lap("verify")
    ranks = _ranks(manifest, ok, config, pairs, pictures)
    table = _decide(manifest, ok, ranks, pairs, verifier)
    ctx.lap("decide")
    facts = {"method": method, "model": store.slug if store is not None else None,
             "candidates": len(found), "verified": len(pairs.a),
             "candidates_by_signal": {s: sum(s in v for v in found.values()) for s in SIGNALS},
             "verified_by_signal": {s: sum(s in v.split(",") for v in pairs.source) for s in SIGNALS}}
    return Output(table, facts, {"pairs": _pairs_table(manifest, pairs)})


def _propose(found: dict, signal: str, pairs: np.ndarray) -> None:
    for a, b in pairs.tolist():
        key = (a, b) if a < b else (b, a)
        if a != b:
            found.setdefault(key, set()).add(signal)


def _exact_candidates(manifest: pa.Table, ok: np.ndarray) -> np.ndarray:
    """Every ok row paired with the first ok row of the same bytes."""
    hashes = manifest.column("content_hash").to_pylist()
    first: dict[str, int] = {}
    out = []
    for i in np.flatnonzero(ok).tolist():
        h = hashes[i]
        if h is None:
            continue
        if h in first:
            out.append((first[h], i))
        else:
            first[h] = i
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def _minhash_candidates(text_values: list, rows: np.ndarray, config) -> np.ndarray:
    from curate.dedup.minhash import MinHashConfig, candidate_pairs, signatures

    mh = MinHashConfig(ngram=config.ngram, bands=config.bands, rows=config.rows, threshold=config.jaccard,
                       seed=config.seed)
    sigs = signatures([text_values[r] or "" for r in rows.tolist()], mh, device=config.device)
    local = candidate_pairs(sigs, config.bands, config.rows)
    return rows[local] if len(local) else np.empty((0, 2), dtype=np.int64)


def _phash_candidates(pictures: _Pictures, rows: np.ndarray, config) -> np.ndarray:
    from curate.dedup.phash import candidate_pairs, popcount

    hashes, have = pictures.hashes(rows)
    usable, hashes = rows[have], hashes[have]
    local = candidate_pairs(hashes, config.hamming)
    if not len(local):
        return np.empty((0, 2), dtype=np.int64)
    local = nearest_per_item(local, popcount(hashes[local[:, 0]] ^ hashes[local[:, 1]]), MAX_IMAGE_CANDIDATES)
    return usable[local]


def nearest_per_item(pairs: np.ndarray, distance: np.ndarray, k: int) -> np.ndarray:
    """The pairs that are among the ``k`` nearest (smallest ``distance``, then earliest) of either
    of their items: a crowd of look-alikes (scans of one digit) gives each item dozens of candidates,
    and its copies are among its nearest."""
    ends = np.concatenate([pairs[:, 0], pairs[:, 1]])
    which = np.concatenate([np.arange(len(pairs)), np.arange(len(pairs))])
    order = np.lexsort((which, np.concatenate([distance, distance]), ends))
    ends, which = ends[order], which[order]
    starts = np.flatnonzero(np.r_[True, ends[1:] != ends[:-1]])
    rank = np.arange(len(ends)) - np.repeat(starts, np.diff(np.r_[starts, len(ends)]))
    keep = np.zeros(len(pairs), dtype=bool)
    keep[which[rank < k]] = True
    return pairs[keep]


def _semantic_candidates(store, config: NearConfig, block: int = 16384) -> np.ndarray:
    """Pairs of manifest rows among each item's ``neighbours`` nearest with cosine >= candidate_threshold."""
    from curate.index.ann import build_index, search

    valid = np.flatnonzero(store.valid)
    if len(valid) < 2:
        return np.empty((0, 2), dtype=np.int64)
    index = build_index(store.vectors, store.valid, device=config.device)
    k = min(config.knn + 1, len(valid))
    out = []
    for lo in range(0, len(valid), block):
        part = valid[lo:lo + block]
        sims, hits = search(index, store.gather(part), k)
        keep = (hits >= 0) & (sims >= config.candidate_threshold) & (hits != part[:, None])
        a = np.repeat(part, k).reshape(len(part), k)[keep]
        out.append(np.stack([store.manifest_rows[a], store.manifest_rows[hits[keep]]], axis=1))
    return np.concatenate(out) if out else np.empty((0, 2), dtype=np.int64)


class _Verifier:
    """The precise pairwise measures of two manifest rows. ``loose``: the bar an item two verified
    steps from its keeper must clear with the keeper itself, ``2 * bar - 1`` (what two steps within
    the bar allow for a distance ``1 - similarity`` that obeys the triangle inequality)."""

    def __init__(self, kinds: list, text_values: list, pictures: _Pictures, config, method: str) -> None:
        self.kinds, self.pictures, self.config, self.method = kinds, pictures, config, method
        self.texts = [t or "" for t in text_values]
        self._swap_check = None

    def text_pairs(self, a: np.ndarray, b: np.ndarray, loose: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Jaccard of every pair, or (``near``) normalised edit similarity where Jaccard misses it."""
        from curate.dedup.minhash import jaccard_pairs

        jaccard, edit = self.config.jaccard, getattr(self.config, "edit_similarity", 1.0)
        if loose:
            jaccard, edit = 2 * jaccard - 1, 2 * edit - 1
        from curate.dedup.minhash import normalise

        score = jaccard_pairs(self.texts, np.stack([a, b], axis=1), self.config.ngram).astype(np.float32)
        short = np.array([min(len(normalise(self.texts[x])), len(normalise(self.texts[y]))) < EDIT_MIN_CHARS
                          for x, y in zip(a.tolist(), b.tolist())], dtype=bool)
        short_bar = max(jaccard, 2 * SHORT_JACCARD - 1 if loose else SHORT_JACCARD)
        passed = score >= np.where(short, short_bar, jaccard) - 1e-6  # float32 scores: no false miss at the bar
        if self.method == "near":
            from rapidfuzz.distance import Levenshtein

            for i in np.flatnonzero(~passed & ~short).tolist():
                x, y = normalise(self.texts[a[i]]), normalise(self.texts[b[i]])
                sim = Levenshtein.normalized_similarity(x, y, score_cutoff=edit)
                if sim >= edit:
                    score[i], passed[i] = sim, True
            checked = np.flatnonzero(passed)
            if len(checked):  # a swap of words other texts write: a look-alike, not a copy
                passed[checked[self._swaps().rejects(list(zip(a[checked].tolist(), b[checked].tolist())))]] = False
        return score, passed

    def _swaps(self):
        from curate.dedup.text_verify import SwapCheck

        if self._swap_check is None:
            self._swap_check = SwapCheck(self.texts, self.config.seed)
        return self._swap_check

    def image_pair(self, a: int, b: int, loose: bool = False) -> tuple[float, bool]:
        """Copy similarity against the pair's calibrated bar (:mod:`curate.dedup.image_verify`); pairs
        far below the lowest bar are screened out before any copy floor is measured."""
        from curate.dedup.image_verify import SCREEN_MARGIN, coarse_similarity, copy_similarity, pair_bar

        va, vb = self.pictures.view(a), self.pictures.view(b)
        if va is None or vb is None:
            return 0.0, False
        relax = (lambda bar: 2 * bar - 1) if loose else (lambda bar: bar)
        lowest = relax(self.config.image_similarity) - SCREEN_MARGIN
        coarse = coarse_similarity(va, vb, enough=lowest)
        if coarse < lowest:
            return coarse, False
        bar = relax(pair_bar(self.pictures.floor(a), self.pictures.floor(b), self.config.image_similarity))
        sim = copy_similarity(va, vb, bar)
        return sim, sim >= bar

    def score(self, a: int, b: int, loose: bool = False) -> tuple[float, bool]:
        kind = self.kinds[a]
        if kind != self.kinds[b] or kind not in ("text", "image"):
            return 0.0, False
        if kind == "image":
            return self.image_pair(a, b, loose)
        sc, ok = self.text_pairs(np.array([a]), np.array([b]), loose)
        return float(sc[0]), bool(ok[0])


def _verify(found: dict, verifier: _Verifier) -> _Pairs:
    """Keep the candidate pairs whose precise measure clears the bar (exact bytes always do)."""
    kinds = verifier.kinds
    keys = sorted(found)
    a = np.array([k[0] for k in keys], dtype=np.int64)
    b = np.array([k[1] for k in keys], dtype=np.int64)
    score = np.zeros(len(keys), dtype=np.float32)
    passed = np.zeros(len(keys), dtype=bool)
    exact = np.array(["exact" in found[k] for k in keys], dtype=bool)
    score[exact], passed[exact] = 1.0, True
    same_kind = np.array([kinds[x] == kinds[y] for x, y in keys], dtype=bool)
    text = ~exact & same_kind & np.array([kinds[x] == "text" for x, _ in keys], dtype=bool)
    if text.any():
        score[text], passed[text] = verifier.text_pairs(a[text], b[text])
    image = ~exact & same_kind & np.array([kinds[x] == "image" for x, _ in keys], dtype=bool)
    for i in np.flatnonzero(image).tolist():
        score[i], passed[i] = verifier.image_pair(int(a[i]), int(b[i]))
    keep = np.flatnonzero(passed)
    return _Pairs(a[keep], b[keep], score[keep], [",".join(s for s in SIGNALS if s in found[keys[i]]) for i in keep])


def _ranks(manifest: pa.Table, ok: np.ndarray, config, pairs: _Pairs, pictures: _Pictures) -> np.ndarray:
    """Keep priority of every row; ``quality`` measures the sharpness of the images in verified pairs."""
    rows = np.arange(manifest.num_rows)
    sharpness = None
    if config.keep == "quality" and len(pairs.a):
        sharpness = pictures.sharpness(np.unique(np.concatenate([pairs.a, pairs.b])))
    ranks = priority_ranks(config.keep, np.zeros(len(rows)), rows, manifest, config.seed, sharpness=sharpness)
    return np.where(ok, ranks, np.iinfo(np.int64).max)


def _assign(members: list[int], edges: dict[tuple[int, int], tuple[float, str]],
            verifier: _Verifier) -> dict[int, tuple[int, float, str]]:
    """Within one component (``members`` in keep order): item -> (keeper, score, source) for each
    removed item. An item is removed for the first kept member it has a verified pair with; failing
    that, for the keeper of a removed member it has a verified pair with, when it clears the loose
    bar with that keeper itself (so a chain cannot drift: a~b~c removes c for a only when a and c
    are close); failing that it is kept."""
    keepers: list[int] = []
    out: dict[int, tuple[int, float, str]] = {}

    def edge(x: int, y: int):
        return edges.get((min(x, y), max(x, y)))

    for m in members:
        match = next(((k, *edge(k, m)) for k in keepers if edge(k, m) is not None), None)
        if match is None:
            via = dict.fromkeys(out[r][0] for r in out if edge(r, m) is not None)
            for k in list(via)[:8]:  # verified now: bounded, groups are small
                sc, ok = verifier.score(k, m, loose=True)
                if ok:
                    match = (k, sc, "transitive")
                    break
        if match is None:
            keepers.append(m)
        else:
            out[m] = match
    return out


def _decide(manifest: pa.Table, ok: np.ndarray, ranks: np.ndarray, pairs: _Pairs, verifier: _Verifier) -> pa.Table:
    """Components of verified pairs are the groups; within each the no-chain rule of :func:`_assign`
    decides which members are removed and for which kept member."""
    from curate.dedup.knn import components

    n = manifest.num_rows
    hashes = manifest.column("content_hash").to_pylist()
    ids = manifest.column("id").to_pylist()
    root = components(n, pairs.a, pairs.b)
    in_group = np.zeros(n, dtype=bool)
    in_group[pairs.a] = in_group[pairs.b] = True
    edges = {(x, y): (sc, src) for x, y, sc, src in
             zip(pairs.a.tolist(), pairs.b.tolist(), pairs.score.tolist(), pairs.source)}
    members: dict[int, list[int]] = {}
    for i in np.argsort(ranks, kind="stable").tolist():  # keep order within each component
        if in_group[i]:
            members.setdefault(int(root[i]), []).append(i)
    decided: dict[int, tuple[int, float, str]] = {}
    for group_members in members.values():
        decided.update(_assign(group_members, edges, verifier))
    dup_of = np.full(n, -1, dtype=np.int64)
    for i, (k, _, _) in decided.items():
        dup_of[i] = k
    removed = dup_of >= 0
    kept = ok & ~removed
    numbers = {r: g for g, r in enumerate(dict.fromkeys(root[np.flatnonzero(in_group)].tolist()))}
    group = np.array([numbers[int(root[i])] if in_group[i] else -1 for i in range(n)], dtype=np.int64)
    reason: list[str | None] = []
    for i in range(n):
        if not ok[i]:
            reason.append("quarantined")
        elif kept[i]:
            reason.append(None)
        else:
            same = hashes[i] is not None and hashes[i] == hashes[dup_of[i]]
            reason.append("exact-duplicate" if same else "near-duplicate")
    score = np.array([decided[i][1] if i in decided else np.nan for i in range(n)], dtype=np.float32)
    return pa.table({
        "id": manifest.column("id"),
        "kept": pa.array(kept),
        "reason": pa.array(reason, pa.string()),
        "duplicate_of": pa.array([ids[d] if r else None for d, r in zip(dup_of.tolist(), removed)], pa.string()),
        "group": pa.array(group, pa.int64(), mask=group < 0),
        "score": pa.array(score, pa.float32(), mask=~removed),
        "source": pa.array([decided[i][2] if i in decided else None for i in range(n)], pa.string()),
    })


def _pairs_table(manifest: pa.Table, pairs: _Pairs) -> pa.Table:
    ids = manifest.column("id")
    return pa.table({"a": ids.take(pa.array(pairs.a, pa.int64())), "b": ids.take(pa.array(pairs.b, pa.int64())),
                     "score": pa.array(pairs.score, pa.float32()), "source": pa.array(pairs.source, pa.string())})


class _Pictures:
    """Images by manifest row. The hashing pass decodes each image once; verification decodes an
    image again to build its :class:`~curate.dedup.image_verify.ImageView` (about 330 KB; the last
    ``views`` are kept: pairs are verified in row order, so the first image of a run of pairs stays
    cached) and, for pairs that pass the coarse screen, to measure its copy floor (kept, a float)."""

    def __init__(self, manifest: pa.Table, ctx: RunContext, max_side: int = 256, views: int = 2048) -> None:
        from collections import OrderedDict

        self.manifest, self.ctx, self.max_side = manifest, ctx, max_side
        self.views: OrderedDict[int, Any] = OrderedDict()
        self.floors: dict[int, float] = {}
        self.limit = views
        self._fetcher = None

    def decode(self, row: int):
        from PIL import Image

        from curate.embed.payloads import PayloadFetcher

        if self._fetcher is None:
            self._fetcher = PayloadFetcher()
        record = {name: self.manifest.column(name)[row].as_py() for name in self.manifest.column_names}
        try:
            img = Image.open(io.BytesIO(self._fetcher.fetch(record)))
            img.draft("RGB", (self.max_side, self.max_side))
            img = img.convert("RGB")
            img.thumbnail((self.max_side, self.max_side))
            return img
        except Exception:  # unreadable now: it cannot be verified, so it is never a duplicate
            return None

    def view(self, row: int):
        """The :class:`~curate.dedup.image_verify.ImageView` of a row (None when it cannot be decoded), cached."""
        from curate.dedup.image_verify import image_view

        if row in self.views:
            self.views.move_to_end(row)
            return self.views[row]
        img = self.decode(row)
        view = None if img is None else image_view(img)
        self.views[row] = view
        if len(self.views) > self.limit:
            self.views.popitem(last=False)
        return view

    def floor(self, row: int) -> float:
        """The copy floor of a row's image (:func:`~curate.dedup.image_verify.copy_floor`), cached."""
        from curate.dedup.image_verify import copy_floor

        if row not in self.floors:
            view, img = self.view(row), self.decode(row)
            self.floors[row] = 1.0 if view is None or img is None else copy_floor(img, view)
        return self.floors[row]

    def hashes(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The perceptual hash of each row (has: False where it cannot be decoded)."""
        from curate.dedup.phash import image_hash

        out = np.zeros(len(rows), dtype=np.uint64)
        have = np.zeros(len(rows), dtype=bool)
        for k, r in enumerate(self.ctx.bar(iterable=rows.tolist(), desc="perceptual hashes", unit=" images")):
            img = self.decode(r)
            if img is not None:
                out[k], have[k] = np.uint64(image_hash(img)), True
        return out, have

    def sharpness(self, rows: np.ndarray) -> np.ndarray:
        """Per manifest row (NaN elsewhere): the sharpness of the image rows among ``rows``."""
        from curate.dedup.quality import image_sharpness

        if self._fetcher is None:
            from curate.embed.payloads import PayloadFetcher

            self._fetcher = PayloadFetcher()
        return image_sharpness(rows, self.manifest, self._fetcher.fetch)
