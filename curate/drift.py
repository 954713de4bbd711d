"""Drift: does a new batch look like a reference dataset in embedding space?

Both workspaces must be embedded with the same model: the store of the same name in both, or
two bring-your-own (``precomputed:``) stores of the same dimension whatever their names (the slug
comes from the file name), or the REF store named with ``reference_model``. Everything works on seeded samples
(``sample`` rows of NEW; up to ``2 x sample`` rows of REF, split in a *fit* half and a
*held-out* half for the cluster test) plus one nearest-neighbour index over REF (REF's
saved FAISS index when it matches, else a fresh one), so memory and time are bounded
whatever the dataset sizes. Three tests, each a p-value and an effect size:

1. ``nn-distance``: cosine distance of each NEW sample row to its nearest REF item, against
   the same distance for the REF sample rows to the rest of REF (leave-one-out), compared
   with a two-sample Kolmogorov-Smirnov test (effect: the KS statistic D).
2. ``cluster-mass``: spherical k-means on the REF fit half; NEW and held-out REF rows are
   binned by nearest centroid, or into *outside* when farther from every centroid than
   REF's own ``outside_quantile`` distance. Chi-square between the two histograms with a
   permutation p-value (effect: their total-variation distance). Reported per cluster: which
   grew, shrank, and the *appeared* mass (the outside bin).
3. ``mmd``: unbiased squared MMD (RBF kernel) between sub-samples of NEW and REF, permutation p-value
   (effect: sqrt(MMD^2)).

A test flags drift when ``p < alpha / 3`` (Bonferroni over the three tests, so the
false-alarm rate of the whole check is at most ``alpha``) and its effect reaches
``min_effect``; the batch has drifted when any test flags it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from curate.drift_stats import ks_test, mass_shift_test, mmd_test
from curate.embed.store import StoredEmbeddings, choose_store, list_stores, store_dir
from curate.errors import CurateError
from curate.index.assign import assign
from curate.index.kmeans import KMeansConfig, fit_spherical_kmeans, sample_rows
from curate.inputs import Manifest, Resolved, Store
from curate.io import atomic
from curate.io.fs import Location, locate
from curate.io.hashing import fingerprint
from curate.runner import Output, RunContext, Stage, StageResult, config_dict, file_facts, file_is_current, run_stage
from curate.vectors import gather
from curate.workspace import Workspace

TESTS = ("nn-distance", "cluster-mass", "mmd")


@dataclass(frozen=True)
class DriftConfig:
    model: str | None = None  # NEW's store slug (or model spec); default: the one both workspaces have
    reference_model: str | None = None  # REF's store when its name differs from NEW's (same dimension)
    sample: int = 2000  # NEW rows, and REF rows per half (fit / held-out)
    clusters: int | None = None  # k-means on REF; default round(sqrt(fit rows) / 2) in [2, 50]
    alpha: float = 0.01  # family-wise significance level
    min_effect: float = 0.03  # smallest effect (KS D, TV distance, sqrt MMD^2) that counts as drift
    permutations: int = 1000
    mmd_sample: int = 500
    outside_quantile: float = 0.99
    seed: int = 0
    device: str = "auto"
    reference: str | None = None  # REF's workspace (folder or URI); the stage runs on (and locks) NEW's
    out: str | None = None  # where the JSON report goes; default decisions/drift/<run-id>-report.json in NEW


@dataclass(frozen=True)
class TestResult:
    name: str
    statistic: float
    p_value: float
    effect: float
    drifted: bool
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterShift:
    cluster: int | str  # centroid number, or "appeared"
    ref_fraction: float  # of held-out REF rows
    new_fraction: float
    shift: float  # new - ref
    p_value: float  # two-proportion z-test for this bin alone
    examples: list[str]  # REF ids nearest the centroid; for "appeared", the NEW ids farthest from REF


@dataclass(frozen=True)
class DriftReport:
    drifted: bool
    model: str | None
    new: dict  # workspace, valid rows, sampled rows
    reference: dict
    tests: list[TestResult]
    clusters: list[ClusterShift]  # every centroid, by shift (largest growth first)
    appeared: ClusterShift
    config: dict

    def grown(self, top: int = 5) -> list[ClusterShift]:
        return [c for c in self.clusters if c.shift > 0][:top]

    def shrunk(self, top: int = 5) -> list[ClusterShift]:
        return [c for c in reversed(self.clusters) if c.shift < 0][:top]

    def as_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, default=_jsonable) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> DriftReport:
        """The report :meth:`to_json` wrote, read back (same values, so the same JSON)."""
        return cls(data["drifted"], data["model"], data["new"], data["reference"],
                   [TestResult(**t) for t in data["tests"]], [ClusterShift(**c) for c in data["clusters"]],
                   ClusterShift(**data["appeared"]), data["config"])


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


@dataclass(frozen=True)
class Samples:
    """Seeded sample rows (store rows, sorted within each part) and their fp32 vectors."""

    new_rows: np.ndarray
    fit_rows: np.ndarray
    held_rows: np.ndarray
    new: np.ndarray
    fit: np.ndarray
    held: np.ndarray


def draw_samples(new_vectors: np.ndarray, new_valid: np.ndarray, ref_vectors: np.ndarray, ref_valid: np.ndarray,
                 config: DriftConfig) -> Samples:
    if config.sample < 8:
        raise CurateError("drift needs a sample of at least 8 rows")
    if int(np.sum(new_valid)) < 4 or int(np.sum(ref_valid)) < 8:
        raise CurateError("drift needs at least 4 embedded NEW rows and 8 embedded REF rows")
    new_rows = sample_rows(new_valid, config.sample, config.seed + 1)
    ref_rows = sample_rows(ref_valid, 2 * config.sample, config.seed)
    ref_rows = np.random.default_rng(config.seed).permutation(ref_rows)
    half = len(ref_rows) // 2
    fit_rows, held_rows = np.sort(ref_rows[:half]), np.sort(ref_rows[half:])
    return Samples(new_rows, fit_rows, held_rows, gather(new_vectors, new_rows),
                   gather(ref_vectors, fit_rows), gather(ref_vectors, held_rows))


def nearest_distances(ref_vectors: np.ndarray, ref_valid: np.ndarray, queries: np.ndarray,
                      exclude_rows: np.ndarray | None, device: str, index=None, k: int = 4) -> np.ndarray:
    """Cosine distance of each query to its nearest valid REF row that is not the query itself:
    neither its own row (``exclude_rows[i]``, when the query is a REF row) nor a row holding the very
    same vector. So a NEW batch that overlaps REF (a sample of it, or re-ingested rows) is measured
    like REF's own leave-one-out distances, not as a batch of zero distances."""
    if index is not None:
        from curate.index.ann import search

        sims, rows = search(index, queries, k)
    else:
        from curate.index.ann import exact_search

        sims, rows = exact_search(ref_vectors, queries, k, valid=ref_valid, device=device)
    self_sim = np.einsum("ij,ij->i", queries, queries)[:, None]  # what an identical REF vector scores
    same = (rows < 0) | (sims >= self_sim - 1e-5)
    if exclude_rows is not None:
        same |= rows == exclude_rows[:, None]
    pick = np.argmax(~same, axis=1)  # the first neighbour that is another item
    first = sims[np.arange(len(sims)), pick]
    first = np.where((~same).any(axis=1), first, sims[:, -1])
    return (1.0 - first).astype(np.float64)


