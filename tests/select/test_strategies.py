"""Selection strategies on tiny arrays, against hand-computed or brute-force expectations."""

import numpy as np
import pytest

from curate.select import registry
from curate.select.cluster_margin import cluster_margin, round_robin
from curate.select.hybrid import hybrid, max_similarity
from curate.select.probe import ProbeConfig, predict_proba, train_probe
from curate.select.typiclust import typiclust
from curate.select.uncertainty import bald, entropy, least_confidence, margin, top_scores

PROBS = np.array([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05], [1 / 3, 1 / 3, 1 / 3], [0.4, 0.4, 0.2]])


def unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def angle(deg, d=3):
    v = np.zeros(d, dtype=np.float32)
    v[0], v[1] = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return v


def test_least_confidence_margin_entropy_by_hand():
    np.testing.assert_allclose(least_confidence(PROBS, "cpu"), [0.5, 0.1, 2 / 3, 0.6], atol=1e-12)
    np.testing.assert_allclose(margin(PROBS, "cpu"), [0.8, 0.15, 1.0, 1.0], atol=1e-12)
    # -sum p ln p: 0.5 ln2 + 0.3 ln(10/3) + 0.2 ln5, ...
    np.testing.assert_allclose(entropy(PROBS, "cpu"), [1.0296530, 0.3943977, 1.0986123, 1.0549202], atol=1e-6)


@pytest.mark.parametrize("name,expected", [
    ("least-confidence", [2, 3]),  # 2/3, 0.6
    ("margin", [2, 3]),  # both gaps 0: tie goes to the smaller row
    ("entropy", [2, 3]),
])
def test_uncertainty_strategies_take_the_top_candidates(name, expected):
    pool = registry.Pool(np.ones(4, bool), np.zeros(4, bool), probs=PROBS)
    picks, scores = registry.get(name).fn(pool, 2, np.random.default_rng(0), registry.Options(device="cpu"))
    assert picks.tolist() == expected
    # a labeled / non-candidate row is never picked, whatever its score
    pool = registry.Pool(np.array([True, True, False, True]), np.array([False, False, True, False]), probs=PROBS)
    picks, _ = registry.get(name).fn(pool, 2, np.random.default_rng(0), registry.Options(device="cpu"))
    assert 2 not in picks.tolist() and picks[0] == 3


def test_bald_by_hand_on_a_2x2x2_tensor():
    # item 0: two confident samples that disagree -> H(mean) = ln 2, mean H = 0 -> BALD = ln 2
    # item 1: two samples that are both 50/50 -> H(mean) = ln 2 = mean H -> BALD = 0
    mc = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.5], [0.5, 0.5]]])
    np.testing.assert_allclose(bald(mc, "cpu"), [np.log(2), 0.0], atol=1e-9)
    pool = registry.Pool(np.ones(2, bool), np.zeros(2, bool), probs=mc.mean(1), mc=mc)
    picks, scores = registry.get("bald").fn(pool, 1, np.random.default_rng(0), registry.Options(device="cpu"))
    assert picks.tolist() == [0] and scores[0] == pytest.approx(np.log(2))


def test_top_scores_is_a_stable_descending_order():
    scores = np.array([0.1, 0.5, 0.5, 0.9, 0.2])
    assert top_scores(scores, np.array([1, 1, 1, 0, 1], bool), 3).tolist() == [1, 2, 4]


def test_random_is_seeded_and_only_picks_candidates():
    cand = np.arange(50) % 3 != 0
    pool = registry.Pool(cand, ~cand)
    a, _ = registry.get("random").fn(pool, 10, np.random.default_rng(5), registry.Options())
    b, _ = registry.get("random").fn(pool, 10, np.random.default_rng(5), registry.Options())
    assert a.tolist() == b.tolist() and cand[a].all() and len(set(a.tolist())) == 10


def planted_clusters(sizes, d=8, noise=0.15, seed=0):
    """Clusters around orthogonal directions; the first row of each is exactly its centre (the densest point)."""
    rng = np.random.default_rng(seed)
    rows, centres = [], []
    for c, size in enumerate(sizes):
        centre = np.zeros(d, dtype=np.float32)
        centre[c] = 1.0
        centres.append(len(rows))
        rows.append(centre)
        rows.extend(centre + rng.normal(scale=noise, size=(size - 1, d)))
    return unit(np.array(rows)), np.array(centres)


def test_typiclust_picks_the_planted_dense_point_of_each_cluster_largest_first():
    x, centres = planted_clusters([20, 40, 30])
    n = len(x)
    picks, scores = typiclust(x, np.ones(n, bool), np.zeros(n, bool), 3, np.random.default_rng(0), knn=10,
                              device="cpu")
    assert picks.tolist() == [centres[1], centres[2], centres[0]]  # uncovered clusters, largest first
    assert (scores > 0).all()


