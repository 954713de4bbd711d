"""Where the audit's label signal comes from: class names, out-of-sample probabilities, a kNN graph.

Class columns of ``--predictions`` map to manifest labels by one rule, checked before any work:

1. ``classes`` given (``--classes a,b,c``): column ``i`` is ``classes[i]``; it must list every label
   and have one name per column.
2. Every label is a plain non-negative integer below the number of columns (``"0"``, ``"7"``: class
   folders named by index): column ``i`` is label ``str(i)``, as ``curate select --predictions``
   names its columns.
3. Otherwise column ``i`` is the ``i``-th of the sorted distinct labels of the ok rows, as
   ``curate export`` numbers its ``.cls`` / ``label`` fields and ``select --probe`` its classes; the
   predictions must then have exactly that many columns (else a one-line error that asks for
   ``--classes``: a class missing from the data would shift every column after it).

Without predictions, ``--probe`` trains the linear probe of :mod:`curate.select.probe` in ``folds``
cross-validation folds (each labelled item is scored by a probe that never saw it; unlabelled items by
one trained on all), else the embedding store's kNN graph votes (:func:`knn_label_quality`); classes are
then the sorted distinct labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curate.errors import CurateError

FLAT_LIMIT = 200_000  # from this many embedded items on, neighbours come from a FAISS index


def _is_index(label: str) -> bool:
    return label.isdigit() and label.isascii() and str(int(label)) == label


def class_names(labels: list[str | None], num_classes: int | None, classes: tuple[str, ...] = (),
                what: str = "--predictions") -> list[str]:
    """The class name of each probability column (see the module doc); ``num_classes`` None: no predictions."""
    distinct = sorted({lab for lab in labels if lab is not None})
    if classes:
        names = [str(c) for c in classes]
        if len(set(names)) != len(names):
            raise CurateError("--classes names a class twice")
        if num_classes is not None and len(names) != num_classes:
            raise CurateError(f"--classes names {len(names)} classes, {what} has {num_classes} columns")
        missing = [lab for lab in distinct if lab not in set(names)]
        if missing:
            raise CurateError(f"label {missing[0]!r} is not in --classes ({len(missing)} labels are missing)")
        return names
    if num_classes is None:
        return distinct
    if distinct and all(_is_index(lab) for lab in distinct):
        top = max(int(lab) for lab in distinct)
        if top >= num_classes:
            raise CurateError(f"label {top} is out of range for {what} with {num_classes} columns")
        return [str(i) for i in range(num_classes)]
    if len(distinct) != num_classes:
        raise CurateError(f"{what} has {num_classes} columns but the manifest has {len(distinct)} distinct labels: "
                          "pass --classes NAME,... (the class of each column, in order)")
    return distinct


def label_codes(labels: list[str | None], names: list[str], usable: np.ndarray) -> np.ndarray:
    """Class index of each row's label (-1: no label, or the row is not ``usable``)."""
    index = {name: i for i, name in enumerate(names)}
    out = np.array([-1 if lab is None else index.get(lab, -1) for lab in labels], dtype=np.int64)
    out[~usable] = -1
    return out


@dataclass(frozen=True)
class Neighbours:
    """The ``k`` nearest other embedded items of each embedded item: positions into ``rows`` (-1: none)."""

    rows: np.ndarray  # manifest rows of the embedded items searched, increasing
    ids: np.ndarray  # [m, k] int64 positions into rows
    sims: np.ndarray  # [m, k] float32 cosine similarities (-inf: none)


def neighbours(ws, store, rows: np.ndarray, store_rows: np.ndarray, k: int, device: str) -> Neighbours:
    """Exact top-k (``topk_cosine``) for pools below :data:`FLAT_LIMIT`, else the store's FAISS index."""
    import torch

    m = len(rows)
    ids = np.full((m, k), -1, dtype=np.int64)
    sims = np.full((m, k), -np.inf, dtype=np.float32)
    kk = min(k, m - 1)
    if kk < 1:
        return Neighbours(rows, ids, sims)
    if m >= FLAT_LIMIT:
        from curate.index.ann import search
        from curate.select.mining import open_index

        index = open_index(ws, store.slug, store, m, device, flat_limit=FLAT_LIMIT)
        position = np.full(len(store.valid), -1, dtype=np.int64)
        position[store_rows] = np.arange(m)
        for lo in range(0, m, 16384):
            hi = min(m, lo + 16384)
            s, r = search(index, store.gather(store_rows[lo:hi]), kk + 1)
            pos = np.where(r >= 0, position[np.maximum(r, 0)], -1)
            s = np.where((pos >= 0) & (pos != np.arange(lo, hi)[:, None]), s, -np.inf)
            order = np.argsort(-s, axis=1, kind="stable")[:, :kk]
            s = np.take_along_axis(s, order, axis=1)
            sims[lo:hi, :kk] = s
            ids[lo:hi, :kk] = np.where(np.isfinite(s), np.take_along_axis(pos, order, axis=1), -1)
        return Neighbours(rows, ids, sims)
    from curate.device import resolve_device
    from curate.kernels.dispatch import topk_cosine

    dev = resolve_device(device)
    base = torch.from_numpy(store.gather(store_rows)).to(dev)
    for lo in range(0, m, 4096):
        hi = min(m, lo + 4096)
        s, i = topk_cosine(base[lo:hi], base, kk, exclude_self=True, offset=lo)
        sims[lo:hi, :kk] = s.cpu().numpy()
        ids[lo:hi, :kk] = i.cpu().numpy()
    return Neighbours(rows, ids, sims)


def probe_probabilities(x: np.ndarray, y: np.ndarray, num_classes: int, folds: int, seed: int,
                        device: str) -> np.ndarray:
    """Out-of-sample probabilities [n, C] from the linear probe: labelled rows (``y >= 0``) by
    ``folds``-fold cross-validation (seeded fold per item), unlabelled ones by a probe on all labels."""
    from curate.select.probe import ProbeConfig, predict_proba, train_probe

    labelled = np.flatnonzero(y >= 0)
    if len(labelled) < 2 * folds or len(np.unique(y[labelled])) < 2:
        raise CurateError(f"--probe needs at least {2 * folds} labelled items of 2+ classes with an embedding "
                          f"(found {len(labelled)})")
    config = ProbeConfig(seed=seed, device=device)
    fold = np.empty(len(labelled), dtype=np.int64)
    fold[np.random.default_rng(seed).permutation(len(labelled))] = np.arange(len(labelled)) % folds
    probs = np.zeros((len(y), num_classes), dtype=np.float32)
    for f in range(folds):
        train, test = labelled[fold != f], labelled[fold == f]
        probe = train_probe(x[train], y[train], num_classes, config, stats_from=x)
        probs[test] = predict_proba(probe, x[test], device)
    rest = np.flatnonzero(y < 0)
    if len(rest):
        probe = train_probe(x[labelled], y[labelled], num_classes, config, stats_from=x)
        probs[rest] = predict_proba(probe, x[rest], device)
    return probs