def drift_arrays(new_vectors: np.ndarray, new_valid: np.ndarray, ref_vectors: np.ndarray, ref_valid: np.ndarray,
                 config: DriftConfig = DriftConfig(), new_ids: list[str] | None = None,
                 ref_ids: list[str] | None = None, index=None, step: Callable[[str], None] = lambda name: None
                 ) -> DriftReport:
    """The three tests on two (memory-mapped) embedding arrays; ``index``: an AnnIndex over REF, if any;
    ``step(name)`` is called as each test starts (progress)."""
    if new_vectors.shape[1] != ref_vectors.shape[1]:
        raise CurateError(f"embeddings differ in dimension: NEW {new_vectors.shape[1]}, REF {ref_vectors.shape[1]}")
    s = draw_samples(new_vectors, new_valid, ref_vectors, ref_valid, config)
    per_test = config.alpha / len(TESTS)

    def verdict(p: float, effect: float) -> bool:
        return bool(p < per_test and effect >= config.min_effect)

    ref_rows, ref_x = np.concatenate([s.fit_rows, s.held_rows]), np.concatenate([s.fit, s.held])
    step("nn-distance")
    d_new = nearest_distances(ref_vectors, ref_valid, s.new, None, config.device, index)
    d_ref = nearest_distances(ref_vectors, ref_valid, ref_x, ref_rows, config.device, index)
    ks = ks_test(d_new, d_ref)
    nn = TestResult("nn-distance", ks.statistic, ks.p_value, ks.statistic, verdict(ks.p_value, ks.statistic),
                    {"new_median": float(np.median(d_new)), "ref_median": float(np.median(d_ref)),
                     "new_p90": float(np.quantile(d_new, 0.9)), "ref_p90": float(np.quantile(d_ref, 0.9))})

    step("cluster-mass")
    mass, clusters, appeared = _cluster_mass(s, config, new_ids, ref_ids)
    mass_test = TestResult("cluster-mass", mass.chi2, mass.p_value, mass.tv, verdict(mass.p_value, mass.tv),
                           {"clusters": len(clusters), "tv": mass.tv})

    rng = np.random.default_rng(config.seed + 2)
    mx = s.new[_subset(rng, len(s.new), config.mmd_sample)]
    my = ref_x[_subset(rng, len(ref_x), config.mmd_sample)]
    step("mmd")
    mmd, bandwidth = mmd_test(mx, my, config.permutations, config.seed, config.device)
    effect = float(np.sqrt(max(mmd.statistic, 0.0)))
    mmd_result = TestResult("mmd", mmd.statistic, mmd.p_value, effect, verdict(mmd.p_value, effect),
                            {"bandwidth": bandwidth, "rows": [len(mx), len(my)]})
    tests = [nn, mass_test, mmd_result]
    return DriftReport(
        drifted=any(t.drifted for t in tests), model=None,
        new={"valid": int(np.sum(new_valid)), "sampled": len(s.new_rows)},
        reference={"valid": int(np.sum(ref_valid)), "fit": len(s.fit_rows), "held_out": len(s.held_rows)},
        tests=tests, clusters=clusters, appeared=appeared, config=asdict(config))


