"""Near-duplicates from cheap signals, each pair verified: ``--method near`` and ``--method fuzzy``.

One config, :class:`NearConfig`, whose ``signals`` say which candidates are proposed
(:mod:`curate.dedup.candidates`): identical bytes (``exact``), MinHash buckets of texts
(``minhash``), perceptual-hash buckets of images (``phash``) and the nearest neighbours in an
embedding store (``semantic``). ``fuzzy`` is ``near`` without the semantic signal: it reads no
store, and verifies texts by Jaccard alone (``near`` also accepts a close edit similarity and
rejects a swap of real words). Every candidate pair is verified by a precise pairwise measure
before it counts (:mod:`curate.dedup.verify`).

Grouping without chains (:func:`curate.dedup.groups.pair_decisions`): ``group`` is the connected
component of verified pairs, but an item is removed only as the duplicate of a kept item it matches
itself. Members are visited in ``--keep`` order (``quality`` by default: the original first, found by
comparing the members of the group with each other, :mod:`curate.dedup.compare`); each becomes the
duplicate of the first kept member it has a verified pair with, or of a removed member's keeper when it
is close to that keeper too (the loose bar ``2 * bar - 1``, checked on demand), or is kept. So a~b~c removes c for a
only when a and c are close. ``score`` and ``signal`` are those of the item's pair with its keeper
(``signal`` is ``transitive`` for a pair checked on demand). Every verified pair is in
``<run-id>-pairs.parquet`` (``a``, ``b``, ``score``, ``signal``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.decisions import run_paths
from curate.dedup.candidates import (
    SIGNALS,
    Found,
    exact_candidates,
    phash_candidates,
    propose,
    semantic_candidates,
    text_candidates,
)
from curate.dedup.compare import CompareConfig, compare_copies
from curate.dedup.groups import pair_decisions
from curate.dedup.keep import parse_policy, priority_ranks
from curate.dedup.minhash import check_lsh
from curate.dedup.pictures import Pictures
from curate.dedup.verify import Pairs, Verifier, verify
from curate.errors import CurateError
from curate.inputs import Manifest, Overrides, Store
from curate.io.tables import open_parquet
from curate.manifest import OK
from curate.runner import Output, RunContext, Stage, config_dict
from curate.workspace import Workspace

FUZZY_SIGNALS = tuple(s for s in SIGNALS if s != "semantic")
NEAR_ONLY = ("edit_similarity", "candidate_threshold", "knn", "model")  # no use without the semantic signal
CONTAINMENT = ("containment", "containment_ratio", "containment_chars", "boilerplate_df")  # in run ids when set
TEXT_RULES = 2  # 2: markup-free normalisation and the containment rule; runs before it are recomputed


@dataclass(frozen=True)
class NearConfig:
    """``near`` (every signal, the recommended method) or, without ``semantic``, ``fuzzy``."""

    signals: tuple[str, ...] = SIGNALS  # which signals propose candidates; fuzzy: all but semantic
    jaccard: float = 0.7  # texts: verified character n-gram Jaccard a pair needs
    ngram: int = 5  # texts: character n-gram length
    bands: int = 25  # texts: MinHash LSH bands x rows; a pair at Jaccard 0.7 is a candidate 99% of the time
    rows: int = 5
    image_similarity: float = 0.92  # images: the lowest bar (raised per image, see image_verify) a pair needs
    hamming: int = 12  # images: perceptual-hash bits two candidates may differ in
    containment: float = 0.9  # texts: or this share of the shorter text's shingles inside the longer one
    containment_ratio: float = 0.35  # texts, containment: the shorter text at least this share of the longer
    containment_chars: int = 100  # texts, containment: the shorter text's characters outside boilerplate
    boilerplate_df: int = 50  # texts: chunks more distinct texts than this hold are boilerplate (no containment)
    edit_similarity: float = 0.85  # near, texts: or a normalised edit similarity at least this
    candidate_threshold: float = 0.8  # semantic candidates: cosine to one of the k nearest at least this
    knn: int = 10  # semantic candidates: nearest neighbours looked at per item
    model: str | None = None  # store slug or model spec for semantic candidates; None: the only store, if any
    keep: str = "quality"
    seed: int = 0
    device: str = "auto"  # texts: the MinHash permutation step runs on this torch device when it is a GPU
    workers: int = 2  # images: processes that decode and hash (speed only: not part of the run id)


def method_of(config: NearConfig) -> str:
    """``near`` with the semantic signal, ``fuzzy`` without (the run id's prefix and the facts' method)."""
    return "near" if "semantic" in config.signals else "fuzzy"


def method_settings(method: str) -> dict[str, Any]:
    """The settings ``--method fuzzy`` fixes (none for ``near``): no semantic signal, nor its settings."""
    if method == "near":
        return {}
    defaults = NearConfig()
    return {"signals": FUZZY_SIGNALS, **{name: getattr(defaults, name) for name in NEAR_ONLY}}


class NearDedup(Stage):
    """``curate dedup --method near`` and ``--method fuzzy``: candidates from the signals, verified."""

    name = "dedup"
    config_type = NearConfig

    def validate(self, config: NearConfig) -> None:
        signals = tuple(config.signals)
        if not signals or len(set(signals)) != len(signals) or not set(signals) <= set(SIGNALS):
            raise CurateError(f"signals must be some of {', '.join(SIGNALS)} (each once), not "
                              f"{', '.join(map(str, signals)) or 'none'}")
        if "semantic" not in signals:
            defaults = NearConfig()
            given = [name for name in NEAR_ONLY if getattr(config, name) != getattr(defaults, name)]
            if given:
                raise CurateError(f"{', '.join('--' + g.replace('_', '-') for g in given)}: near only (with the "
                                  "semantic signal)")
        for name in ("jaccard", "containment", "containment_ratio", "image_similarity", "edit_similarity",
                     "candidate_threshold"):
            value = getattr(config, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not (np.isfinite(value) and 0.0 < value <= 1.0):
                raise CurateError(f"--{name.replace('_', '-')} must be in (0, 1], not {value}")
        for name, low in (("ngram", 1), ("knn", 1), ("containment_chars", 1), ("boilerplate_df", 1), ("workers", 1)):
            value = getattr(config, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise CurateError(f"--{name.replace('_', '-')} must be an integer >= {low}, not {value!r}")
        check_lsh(config.bands, config.rows)
        if not 0 <= config.hamming <= 64:
            raise CurateError(f"--hamming must be in [0, 64], not {config.hamming}")
        kind, _, _ = parse_policy(config.keep)
        if kind in ("hard", "easy"):
            raise CurateError(f"--keep {config.keep} needs cluster centroids (semantic dedup); fuzzy and near keep "
                              "quality, random or column:NAME")

    def prefix(self, config: NearConfig) -> str:
        return method_of(config)

    def settings(self, config: NearConfig) -> dict[str, Any]:
        """The run id's settings: those fuzzy and near always had (fuzzy: none of near's own), and the
        signals only when they are not the method's own."""
        method = method_of(config)
        out = config_dict(config)
        for name in ("signals", "workers", *(NEAR_ONLY if method == "fuzzy" else ())):
            out.pop(name)
        defaults = NearConfig()
        for name in CONTAINMENT:  # at their defaults they leave the run ids of runs before them as they were
            if getattr(config, name) == getattr(defaults, name):
                out.pop(name)
        chosen = [s for s in SIGNALS if s in config.signals]
        if set(chosen) != set(SIGNALS if method == "near" else FUZZY_SIGNALS):
            out["signals"] = chosen
        return out

    def inputs(self, config: NearConfig) -> tuple:
        if "semantic" not in config.signals:
            return (Manifest(), Overrides())
        # the named store's neighbours, else the only store's when there is one
        return (Manifest(), Store(need="always" if config.model is not None else "if-any"), Overrides())

    def is_current(self, ws: Workspace, meta: dict[str, Any]) -> bool:
        """Runs written before the pair column was renamed ``signal`` (from ``source``), or before the
        current text rules (``TEXT_RULES``), are recomputed."""
        if meta.get("text_rules") != TEXT_RULES:
            return False
        table, _ = run_paths(ws, self.name, meta["run_id"])
        with open_parquet(table) as pf:
            return "signal" in pf.schema_arrow.names

    def compute(self, ctx: RunContext) -> Output:
        config, store = ctx.config, ctx.inputs.store
        manifest = ctx.ws.read_manifest(["id", "status", "kind", "text", "content_hash", "bytes", "width", "height",
                                         "source", "source_kind", "offset", "length", "format"])
        ok = pc.equal(manifest.column("status"), OK).to_numpy(zero_copy_only=False)
        kinds = manifest.column("kind").to_pylist()
        texts = np.flatnonzero(ok & (np.array(kinds, dtype=object) == "text"))
        images = np.flatnonzero(ok & (np.array(kinds, dtype=object) == "image"))
        text_values = manifest.column("text").to_pylist()
        pictures = Pictures(manifest, ctx.bar)
        found: Found = {}
        if "exact" in config.signals:
            propose(found, "exact", exact_candidates(manifest, ok))
            ctx.lap("exact")
        boilerplate = np.zeros(0, dtype=np.uint64)
        if "minhash" in config.signals:
            if len(texts) > 1:
                pairs, boilerplate = text_candidates(text_values, texts, config)
                propose(found, "minhash", pairs)
            ctx.lap("minhash")
        if "phash" in config.signals:
            if len(images) > 1:
                propose(found, "phash", phash_candidates(pictures, images, config))
            ctx.lap("phash")
        if store is not None:
            propose(found, "semantic", semantic_candidates(store, config))
            ctx.lap("semantic")
        method = method_of(config)
        verifier = Verifier(kinds, text_values, pictures, config, edit=method == "near", boilerplate=boilerplate)
        pairs = verify(found, verifier, workers=config.workers)
        ctx.lap("verify")
        table = pair_decisions(manifest, ok, _ranks(manifest, ok, config, pairs), pairs,
                               lambda keeper, item: verifier.score(keeper, item, loose=True))
        ctx.lap("decide")
        facts = {"method": method, "model": store.slug if store is not None else None, "text_rules": TEXT_RULES,
                 "candidates": len(found), "verified": len(pairs.a), "image_decodes": pictures.decodes,
                 "candidates_by_signal": {s: sum(s in v for v in found.values()) for s in SIGNALS},
                 "verified_by_signal": {s: sum(s in v.split(",") for v in pairs.signal) for s in SIGNALS}}
        return Output(table, facts, {"pairs": pairs.table(manifest.column("id"))})


def _ranks(manifest: pa.Table, ok: np.ndarray, config: NearConfig, pairs: Pairs) -> np.ndarray:
    """Keep priority of every row; ``quality`` then reorders each group of verified pairs by comparing its
    members with each other (:mod:`curate.dedup.compare`: the original first)."""
    rows = np.arange(manifest.num_rows)
    ranks = priority_ranks(config.keep, np.zeros(len(rows)), rows, manifest, config.seed)
    if config.keep == "quality" and len(pairs.a):
        ranks = compare_copies(manifest, ranks, pairs.a, pairs.b, config=CompareConfig(seed=config.seed))
    return np.where(ok, ranks, np.iinfo(np.int64).max)
