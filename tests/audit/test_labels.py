"""Label audit: hand-computed confident learning, blocked == unblocked, kNN votes, conflicts, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from curate.audit.label_confident import calibrate, round_rows
from curate.audit.label_knn import knn_label_quality, neighbour_votes
from curate.audit.label_mixture import gap_cut, mixture_cut
from curate.audit.labels import LabelAuditError, conflicting_labels, label_quality
from curate.errors import CurateError

# 6 items x 3 classes; item 5 is labelled 2 but looks like class 0; item 6 has no label.
P6 = np.array(
    [
        [0.80, 0.10, 0.10],  # 0: counted (0, 0)
        [0.70, 0.20, 0.10],  # 0: 0.70 < t0 = 0.75, not counted
        [0.10, 0.80, 0.10],  # 1: counted (1, 1)
        [0.20, 0.70, 0.10],  # 1: not counted
        [0.10, 0.10, 0.80],  # 2: counted (2, 2)
        [0.90, 0.05, 0.05],  # 2: counted (2, 0): 0.90 >= t0
        [0.30, 0.30, 0.40],  # unlabelled
    ]
)
Y6 = np.array([0, 0, 1, 1, 2, 2, -1])


def test_hand_computed_confident_learning():
    audit = label_quality(P6, Y6, flag_by="confident_learning")
    # thresholds: mean self-confidence per class: (0.8+0.7)/2, (0.8+0.7)/2, (0.8+0.05)/2
    np.testing.assert_allclose(audit.class_thresholds, [0.75, 0.75, 0.425])
    # raw joint [[1,0,0],[0,1,0],[1,0,1]], rows scaled to 2 items each
    np.testing.assert_array_equal(audit.confident_joint, [[2, 0, 0], [0, 2, 0], [1, 0, 1]])
    # cell (2, 0) takes 1 item labelled 2 with the largest p0 - p2: item 5 (0.85 against -0.7)
    np.testing.assert_array_equal(audit.label_issue, [False] * 5 + [True, False])
    expected = [0.8 / 0.9, 0.7 / 0.9, 0.8 / 0.9, 0.7 / 0.9, 0.8 / 0.9, 0.05 / 0.95, math.nan]
    np.testing.assert_allclose(audit.label_score, expected)
    np.testing.assert_array_equal(audit.suggested_label, [0, 0, 1, 1, 2, 0, 2])
    assert audit.num_issues == 1
    assert math.isnan(audit.score_cutoff)  # one disagreeing item: no mixture
    assert not audit.label_score.flags.writeable
    union = label_quality(P6, Y6)
    np.testing.assert_array_equal(union.label_issue, audit.label_issue)


def test_unlabelled_items_get_null_score_and_never_a_flag():
    labels = np.full(7, -1)
    labels[0] = 0
    audit = label_quality(P6, labels)
    assert np.isnan(audit.label_score[1:]).all() and not audit.label_issue.any()
    # unlabelled rows do not move the thresholds
    assert label_quality(P6, Y6).class_thresholds[2] == pytest.approx(0.425)


def test_round_rows_and_calibrate_by_hand():
    # 1.6 + 2.7 + 0.7 = 5 but rounds to 6: the smallest remainder (1.6 -> 2, -0.4) gives one back
    np.testing.assert_array_equal(round_rows(np.array([[1.6, 2.7, 0.7]])), [[1, 3, 1]])
    np.testing.assert_array_equal(calibrate(np.array([[3, 1], [0, 2]]), np.array([8, 4])), [[6, 2], [0, 4]])
    # an empty diagonal is raised to 1 (cleanlab does it before calibrating)
    np.testing.assert_array_equal(calibrate(np.array([[0, 2], [0, 2]]), np.array([3, 2])), [[1, 2], [0, 2]])


def _noisy_set(n=400, k=5, seed=0, logits=False):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    z = rng.normal(0, 1.0, (n, k))
    z[np.arange(n), truth] += rng.uniform(0.5, 4.0, n)
    labels = truth.copy()
    flip = rng.random(n) < 0.2
    labels[flip] = (truth[flip] + rng.integers(1, k, flip.sum())) % k
    labels[rng.random(n) < 0.05] = -1
    if logits:
        return z, labels
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True), labels


def _brute_force_cl(p, labels):
    """The confident learning loops, one item at a time (cleanlab's docstring version)."""
    n, k = p.shape
    lab = labels >= 0
    thr = np.array([p[labels == j, j].mean() if (labels == j).any() else 2.0 for j in range(k)])
    joint = np.zeros((k, k))
    for r in np.flatnonzero(lab):
        conf = p[r] >= thr - 1e-6
        if conf.sum() == 1:
            joint[labels[r], np.argmax(conf)] += 1
        elif conf.sum() > 1:
            joint[labels[r], np.argmax(p[r])] += 1
    cal = calibrate(joint, np.bincount(labels[lab], minlength=k))
    issue = np.zeros(n, dtype=bool)
    for i in range(k):
        rows = np.flatnonzero(labels == i)
        for j in range(k):
            if j != i and cal[i, j] > 0 and rows.size > 1:
                margin = p[rows, j] - p[rows, i]
                issue[rows[np.argsort(-margin, kind="stable")[: cal[i, j]]]] = True
    for r in range(n):
        others = np.delete(p[r], labels[r]) if labels[r] >= 0 else p[r]
        if labels[r] < 0 or p[r, labels[r]] + 1e-6 >= others.max():
            issue[r] = False
    return thr, cal, issue


def test_confident_learning_matches_brute_force():
    p, labels = _noisy_set()
    thr, cal, issue = _brute_force_cl(p, labels)
    audit = label_quality(p, labels, flag_by="confident_learning")
    np.testing.assert_allclose(audit.class_thresholds, thr)
    np.testing.assert_array_equal(audit.confident_joint, cal)
    np.testing.assert_array_equal(audit.label_issue, issue)
    assert 0 < issue.sum() < 200


@pytest.mark.parametrize("logits", [False, True])
def test_blocked_equals_unblocked(logits):
    x, labels = _noisy_set(n=600, k=6, seed=1, logits=logits)
    x = x.astype(np.float32)
    whole = label_quality(x, labels, block_rows=10_000)
    for rows in (1, 7, 64):
        part = label_quality(x, labels, block_rows=rows)
        for field in ("label_score", "label_issue", "suggested_label", "class_thresholds", "confident_joint"):
            np.testing.assert_array_equal(getattr(part, field), getattr(whole, field), err_msg=field)
        assert part.score_cutoff == whole.score_cutoff or (
            math.isnan(part.score_cutoff) and math.isnan(whole.score_cutoff)
        )


def test_logits_are_softmaxed():
    z, labels = _noisy_set(logits=True)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    auto, forced, probs = label_quality(z, labels), label_quality(z, labels, logits=True), label_quality(p, labels)
    np.testing.assert_array_equal(auto.label_issue, forced.label_issue)
    np.testing.assert_array_equal(auto.label_issue, probs.label_issue)
    np.testing.assert_allclose(auto.label_score, probs.label_score, rtol=1e-9)


def test_mixture_cut_separates_model_errors_from_label_errors():
    rng = np.random.default_rng(0)
    model_errors, label_errors = rng.exponential(1.0, 3000), rng.normal(5.0, 1.0, 600)
    cut = mixture_cut(np.concatenate([model_errors, label_errors]))
    assert 2.0 < cut < 4.0
    assert (label_errors >= cut).mean() > 0.9 and (model_errors >= cut).mean() < 0.05
    assert mixture_cut(rng.exponential(1.0, 3000)) == math.inf  # no label noise: nothing flagged
    assert mixture_cut(np.array([1.0, 2.0])) == math.inf  # too few
    assert gap_cut(lam=1.0, mu=0.5, sd=1.0, w=0.5) == math.inf  # the normal is left of the exponential's mean


def test_union_flags_confident_learning_and_mixture():
    p, labels = _noisy_set(n=2000, k=4, seed=3)
    cl = label_quality(p, labels, flag_by="confident_learning").label_issue
    mix = label_quality(p, labels, flag_by="mixture")
    union = label_quality(p, labels).label_issue
    np.testing.assert_array_equal(union, cl | mix.label_issue)
    assert mix.label_issue.any()
    assert (mix.label_score[mix.label_issue] <= mix.score_cutoff + 1e-12).all()


def test_neighbour_votes_match_a_loop():
    rng = np.random.default_rng(2)
    n, m, classes = 40, 6, 3
    ids = rng.integers(-1, n, (n, m))
    ids[:, 0] = np.arange(n)  # each item finds itself first
    sims = rng.uniform(-0.2, 1.0, (n, m))
    sims[rng.random((n, m)) < 0.1] = np.nan
    labels = rng.integers(-1, classes, n)
    for k in (None, 3):
        votes, voters = neighbour_votes(ids, sims, np.arange(n), labels, classes, k)
        for r in range(n):
            ok = [c for c in range(m) if ids[r, c] >= 0 and ids[r, c] != r and np.isfinite(sims[r, c])]
            ok = [c for c in ok if labels[ids[r, c]] >= 0]
            if k is not None:
                ok = sorted(ok, key=lambda c: -sims[r, c])[:k]
            expect = np.zeros(classes)
            for c in ok:
                expect[labels[ids[r, c]]] += max(sims[r, c], 0.0)
            np.testing.assert_allclose(votes[r], expect, err_msg=f"row {r} k={k}")
            assert voters[r] == len(ok)


def test_knn_label_quality_flags_the_odd_one_out():
    # two tight groups of 8; item 3 sits in group A but is labelled B; item 16 has no neighbours
    n = 17
    labels = np.array([0] * 8 + [1] * 8 + [0])
    labels[3] = 1
    group = np.array([0] * 8 + [1] * 8)
    ids = np.full((n, 8), -1)
    sims = np.full((n, 8), -np.inf)
    for r in range(16):
        mates = [j for j in range(16) if group[j] == group[r]]
        ids[r] = mates
        sims[r] = 0.9
    audit = knn_label_quality(ids, sims, labels)
    assert audit.label_issue[3] and audit.label_issue.sum() == 1
    assert audit.suggested_label[3] == 0 and audit.suggested_label[16] == -1
    assert np.isnan(audit.label_score[16]) and not audit.label_issue[16]
    assert audit.label_score[3] < 0.2 < audit.label_score[0]
    blocked = knn_label_quality(ids, sims, labels, block_rows=3)
    np.testing.assert_array_equal(blocked.label_score, audit.label_score)
    np.testing.assert_array_equal(blocked.label_issue, audit.label_issue)


def test_conflicting_labels_by_hand():
    groups = np.array([0, 0, 1, 1, 1, -1, 2, 2, 7, 7])
    labels = np.array([3, 3, 1, 2, -1, 5, 4, -1, 0, 1])
    expected = [False, False, True, True, False, False, False, False, True, True]
    np.testing.assert_array_equal(conflicting_labels(groups, labels), expected)
    assert not conflicting_labels(np.array([], dtype=int), np.array([], dtype=int)).any()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: label_quality(np.ones(3), np.zeros(3, int)), "2-D"),
        (lambda: label_quality(np.ones((3, 1)), np.zeros(3, int)), "at least 2 classes"),
        (lambda: label_quality(P6, Y6[:5]), "one entry per item"),
        (lambda: label_quality(P6, Y6.astype(float)), "integer"),
        (lambda: label_quality(P6, np.where(Y6 == 2, 3, Y6)), "labels[4] = 3 is out of range"),
        (lambda: label_quality(P6, np.where(Y6 == 2, -2, Y6)), "out of range"),
        (lambda: label_quality(np.where(P6 == 0.2, np.nan, P6), Y6), "NaN"),
        (lambda: label_quality(P6 * 2, Y6, logits=False), "row 0 is not a probability vector"),
        (lambda: label_quality(P6, Y6, flag_by="vote"), "flag_by"),
        (lambda: knn_label_quality(np.zeros((3, 2), int), np.zeros((3, 3)), [0, 1, 0]), "one shape"),
        (lambda: knn_label_quality(np.full((3, 2), 5), np.zeros((3, 2)), [0, 1, 0]), "not an item position"),
        (lambda: knn_label_quality(np.zeros((3, 2), int), np.zeros((3, 2)), [0, 0, 0]), "at least 2 classes"),
        (lambda: conflicting_labels(np.zeros((2, 2), int), [0, 1]), "1-D"),
        (lambda: conflicting_labels([0, 1], [0]), "one entry per item"),
    ],
)
def test_bad_input_is_a_one_line_value_error(call, message):
    with pytest.raises(LabelAuditError) as info:
        call()
    assert isinstance(info.value, ValueError) and isinstance(info.value, CurateError)
    assert message in str(info.value) and "\n" not in str(info.value)
