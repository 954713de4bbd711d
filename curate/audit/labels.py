"""Label errors from out-of-sample predictions: a score per item, a flag, and the label the model suggests.

Input: ``pred_probs`` [n, k], out-of-sample probabilities (cross-validated, or from a model that
never saw the item), or logits (softmaxed per row: ``logits=True``, or found when the first block's
rows are not probabilities), and ``labels`` [n] (-1 = no label: null score, never flagged).

- ``label_score`` = ``p(given) / (p(given) + max over other classes p)`` (probabilities clipped at
  1e-12): the model's odds for the given label against its best alternative, in [0, 1]; 1/2 where
  the two tie. Higher = the given label is more likely right. On the three CIFAR-10 benchmark sets it
  ranks wrong labels above cleanlab's self-confidence and normalized margin (AUROC and AUPRC).
- ``label_issue`` (``flag_by="union"``) = confident learning (``label_confident``: calibrated
  confident joint, prune by noise rate, as cleanlab's ``find_label_issues`` default) OR the
  score-gap mixture (``label_mixture``: items whose odds against the given label are past the point
  where label errors outnumber model errors). Confident learning alone misses label errors the model
  is not sure of (human label noise on ambiguous items); the mixture alone can miss errors where the
  model is unsure. ``"confident_learning"`` and ``"mixture"`` give either part alone.
- ``suggested_label`` = the argmax class (-1 where there is no prediction).

Everything runs in row blocks: three passes over ``pred_probs`` (a ``np.memmap`` works) with O(n)
per-item arrays and O(block_rows * k) scratch; results do not depend on ``block_rows``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from curate.audit.label_confident import calibrate, class_thresholds, joint_block, prune_by_noise_rate
from curate.audit.label_mixture import mixture_cut
from curate.errors import CurateError

FLAG_BY = ("union", "confident_learning", "mixture")
FLOOR = 1e-12  # probabilities are clipped here for the score (the odds stay finite)
SUM_TOL = 1e-2  # a probability row must sum to 1 within this


class LabelAuditError(CurateError, ValueError):
    """Bad input to a label audit (shape, NaN, label out of range): a one-line message."""


@dataclass(frozen=True)
class LabelAudit:
    """Per-item label audit (read-only arrays, one entry per item)."""

    label_score: np.ndarray  # float64 in [0, 1]; NaN = unlabelled or not judged
    label_issue: np.ndarray  # bool; never True where label_score is NaN
    suggested_label: np.ndarray  # int64 class id; -1 = no prediction
    class_thresholds: np.ndarray  # float64 [k]: mean self-confidence per class (2 = no item)
    confident_joint: np.ndarray  # int64 [k, k] calibrated: rows given label, columns estimated true label
    score_cutoff: float  # the mixture flags label_score <= this; NaN when it flags nothing

    @property
    def num_issues(self) -> int:
        return int(self.label_issue.sum())


def auto_block_rows(k: int) -> int:
    """About 4M probabilities per block."""
    return int(min(max((1 << 22) // max(k, 1), 1024), 262_144))


def check_labels(labels, n: int, k: int | None, name: str = "labels") -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise LabelAuditError(f"{name} must be 1-D with one entry per item ({n}), got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise LabelAuditError(f"{name} must be integer class ids (-1 = unlabelled), got {labels.dtype}")
    labels = labels.astype(np.int64, copy=False)
    bad = (labels < -1) if k is None else ((labels < -1) | (labels >= k))
    if bad.any():
        row = int(np.argmax(bad))
        allowed = "-1 or >= 0" if k is None else f"-1 or 0..{k - 1}"
        raise LabelAuditError(f"{name}[{row}] = {labels[row]} is out of range (allowed: {allowed})")
    return labels


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def _looks_like_probs(x: np.ndarray) -> bool:
    return x.size == 0 or (x.min() >= -1e-6 and np.abs(x.sum(axis=1) - 1).max() <= SUM_TOL)


def label_quality(
    pred_probs, labels, *, logits: bool | None = None, flag_by: str = "union", block_rows: int | None = None
) -> LabelAudit:
    """Audit ``labels`` against out-of-sample ``pred_probs`` [n, k] (or logits); see the module doc."""
    if not isinstance(pred_probs, np.ndarray):
        pred_probs = np.asarray(pred_probs)
    if pred_probs.ndim != 2:
        raise LabelAuditError(f"pred_probs must be 2-D [items, classes], got shape {pred_probs.shape}")
    n, k = pred_probs.shape
    if k < 2:
        raise LabelAuditError(f"pred_probs needs at least 2 classes, got {k}")
    if not (np.issubdtype(pred_probs.dtype, np.floating) or np.issubdtype(pred_probs.dtype, np.integer)):
        raise LabelAuditError(f"pred_probs must be numeric, got {pred_probs.dtype}")
    labels = check_labels(labels, n, k)
    rows = block_rows or auto_block_rows(k)
    float_type = np.float32 if pred_probs.dtype in (np.float16, np.float32) else np.float64
    mode = {"logits": logits, "checked": 0}  # rows before "checked" were validated (pass 1 reads them first)

    def to_probs(raw: np.ndarray, first_row: int, check: bool) -> np.ndarray:
        x = np.asarray(raw, dtype=float_type)
        if mode["logits"] and not check:
            return _softmax(x)
        if not check:
            return x
        if not np.isfinite(x).all():
            bad = int(np.argmax(~np.isfinite(x).all(axis=1)))
            raise LabelAuditError(f"pred_probs has NaN or infinite values (row {first_row + bad})")
        if mode["logits"] is None:
            mode["logits"] = not _looks_like_probs(x)
        if mode["logits"]:
            return _softmax(x)  # a new array: the caller's is never written
        if not _looks_like_probs(x):
            bad = int(np.argmax((x.min(axis=1) < -1e-6) | (np.abs(x.sum(axis=1) - 1) > SUM_TOL)))
            raise LabelAuditError(
                f"pred_probs row {first_row + bad} is not a probability vector (sum {x[bad].sum():.4g}, "
                f"min {x[bad].min():.4g}); pass logits=True for raw model outputs"
            )
        return x

    def block(a: int, b: int) -> np.ndarray:
        out = to_probs(pred_probs[a:b], a, check=b > mode["checked"])
        mode["checked"] = max(mode["checked"], b)
        return out

    def take(idx: np.ndarray) -> np.ndarray:
        return to_probs(pred_probs[idx], 0, check=False)

    return audit_blocks(n, k, block, take, labels, flag_by=flag_by, block_rows=rows)


def audit_blocks(
    n: int,
    k: int,
    block: Callable[[int, int], np.ndarray],
    take: Callable[[np.ndarray], np.ndarray],
    labels: np.ndarray,
    *,
    flag_by: str = "union",
    block_rows: int = 16384,
    judged: np.ndarray | None = None,
) -> LabelAudit:
    """The audit over probability blocks (``block(a, b)``, ``take(rows)``); ``judged=False`` rows get no prediction."""
    if flag_by not in FLAG_BY:
        raise LabelAuditError(f"flag_by must be one of {', '.join(FLAG_BY)}, not {flag_by!r}")
    if block_rows < 1:
        raise LabelAuditError(f"block_rows must be at least 1, got {block_rows}")
    self_conf, other = np.zeros(n), np.zeros(n)
    argmax = np.zeros(n, dtype=np.int64)
    spans = [(a, min(a + block_rows, n)) for a in range(0, n, block_rows)]
    for a, b in spans:  # pass 1: per-item numbers
        p = block(a, b)
        argmax[a:b] = p.argmax(axis=1)
        r = np.flatnonzero(labels[a:b] >= 0)
        given = labels[a:b][r]
        mine = p[r, given]
        rest = p[r]
        rest[np.arange(r.size), given] = -np.inf
        self_conf[a + r] = mine
        other[a + r] = rest.max(axis=1)
    thresholds = class_thresholds(labels, self_conf, k)
    joint = np.zeros(k * k, dtype=np.int64)
    for a, b in spans:  # pass 2: the confident joint
        joint += joint_block(block(a, b), labels[a:b], argmax[a:b], thresholds)
    lab = labels >= 0
    cal = calibrate(joint.reshape(k, k), np.bincount(labels[lab], minlength=k))
    agrees = self_conf + 1e-6 >= other
    issue = np.zeros(n, dtype=bool)
    if flag_by != "mixture" and lab.any():  # pass 3: prune by noise rate
        issue |= prune_by_noise_rate(take, labels, cal, agrees, block_rows)
    mine, theirs = np.maximum(self_conf, FLOOR), np.maximum(other, FLOOR)
    gap = np.log(theirs) - np.log(mine)
    cut = math.inf
    if flag_by != "confident_learning":
        cut = mixture_cut(gap[lab & (gap > 0)])
        issue |= lab & (gap > 0) & (gap >= cut)
    score = np.where(lab, mine / (mine + theirs), np.nan)
    issue &= lab
    if judged is not None:
        argmax[~judged] = -1
    out = LabelAudit(
        label_score=score,
        label_issue=issue,
        suggested_label=argmax,
        class_thresholds=thresholds,
        confident_joint=cal,
        score_cutoff=1.0 / (1.0 + math.exp(cut)) if math.isfinite(cut) else math.nan,
    )
    for arr in (score, issue, argmax, thresholds, cal):
        arr.flags.writeable = False
    return out


def conflicting_labels(group_ids, labels) -> np.ndarray:
    """True for each labelled item of a group (id >= 0; -1 = no group) whose labelled items carry 2+ labels."""
    group_ids = np.asarray(group_ids)
    if group_ids.ndim != 1:
        raise LabelAuditError(f"group_ids must be 1-D, got shape {group_ids.shape}")
    if group_ids.size and not np.issubdtype(group_ids.dtype, np.integer):
        raise LabelAuditError(f"group_ids must be integers (-1 = no group), got {group_ids.dtype}")
    labels = check_labels(labels, group_ids.shape[0], None)
    member = (group_ids >= 0) & (labels >= 0)
    groups, inverse = np.unique(group_ids[member], return_inverse=True)
    pairs = np.unique(np.stack([inverse, labels[member]]), axis=1)
    distinct = np.bincount(pairs[0], minlength=groups.size)
    out = np.zeros(group_ids.shape[0], dtype=bool)
    out[member] = distinct[inverse] > 1
    return out
