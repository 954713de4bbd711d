"""``curate audit``: score every item for wrong labels and junk, without removing anything by default.

Reads the manifest, the embedding store when there is one, the latest dedup run, ``--predictions``
and the review overrides. Writes ``decisions/audit/<run-id>.parquet``, one row per manifest id in
manifest order, with exactly these columns:

- ``id``, ``kept``, ``reason``: ``kept`` is True unless the item is quarantined (``reason``
  ``quarantined: <ingest reason>``; quarantined items are carried, never audited) or flagged by a check
  named in ``AuditConfig.drop`` (``reason`` = the first such check, so later stages say
  ``audit: blurry``). ``drop`` is empty by default: an audit removes nothing unless asked, and label
  issues are only dropped when ``label-issue`` is named.
- ``label_score`` (float, null without a label signal or a label), ``label_issue`` (bool),
  ``suggested_label`` (string, null when none): :mod:`curate.audit.labels`. The signal is, in order:
  ``--predictions`` (out-of-sample probabilities or logits, in the formats of ``select --predictions``;
  column ``i`` maps to a manifest label as :mod:`curate.audit.label_signal` says: ``--classes``, else
  integer labels by value, else the sorted distinct labels, the order of ``curate export``'s ``.cls``);
  ``--probe`` (the linear probe of ``select --probe``, cross-validated); the store's kNN graph
  (:func:`curate.audit.label_knn.knn_label_quality` on the ``k`` nearest neighbours); else none (nulls).
- ``issues``: list of the names of the checks that flagged the item (``score >= threshold``).
- one float score column per check that ran, in [0, 1], higher = worse, null = not judged: image checks
  (:data:`curate.audit.image_checks.IMAGE_CHECKS` and ``undecodable``) when the manifest has ok images,
  text checks (:data:`curate.audit.text_checks.TEXT_CHECKS`) when it has ok texts, ``outlier`` when there
  is a store or ok texts (texts: the higher of the kNN score and :mod:`curate.audit.text_outlier`),
  ``label-conflict`` (1: a near-duplicate group of the latest dedup run carries 2+ labels)
  when there is a dedup run; or exactly ``checks``.

Each image is fetched and decoded once (``workers`` threads). An image that cannot be read or decoded
scores 1 on ``undecodable`` and null on the other image checks; it never stops the run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from curate.audit.label_signal import class_names, label_codes
from curate.errors import CurateError
from curate.inputs import Manifest, Overrides, Store, Upstream, UserFile
from curate.runner import Output, RunContext, Stage, StageResult, config_dict, run_stage
from curate.workspace import Workspace

STAGE = "audit"
LABEL_ISSUE = "label-issue"  # droppable; its flag is the label_issue column
EMBEDDING_CHECKS = ("outlier",)
GROUP_CHECKS = ("label-conflict",)
MANIFEST_COLUMNS = ["id", "kind", "source", "source_kind", "offset", "length", "text", "label", "status", "reason"]
CHUNK = 256  # images fetched per batch handed to the checking processes


def image_checks() -> tuple[str, ...]:
    from curate.audit.image_checks import IMAGE_CHECKS

    return (*IMAGE_CHECKS, "undecodable")


def text_checks() -> tuple[str, ...]:
    from curate.audit.text_checks import TEXT_CHECKS

    return tuple(TEXT_CHECKS)


def all_checks() -> tuple[str, ...]:
    """Every check name, in column order."""
    return (*image_checks(), *text_checks(), *EMBEDDING_CHECKS, *GROUP_CHECKS)


def default_thresholds() -> dict[str, float]:
    """Flag threshold of every check (the check modules' defaults; ``label-conflict`` 0.5)."""
    from curate.audit.image_checks import ImageCheckConfig
    from curate.audit.text_checks import TextCheckConfig

    out: dict[str, float] = {}
    for config in (ImageCheckConfig(), TextCheckConfig()):
        for f in dataclasses.fields(config):
            value = getattr(config, f.name)
            if isinstance(value, float):
                out[f.name.replace("_", "-")] = value
    out["label-conflict"] = 0.5
    return out


@dataclass(frozen=True)
class AuditConfig:
    predictions: str | None = None  # out-of-sample probabilities/logits (formats of select --predictions)
    probe: bool = False  # no predictions: cross-validated linear probe on the store's embeddings
    classes: tuple[str, ...] = ()  # class name of each predictions column (default: see label_signal)
    k: int = 10  # neighbours for the kNN label signal and the outlier check
    model: str | None = None  # embedding store; default the only one (else the dedup run's)
    device: str = "auto"
    checks: tuple[str, ...] = ()  # checks to run; () = every one that applies
    drop: tuple[str, ...] = ()  # checks (or label-issue) whose flagged items get kept = False
    thresholds: tuple[tuple[str, float], ...] = ()  # (check, threshold) over the defaults
    languages: tuple[str, ...] = ()  # language check: expected ISO 639-1 codes (default: the majority)
    folds: int = 5  # --probe: cross-validation folds
    seed: int = 0
    workers: int = 2  # image decoding threads (speed only: not part of the run id)


def split_names(values: Any) -> tuple[str, ...]:
    """``("blurry,dark", "tiny")`` or ``"blurry, dark"`` -> ``("blurry", "dark", "tiny")``."""
    if values is None:
        return ()
    items = [values] if isinstance(values, str) else list(values)
    return tuple(dict.fromkeys(p.strip() for v in items for p in str(v).split(",") if p.strip()))


def parse_thresholds(values: Any) -> tuple[tuple[str, float], ...]:
    """``("blurry=0.5", ...)`` (CLI) or ``{blurry = 0.5}`` (TOML pairs) -> ``(("blurry", 0.5), ...)``."""
    out = []
    for v in values or ():
        if isinstance(v, (tuple, list)) and len(v) == 2:
            name, value = v
        else:
            name, sep, value = str(v).partition("=")
            if not sep:
                raise CurateError(f"--threshold takes CHECK=VALUE (e.g. blurry=0.5), not {v!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise CurateError(f"--threshold {name}: {value!r} is not a number") from None
        out.append((str(name).strip(), number))
    return tuple(out)


def validate(config: AuditConfig) -> None:
    """One-line errors for a config that cannot run (no workspace needed)."""
    known = all_checks()
    if config.predictions and config.probe:
        raise CurateError("give either --predictions or --probe, not both")
    if config.k < 1:
        raise CurateError(f"--k must be at least 1, not {config.k}")
    if config.folds < 2:
        raise CurateError(f"--folds must be at least 2, not {config.folds}")
    for name in config.checks:
        if name not in known:
            raise CurateError(f"unknown check {name!r} (checks: {', '.join(known)})")
    for name in config.drop:
        if name not in known and name != LABEL_ISSUE:
            raise CurateError(f"--drop {name!r} is not a check (choose from {', '.join(known)}, {LABEL_ISSUE})")
    defaults = default_thresholds()
    for name, value in parse_thresholds(config.thresholds):
        if name not in defaults:
            raise CurateError(f"--threshold {name!r}: no such check with a threshold "
                              f"(choose from {', '.join(defaults)})")
        if not 0.0 <= value <= 1.0:
            raise CurateError(f"--threshold {name}={value:g}: thresholds are scores in [0, 1]")


class Audit(Stage):
    """``curate audit`` on the runner."""

    name = STAGE
    config_type = AuditConfig

    def __init__(self) -> None:
        self._loaded: tuple | None = None  # (key, Predictions, class names): read once, in check()

    def validate(self, config: AuditConfig) -> None:
        validate(config)

    def settings(self, config: AuditConfig) -> dict:
        out = config_dict(config)
        out.pop("workers")
        out["thresholds"] = _thresholds(config)  # the defaults too: a changed default is a new run
        return out

    def inputs(self, config: AuditConfig) -> tuple:
        return (Manifest(), Store(prefer="dedup", need="always" if config.probe else "if-any"), Upstream(("dedup",)),
                UserFile("predictions"), Overrides())

    def check(self, ws: Workspace, config: AuditConfig) -> None:
        """Read and check ``--predictions`` (shape, ids, NaN, class mapping) before anything is touched."""
        if config.probe:
            from curate.embed.store import list_stores

            if not list_stores(ws):
                raise CurateError(f"--probe trains on embeddings: run `curate embed -w {ws.root.uri}` first")
        if config.predictions:
            self._predictions(ws, config)
        elif config.classes:
            manifest = ws.read_manifest(["label", "status"])
            ok = np.array([s == "ok" for s in manifest.column("status").to_pylist()], dtype=bool)
            class_names([lab for lab, good in zip(manifest.column("label").to_pylist(), ok) if good], None,
                        config.classes)

    def _predictions(self, ws: Workspace, config: AuditConfig):
        from curate.io.fs import locate
        from curate.select.predictions import load_predictions

        loc = locate(config.predictions)
        info = loc.fs.info(loc.path) if loc.exists() else {}
        key = (config.predictions, info.get("size"), info.get("mtime"), config.classes, ws.manifest_fingerprint())
        if self._loaded is None or self._loaded[0] != key:
            manifest = ws.read_manifest(["id", "label", "status"])
            ids = manifest.column("id").to_pylist()
            ok = np.array([s == "ok" for s in manifest.column("status").to_pylist()], dtype=bool)
            preds = load_predictions(config.predictions, ids, ok)
            if preds.probs.ndim != 2 or preds.probs.shape[1] < 2:
                raise CurateError(f"{config.predictions}: a label audit needs probabilities over 2+ classes, "
                                  f"got shape {preds.probs.shape}")
            labels = manifest.column("label").to_pylist()
            names = class_names([labels[r] for r in np.flatnonzero(ok)], preds.probs.shape[1], config.classes)
            self._loaded = (key, preds, names)
        return self._loaded[1], self._loaded[2]

    def compute(self, ctx: RunContext) -> Output:
        return _audit(ctx, self)


def audit(ws: Workspace, config: AuditConfig = AuditConfig(), **run: Any) -> StageResult:
    """Score every manifest id (see the module doc); reuse the run when inputs and config match."""
    return run_stage(ws, Audit(), config, **run)


# -- compute -----------------------------------------------------------------------------------------------------


def _audit(ctx: RunContext, stage: Audit) -> Output:
    ws, config, inputs = ctx.ws, ctx.config, ctx.inputs
    manifest = ws.read_manifest(MANIFEST_COLUMNS)
    n = manifest.num_rows
    ok = np.array([s == "ok" for s in manifest.column("status").to_pylist()], dtype=bool)
    kinds = np.array(manifest.column("kind").to_pylist(), dtype=object)
    labels = [lab if good else None for lab, good in zip(manifest.column("label").to_pylist(), ok)]
    store, dedup = inputs.store, inputs.runs.get("dedup")
    messages: list[str] = []
    wanted = _wanted(config, ok, kinds, store, dedup)
    scores: dict[str, np.ndarray] = {}
    facts: dict[str, Any] = {"model": store.slug if store is not None else None,
                             "upstream_runs": {"dedup": dedup.run_id} if dedup is not None else {}}

    image_rows = np.flatnonzero(ok & (kinds == "image"))
    if any(c in wanted for c in image_checks()):
        scores.update(_image_scores(manifest, image_rows, n, config.workers, ctx))
        facts["undecodable"] = int(np.nansum(scores["undecodable"]))
    ctx.lap("images")
    text_rows = np.flatnonzero(ok & (kinds == "text"))
    if any(c in wanted for c in text_checks()):
        scores.update(_text_scores(manifest, text_rows, n, config, [c for c in wanted if c in text_checks()],
                                   messages))
    ctx.lap("texts")

    graph = None  # the kNN graph: for outlier, and for the label votes when nothing better is given
    if store is not None and ("outlier" in wanted or not (config.predictions or config.probe)):
        from curate.audit.label_signal import neighbours

        srow = store.store_rows(n)
        rows = np.flatnonzero(ok & (srow >= 0))
        graph = neighbours(ws, store, rows, srow[rows], config.k, config.device)
        ctx.lap("neighbours")
    if "outlier" in wanted:
        others = bool((ok & (kinds != "text")).any())  # items only a store can judge
        scores["outlier"] = _outliers(manifest, graph, text_rows, others, messages)
    if "label-conflict" in wanted:
        scores["label-conflict"] = _conflicts(dedup, manifest, labels, ok, messages)

    label = _label_signal(ctx, stage, manifest, labels, ok, graph, messages)
    ctx.lap("labels")
    flags = _flags(scores, config)
    table = _table(manifest, ok, wanted, scores, flags, label, config.drop)
    facts.update({
        "checks": list(wanted), "flagged": {c: int(flags[c].sum()) for c in wanted},
        "thresholds": {c: t for c, t in _thresholds(config).items() if c in wanted},
        "label_source": label["source"], "classes": label["classes"][:1000], "label_issues": int(label["issue"].sum()),
        "labelled": int(np.isfinite(label["score"]).sum()), "audited": int(ok.sum()), "drop": list(config.drop),
        "messages": messages,
    })
    return Output(table, facts)


def _wanted(config: AuditConfig, ok: np.ndarray, kinds: np.ndarray, store, dedup) -> tuple[str, ...]:
    if config.checks:
        return tuple(c for c in all_checks() if c in config.checks)
    out: list[str] = []
    if (ok & (kinds == "image")).any():
        out += image_checks()
    if (ok & (kinds == "text")).any():
        out += text_checks()
    if store is not None or (ok & (kinds == "text")).any():  # texts: the character model needs no store
        out += EMBEDDING_CHECKS
    if dedup is not None:
        out += GROUP_CHECKS
    return tuple(out)


def _image_scores(manifest: pa.Table, rows: np.ndarray, n: int, workers: int, ctx: RunContext) -> dict:
    """Every image check's score (NaN off the image rows); each image fetched and decoded once."""
    from curate.audit.image_checks import MIN_POOLED, check_pool, image_check_scores
    from curate.embed.payloads import PayloadFetcher

    names = image_checks()
    out = {name: np.full(n, np.nan, dtype=np.float32) for name in names}
    cols = ["kind", "source", "source_kind", "offset", "length", "text"]
    fetcher = PayloadFetcher()
    pooled = workers if len(rows) >= MIN_POOLED else 1  # one pool of worker processes for the whole run
    try:
        with ctx.bar(total=len(rows), desc="audit images", unit=" images") as bar, check_pool(pooled) as pool:
            for lo in range(0, len(rows), CHUNK):
                part = rows[lo:lo + CHUNK]
                sub = manifest.select(cols).take(pa.array(part)).to_pylist()
                payloads = [_fetch(fetcher, row) for row in sub]
                got = image_check_scores(payloads, workers=1, pool=pool)
                for name in names:
                    out[name][part] = got[name]
                bar.update(len(part))
    finally:
        fetcher.close()
    return out


def _fetch(fetcher, row: dict) -> bytes | None:
    """The image's bytes, or None when they cannot be read (scored undecodable, not fatal)."""
    try:
        data = fetcher.fetch(row)
    except Exception:  # noqa: BLE001 - a missing or unreadable payload is an audit finding, not a crash
        return None
    return data if isinstance(data, (bytes, bytearray)) else None


def _text_scores(manifest: pa.Table, rows: np.ndarray, n: int, config: AuditConfig, wanted: list[str],
                 messages: list[str]) -> dict:
    from curate.audit.text_checks import TextCheckConfig, language_available, text_check_scores

    texts = manifest.column("text").take(pa.array(rows)).to_pylist() if len(rows) else []
    text_config = TextCheckConfig(languages=tuple(config.languages))
    got = text_check_scores(texts, text_config, checks=wanted) if len(rows) else {}
    if "language" in wanted and not language_available():
        messages.append("language: py3langid is not installed (pip install 'curate[audit]'): not judged")
    out = {}
    for name in wanted:
        column = np.full(n, np.nan, dtype=np.float32)
        if name in got:
            column[rows] = got[name]
        out[name] = column
    return out


def _outliers(manifest: pa.Table, graph, text_rows: np.ndarray, others: bool, messages: list[str]) -> np.ndarray:
    """kNN distance in the store (every kind) and, for texts, the higher of that and the character-model
    perplexity (:mod:`curate.audit.text_outlier`), which needs no store."""
    out = np.full(manifest.num_rows, np.nan, dtype=np.float32)
    if graph is not None:
        from curate.audit.outlier import outlier_scores

        out[graph.rows] = outlier_scores(graph.sims)
    if len(text_rows):
        from curate.audit.text_outlier import text_outlier_scores

        out[text_rows] = np.fmax(out[text_rows], text_outlier_scores(
            manifest.column("text").take(pa.array(text_rows)).to_pylist()))
    if graph is None and others:
        messages.append("outlier: no embedding store (run `curate embed`): only texts judged")
    return out


def _conflicts(dedup, manifest: pa.Table, labels: list, ok: np.ndarray, messages: list[str]) -> np.ndarray:
    """1 where a near-duplicate group of the dedup run carries 2+ labels, 0 for other labelled ok items."""
    from curate.audit.labels import conflicting_labels

    n = manifest.num_rows
    out = np.full(n, np.nan, dtype=np.float32)
    if dedup is None or "group" not in dedup.table.column_names:
        messages.append("label-conflict: no dedup run with groups (run `curate dedup`): not judged")
        return out
    if not dedup.table.column("id").equals(manifest.column("id")):
        raise CurateError(f"dedup run {dedup.run_id} was made for another manifest: rerun `curate dedup`")
    group = dedup.table.column("group").to_numpy(zero_copy_only=False)
    group = np.where(np.isnan(group.astype(np.float64)), -1, group).astype(np.int64)
    names = {lab: i for i, lab in enumerate(sorted({lab for lab in labels if lab is not None}))}
    codes = np.array([-1 if lab is None else names[lab] for lab in labels], dtype=np.int64)
    conflict = conflicting_labels(np.where(ok, group, -1), codes)
    out[ok & (codes >= 0)] = 0.0
    out[conflict] = 1.0
    return out


def _label_signal(ctx: RunContext, stage: Audit, manifest: pa.Table, labels: list, ok: np.ndarray, graph,
                  messages: list[str]) -> dict:
    """label_score / label_issue / suggested_label per manifest row, and where they came from."""
    from curate.audit.labels import LabelAuditError, label_quality

    config, n = ctx.config, manifest.num_rows
    score = np.full(n, np.nan)
    issue = np.zeros(n, dtype=bool)
    suggested = np.full(n, None, dtype=object)
    result = {"score": score, "issue": issue, "suggested": suggested, "source": None, "classes": []}
    if not any(lab is not None for lab in labels) and not config.predictions:
        messages.append("labels: no ok item has a label: no label audit")
        return result
    if config.predictions:
        preds, names = stage._predictions(ctx.ws, config)
        rows = preds.rows[ok[preds.rows]]
        probs = preds.probs[ok[preds.rows]]
        audit = label_quality(probs, label_codes([labels[r] for r in rows], names, np.ones(len(rows), bool)))
        source = "predictions"
    elif config.probe or graph is not None:
        store = ctx.inputs.store
        if store is None:
            raise CurateError("--probe needs an embedding store (run `curate embed`)")
        srow = store.store_rows(n)
        rows = np.flatnonzero(ok & (srow >= 0)) if graph is None else graph.rows
        names = class_names([labels[r] for r in rows], None, config.classes)
        y = label_codes([labels[r] for r in rows], names, np.ones(len(rows), bool))
        if len(names) < 2:
            messages.append(f"labels: {len(names)} class among the embedded items: no label audit")
            return result
        try:
            if config.probe:
                from curate.audit.label_signal import probe_probabilities

                x = store.gather(srow[rows])
                probs = probe_probabilities(x, y, len(names), config.folds, config.seed, config.device)
                audit, source = label_quality(probs, y), "probe"
            else:
                from curate.audit.label_knn import knn_label_quality

                audit = knn_label_quality(graph.ids, graph.sims, y, num_classes=len(names), k=config.k)
                source = "knn"
        except LabelAuditError as exc:
            messages.append(f"labels: {exc}: no label audit")
            return result
    else:
        messages.append("labels: no --predictions and no embedding store: no label audit")
        return result
    score[rows] = audit.label_score
    issue[rows] = audit.label_issue
    picked = audit.suggested_label
    suggested[rows] = np.array([names[c] if c >= 0 else None for c in picked], dtype=object)
    result.update(source=source, classes=list(names))
    return result


def _thresholds(config: AuditConfig) -> dict[str, float]:
    return {**default_thresholds(), **dict(parse_thresholds(config.thresholds))}


def _flags(scores: dict[str, np.ndarray], config: AuditConfig) -> dict[str, np.ndarray]:
    """``score >= threshold`` per check (null: not flagged), by the check modules' own ``flags``."""
    from curate.audit import image_checks as ic
    from curate.audit import text_checks as tc

    thresholds = _thresholds(config)

    def configured(cls):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k.replace("-", "_"): v for k, v in thresholds.items() if k.replace("-", "_") in names})

    image = {k: v for k, v in scores.items() if k in image_checks()}
    text = {k: v for k, v in scores.items() if k in text_checks()}
    out = {**ic.flags(image, configured(ic.ImageCheckConfig)), **tc.flags(text, configured(tc.TextCheckConfig))}
    for name in (*EMBEDDING_CHECKS, *GROUP_CHECKS):
        if name in scores:
            out[name] = np.nan_to_num(scores[name], nan=-1.0) >= thresholds[name]
    for name, values in scores.items():
        out.setdefault(name, np.zeros(len(values), dtype=bool))
    return out