def test_typiclust_skips_clusters_covered_by_labeled_items():
    x, centres = planted_clusters([20, 40, 30], seed=1)
    labeled = np.zeros(len(x), bool)
    labeled[centres[1] + 1] = True  # one labeled item in the largest cluster
    picks, _ = typiclust(x, ~labeled, labeled, 2, np.random.default_rng(0), knn=10, device="cpu")
    assert picks.tolist() == [centres[2], centres[0]]


def test_typiclust_caps_cluster_size_by_sampling():
    x, centres = planted_clusters([200, 150], seed=2)
    picks, _ = typiclust(x, np.ones(len(x), bool), np.zeros(len(x), bool), 2, np.random.default_rng(0), knn=10,
                         cap=50, device="cpu")
    assert len(set(picks.tolist())) == 2
    labels = (np.arange(len(x)) >= 200).astype(int)
    assert sorted(labels[picks].tolist()) == [0, 1]  # one from each cluster


def test_cluster_margin_round_robin_smallest_cluster_first():
    # clusters: A(0) rows 0-3, B(1) rows 4-5, C(2) row 6; uncertainty = 1 - margin
    u = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.95, 0.1])
    clusters = np.array([0, 0, 0, 0, 1, 1, 2])
    rows = np.arange(7)
    # sizes C=1 < B=2 < A=4; each visit takes the cluster's most uncertain remaining row
    assert round_robin(rows, u, clusters, 7).tolist() == [6, 5, 0, 4, 1, 2, 3]
    picks, scores = cluster_margin(u, clusters, np.ones(7, bool), 4, preselect=10)
    assert picks.tolist() == [6, 5, 0, 4]
    np.testing.assert_allclose(scores, u[[6, 5, 0, 4]])
    # preselect 2 x budget 2 = the 4 most uncertain: rows 5, 0, 1, 2 -> B{5} (1) before A{0,1,2} (3)
    assert cluster_margin(u, clusters, np.ones(7, bool), 2, preselect=2)[0].tolist() == [5, 0]


def test_hybrid_is_dedup_aware_on_planted_near_duplicates():
    # L is labeled; a duplicates L (5 deg, cos 0.996); b and b2 duplicate each other (2 deg).
    names = ["L", "a", "b", "b2", "c", "d", "e"]
    x = unit([angle(0), angle(5), angle(90), angle(92), angle(45), angle(180), angle(135)])
    u = np.array([0.0, 0.99, 0.95, 0.97, 0.3, 0.4, 0.5])
    labeled = np.array([True] + [False] * 6)
    picks, _ = hybrid(x, u, ~labeled, labeled, 4, preselect=10, dup_threshold=0.9, device="cpu")
    got = [names[p] for p in picks]
    assert "a" not in got  # near-duplicate of a labeled item
    assert not {"b", "b2"} <= set(got)  # never both near-duplicates in one batch
    assert got[0] == "b2"  # the more uncertain of the pair, and far from L
    # without the check the duplicate of the labeled item is fair game (u x d is still > 0)
    loose, _ = hybrid(x, u, ~labeled, labeled, 6, preselect=10, dup_threshold=None, device="cpu")
    assert "a" in [names[p] for p in loose]


def test_hybrid_never_picks_pairs_above_the_threshold_brute_force():
    rng = np.random.default_rng(3)
    base = unit(rng.normal(size=(40, 16)))
    x = unit(np.concatenate([base, base + rng.normal(scale=0.05, size=base.shape)]))  # 40 planted pairs
    labeled = np.zeros(80, bool)
    labeled[:5] = True
    u = rng.random(80)
    picks, _ = hybrid(x, u, ~labeled, labeled, 30, preselect=2, dup_threshold=0.9, device="cpu")
    assert len(picks) == 30 and not labeled[picks].any()
    sims = x[picks] @ x[picks].T
    assert (sims[~np.eye(len(picks), dtype=bool)] <= 0.9).all()
    assert (x[picks] @ x[labeled].T <= 0.9).all()


def test_hybrid_weights_uncertainty_by_distance():
    # c (45 deg) is less uncertain than b (10 deg) but much farther from the labeled item
    x = unit([angle(0), angle(10), angle(45)])
    labeled = np.array([True, False, False])
    picks, scores = hybrid(x, np.array([0, 0.9, 0.5]), ~labeled, labeled, 1, dup_threshold=None, device="cpu")
    d_b, d_c = 1 - np.cos(np.radians(10)), 1 - np.cos(np.radians(45))
    assert 0.5 * d_c > 0.9 * d_b and picks.tolist() == [2]
    assert scores[0] == pytest.approx(0.5 * d_c, rel=1e-5)