def _subset(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    return np.sort(rng.choice(n, size=size, replace=False)) if n > size else np.arange(n)


def _cluster_mass(s: Samples, config: DriftConfig, new_ids: list[str] | None, ref_ids: list[str] | None):
    k = config.clusters or int(np.clip(round(np.sqrt(len(s.fit)) / 2), 2, 50))
    k = max(1, min(k, len(s.fit)))
    centroids = fit_spherical_kmeans(s.fit, None, KMeansConfig(clusters=k, sample=len(s.fit), iterations=20,
                                                               seed=config.seed, device=config.device,
                                                               backend="torch"))  # a sample: torch is plenty
    k = len(centroids)
    fit = assign(s.fit, centroids, top=1, device=config.device)
    limit = float(np.quantile(fit.sims[:, 0], 1.0 - config.outside_quantile))  # REF's own far tail
    held = assign(s.held, centroids, top=1, device=config.device)
    new = assign(s.new, centroids, top=1, device=config.device)
    held_bins = np.where(held.sims[:, 0] >= limit, held.labels, k)
    new_bins = np.where(new.sims[:, 0] >= limit, new.labels, k)
    mass = mass_shift_test(held_bins, new_bins, k + 1, config.permutations, config.seed)
    m, n = len(held_bins), len(new_bins)
    rows = []
    for c in range(k):
        members = np.flatnonzero(fit.labels == c)
        near = members[np.argsort(-fit.sims[members, 0], kind="stable")[:3]]
        examples = [ref_ids[int(r)] for r in s.fit_rows[near]] if ref_ids is not None else []
        rows.append(ClusterShift(c, mass.ref_counts[c] / m, mass.new_counts[c] / n,
                                 mass.new_counts[c] / n - mass.ref_counts[c] / m, float(mass.bin_p[c]), examples))
    rows.sort(key=lambda r: (-r.shift, r.cluster))
    outside = np.flatnonzero(new_bins == k)
    far = outside[np.argsort(new.sims[outside, 0], kind="stable")[:5]]
    examples = [new_ids[int(r)] for r in s.new_rows[far]] if new_ids is not None else []
    appeared = ClusterShift("appeared", mass.ref_counts[k] / m, mass.new_counts[k] / n,
                            mass.new_counts[k] / n - mass.ref_counts[k] / m, float(mass.bin_p[k]), examples)
    return mass, rows, appeared


class Drift(Stage):
    """``curate drift`` on the runner: NEW is the workspace it runs on (and locks), REF ``config.reference``.

    Inputs: NEW's manifest, NEW's store and REF's store (the pair :func:`pair_stores` names, each opened
    and fingerprinted by the ``Store`` input) and REF's saved FAISS index when it matches its store. The
    output is the JSON report (``config.out``, else ``decisions/drift/<run-id>-report.json``), reused
    while the inputs and config are unchanged and that file is still there unchanged."""

    name = "drift"
    config_type = DriftConfig

    def validate(self, config: DriftConfig) -> None:
        if config.reference is None:
            raise CurateError("drift needs the reference workspace (--reference REF_WS)")
        if not 0 < config.alpha < 1 or not 0 < config.outside_quantile < 1 or config.permutations < 1:
            raise CurateError("alpha and outside_quantile must be in (0, 1), permutations at least 1")

    def check(self, ws: Workspace, config: DriftConfig) -> None:
        Workspace(config.reference).require_manifest()

    def settings(self, config: DriftConfig) -> dict:
        out = config_dict(config)
        out["reference"] = locate(config.reference).uri  # relative paths: from here
        out["out"] = None if config.out is None else locate(config.out).uri
        return out

    def inputs(self, config: DriftConfig) -> tuple:
        return (Manifest(), Store(), Store(option="reference_model", workspace="reference", key="reference_store"))

    def resolve(self, ws: Workspace, config: DriftConfig) -> Resolved:
        ref_ws = Workspace(config.reference)
        new_model, ref_model = pair_stores(ws, ref_ws, config.model, config.reference_model)
        got = super().resolve(ws, replace(config, model=new_model, reference_model=ref_model))
        ref = got.values["reference_store"]
        _comparable(got.store, ref)
        return replace(got, fingerprints={**got.fingerprints, "reference_index": _index_fingerprint(ref_ws, ref)})

    def is_current(self, ws: Workspace, meta: dict) -> bool:
        return file_is_current(meta)

    def compute(self, ctx: RunContext) -> Output:
        config, new, ref = ctx.config, ctx.inputs.store, ctx.inputs.values["reference_store"]
        ref_ws = Workspace(config.reference)
        index = _ref_index(ref_ws, ref, ref.slug, config.device)
        ctx.lap("index")
        with ctx.bar(total=len(TESTS), desc="drift", unit=" tests") as bar:
            def step(name: str) -> None:
                bar.set_postfix_str(name)
                bar.update(0 if name == "nn-distance" else 1)

            report = drift_arrays(new.vectors, new.valid, ref.vectors, ref.valid, config, new.ids, ref.ids, index,
                                  step)
            bar.update(bar.total - bar.n)
        ctx.lap("tests")
        report = replace(report, model=new.slug, new={"workspace": ctx.ws.root.uri, "model": new.slug, **report.new},
                         reference={"workspace": ref_ws.root.uri, "model": ref.slug, **report.reference},
                         config={k: v for k, v in report.config.items() if k not in ("reference", "out")})
        data = report.to_json().encode()
        dest = output_location(ctx.ws, config.out, ctx.run_id)
        atomic.write_bytes(dest, data)
        return Output(None, {**file_facts(dest, data), "drifted": report.drifted})


def output_location(ws: Workspace, out: str | None, run_id: str) -> Location:
    return locate(out) if out is not None else ws.decisions(Drift.name).join(f"{run_id}-report.json")


def run_drift(new_ws: Workspace, config: DriftConfig, **run: Any) -> StageResult:
    """Run (or reuse) the drift check of ``new_ws`` against ``config.reference``."""
    return run_stage(new_ws, Drift(), config, **run)


def read_report(result: StageResult) -> DriftReport:
    """The report a drift run wrote (``meta["out"]``)."""
    loc = locate(result.meta["out"])
    with loc.fs.open(loc.path, "rb") as fh:
        return DriftReport.from_dict(json.loads(fh.read()))


def drift(new_ws: Workspace, ref_ws: Workspace, config: DriftConfig = DriftConfig(), progress: bool = False,
          **run: Any) -> DriftReport:
    """Compare the embedding stores of two workspaces (same model): the drift stage on ``new_ws``."""
    return read_report(run_drift(new_ws, replace(config, reference=ref_ws.root.uri), progress=progress, **run))


def _store_meta(ws: Workspace, slug: str) -> dict:
    return atomic.read_json(store_dir(ws, slug).join("meta.json"))


def _precomputed(meta: dict) -> bool:
    return str(meta.get("model", "")).startswith("precomputed:")


def _comparable(new: StoredEmbeddings, ref: StoredEmbeddings) -> None:
    """A clear error when the two stores cannot be compared: other dimensions, or other models."""
    a, b = new.meta, ref.meta
    if a.get("dim") != b.get("dim"):
        raise CurateError(f"embeddings differ in dimension: NEW {new.slug} has {a.get('dim')}-d vectors, REF "
                          f"{ref.slug} {b.get('dim')}-d; drift needs both workspaces embedded the same way")
    if new.slug == ref.slug or _precomputed(a) or _precomputed(b):
        return

    def who(meta: dict) -> dict:
        return {k: v for k, v in (meta.get("identity") or {}).items() if k != "spec"}

    if who(a) != who(b):
        raise CurateError(f"NEW {new.slug} ({a.get('model')}) and REF {ref.slug} ({b.get('model')}) were embedded by "
                          "different models: their vectors are not comparable (embed both with the same model)")


def pair_stores(new_ws: Workspace, ref_ws: Workspace, model: str | None = None,
                reference_model: str | None = None) -> tuple[str | None, str]:
    """Which store of each workspace to compare: (NEW's, REF's) slug or model spec, for the two ``Store``
    inputs, which look them up (and open and fingerprint them).

    - ``reference_model`` names REF's store (``model`` NEW's, default NEW's only store): any two stores of
      the same dimension, unless both were embedded by models and the models differ;
    - ``model`` alone: that store in both; a precomputed one may pair with REF's only precomputed store;
    - neither: the one store both have; else, when each side has exactly one precomputed store (their
      slugs come from the file names, so they differ), those two.
    Stores of different dimensions are a clear error (checked once both are open).
    """
    new_stores, ref_stores = list_stores(new_ws), list_stores(ref_ws)
    have = f"NEW has {', '.join(new_stores) or 'none'}, REF has {', '.join(ref_stores) or 'none'}"
    if reference_model is not None:
        if model is None and len(new_stores) != 1:
            raise CurateError(f"pick NEW's embedding store with --model: {have}")
        return model, reference_model
    ref_pre = [s for s in ref_stores if _precomputed(_store_meta(ref_ws, s))]
    if model is not None:
        new_slug = choose_store(new_ws, model)
        spec = _store_meta(new_ws, new_slug).get("model")
        same = [s for s in ref_stores if s == new_slug] or [s for s in ref_stores
                                                             if _store_meta(ref_ws, s).get("model") == spec]
        if same:
            return new_slug, same[0]
        if str(spec).startswith("precomputed:") and len(ref_pre) == 1:
            return new_slug, ref_pre[0]
        raise CurateError(f"REF {ref_ws.root.uri} has no embeddings {model!r} (has: {', '.join(ref_stores) or 'none'};"
                          " both workspaces must use the same model, or name REF's store with --reference-model)")
    common = [s for s in new_stores if s in ref_stores]
    if len(common) == 1:
        return common[0], common[0]
    new_pre = [s for s in new_stores if _precomputed(_store_meta(new_ws, s))]
    if not common and len(new_pre) == 1 and len(ref_pre) == 1:
        return new_pre[0], ref_pre[0]
    raise CurateError(f"pick the embedding model with --model (and REF's store with --reference-model when its "
                      f"name differs): {have}")


def _index_fingerprint(ws: Workspace, store: StoredEmbeddings) -> str | None:
    """REF's saved FAISS index, when it matches its store (the nearest-neighbour test searches it)."""
    from curate.index.ann import index_dir

    loc = index_dir(ws, store.slug).join("index.json")
    if not loc.exists():
        return None
    meta = atomic.read_json(loc)
    return fingerprint(meta) if meta.get("store_fingerprint") == store.meta["fingerprint"] else None


def _ref_index(ws: Workspace, store: StoredEmbeddings, slug: str, device: str):
    """REF's saved FAISS index when it matches its store, else a fresh one; None without FAISS."""
    from curate.index.ann import build_index
    from curate.index.kmeans import import_faiss

    if import_faiss() is None:
        return None
    saved = store.saved_index(ws, device)
    return saved if saved is not None else build_index(store.vectors, store.valid, device=device)