def _table(manifest: pa.Table, ok: np.ndarray, wanted: tuple[str, ...], scores: dict, flags: dict, label: dict,
           drop: tuple[str, ...]) -> pa.Table:
    n = manifest.num_rows
    matrix = np.zeros((n, len(wanted)), dtype=bool)
    for j, name in enumerate(wanted):
        matrix[:, j] = flags[name] & ok
    rows, cols = np.nonzero(matrix)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
    issues = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.array(wanted, dtype=object)[cols].tolist()
                                                                   if len(cols) else [], pa.string()))
    reason = np.full(n, None, dtype=object)
    for name in reversed(drop):  # the first check of --drop that flagged an item names its reason
        hit = label["issue"] if name == LABEL_ISSUE else (flags[name] if name in flags else np.zeros(n, bool))
        reason[hit & ok] = name
    kept = ok & np.array([r is None for r in reason], dtype=bool)
    statuses = manifest.column("reason").to_pylist()
    for r in np.flatnonzero(~ok):
        reason[r] = f"quarantined: {statuses[r]}"
    columns = {
        "id": manifest.column("id"),
        "kept": pa.array(kept),
        "reason": pa.array(reason.tolist(), pa.string()),
        "label_score": pa.array(label["score"], pa.float64(), mask=~np.isfinite(label["score"])),
        "label_issue": pa.array(label["issue"]),
        "suggested_label": pa.array(label["suggested"].tolist(), pa.string()),
        "issues": issues,
    }
    for name in wanted:
        values = scores.get(name, np.full(n, np.nan, dtype=np.float32)).astype(np.float32)
        values[~ok] = np.nan
        columns[name] = pa.array(values, pa.float32(), mask=np.isnan(values))
    return pa.table(columns)