def test_hybrid_class_quotas():
    rng = np.random.default_rng(0)
    x = unit(rng.normal(size=(60, 8)))
    classes = np.arange(60) % 3
    u = np.where(classes == 0, 0.9, 0.1) + rng.random(60) * 0.01  # class 0 is by far the most uncertain
    none = np.zeros(60, bool)
    picks, _ = hybrid(x, u, ~none, none, 6, dup_threshold=None, device="cpu")
    assert (classes[picks] == 0).all()  # without quotas the batch is all class 0
    picks, _ = hybrid(x, u, ~none, none, 6, dup_threshold=None, classes=classes, quota=2, device="cpu")
    assert np.bincount(classes[picks], minlength=3).tolist() == [2, 2, 2]
    picks, _ = hybrid(x, u, ~none, none, 6, dup_threshold=None, classes=classes, quota={0: 1}, device="cpu")
    assert (classes[picks] == 0).sum() == 1 and len(picks) == 6


def test_max_similarity_blockwise_equals_brute_force():
    rng = np.random.default_rng(1)
    x = unit(rng.normal(size=(50, 6)))
    rows, ref = np.arange(0, 50, 2), np.arange(1, 50, 2)
    best, where = max_similarity(x, rows, ref, "cpu", block=7, chunk=5)
    full = x[rows] @ x[ref].T
    np.testing.assert_allclose(best, full.max(1), atol=1e-6)
    assert where.tolist() == ref[full.argmax(1)].tolist()


def test_coreset_starts_from_the_labeled_set():
    x = unit([angle(0), angle(10), angle(90), angle(170)])
    labeled = np.array([True, False, False, False])
    pool = registry.Pool(~labeled, labeled, embeddings=x)
    picks, _ = registry.get("coreset").fn(pool, 2, np.random.default_rng(0), registry.Options(device="cpu"))
    assert picks.tolist() == [3, 2]  # farthest from the labeled item first, then the farthest from both


def test_probe_is_accurate_on_separable_data_and_deterministic():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=3.0, size=(4, 5))
    y = rng.integers(0, 4, 400)
    x = (centres[y] + rng.normal(size=(400, 5))).astype(np.float32)
    a = train_probe(x[:100], y[:100], 4, ProbeConfig(device="cpu"))
    b = train_probe(x[:100], y[:100], 4, ProbeConfig(device="cpu"))
    np.testing.assert_array_equal(a.weight, b.weight)
    probs = predict_proba(a, x[100:], "cpu")
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (probs.argmax(1) == y[100:]).mean() > 0.9  # chance is 0.25


def test_accept_walks_the_order_skipping_duplicates_and_full_classes():
    from curate.select.hybrid import accept

    x = unit([angle(0), angle(3), angle(60), angle(62), angle(120), angle(180)])
    labeled = np.array([True, False, False, False, False, False])
    order = np.array([1, 2, 3, 4, 5])  # 1 ~ labeled 0; 3 ~ 2
    assert order[accept(x, order, labeled, 5, 0.9, device="cpu")].tolist() == [2, 4, 5]
    assert order[accept(x, order, labeled, 2, 0.9, device="cpu")].tolist() == [2, 4]
    classes = np.array([0, 0, 1, 1, 1, 0])
    assert order[accept(x, order, labeled, 5, None, classes, {1: 1}, device="cpu")].tolist() == [1, 2, 5]


def test_hybrid_low_budget_phase_is_typiclust_then_uncertainty():
    x, centres = planted_clusters([20, 40, 30])
    n = len(x)
    probs = np.tile([[0.5, 0.5]], (n, 1))
    probs[centres] = [0.99, 0.01]  # the typical points are the ones the model is sure about
    none = np.zeros(n, bool)
    pool = registry.Pool(~none, none, embeddings=x, probs=probs)
    opt = registry.Options(device="cpu", knn=10)
    picks, _ = registry.get("hybrid").fn(pool, 3, np.random.default_rng(0), opt)
    assert sorted(picks.tolist()) == sorted(centres.tolist())  # 0 labels < 10 per class: TypiClust's batch
    picks, _ = registry.get("hybrid").fn(pool, 3, np.random.default_rng(0),
                                         registry.Options(device="cpu", knn=10, typical_per_class=0))
    assert not set(picks.tolist()) & set(centres.tolist())  # uncertainty first: never the confident centres
