"""The report map's 2-D layout keeps neighbourhoods where PCA piles clusters on top of each other."""

import numpy as np
import pytest

from curate.report.layout import LayoutConfig, edge_weights, knn_graph, knn_recall, neighbour_layout


def pca_2d(x: np.ndarray) -> np.ndarray:
    """The baseline: projection on the two main axes (what the map drew before)."""
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def planted_clusters(clusters=30, per=30, dim=64, seed=0):
    """Each cluster a 2-D Gaussian patch (random plane) around its own axis: two clusters far out (30),
    the others at 5 along the remaining axes. PCA's two axes are the far clusters' ones, so the
    other 28 clusters all land near the origin; their neighbourhoods are still well apart in 64-d."""
    rng = np.random.default_rng(seed)
    points, labels = [], []
    for c in range(clusters):
        centre = np.zeros(dim)
        centre[c] = 30.0 if c < 2 else 5.0
        plane = np.linalg.qr(rng.normal(size=(dim, 2)))[0]
        points.append(centre + rng.normal(size=(per, 2)) @ plane.T + 0.01 * rng.normal(size=(per, dim)))
        labels += [c] * per
    return np.vstack(points).astype(np.float32), np.array(labels)


def neighbours_2d(y: np.ndarray, k: int = 10) -> np.ndarray:
    d = ((y[:, None, :] - y[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1)[:, :k]


def test_layout_keeps_neighbours_that_pca_loses():
    x, labels = planted_clusters()
    layout, pca = neighbour_layout(x), pca_2d(x)
    assert layout.shape == (len(x), 2) and np.isfinite(layout).all()
    recall_layout, recall_pca = knn_recall(x, layout), knn_recall(x, pca)
    assert recall_pca < 0.3  # the failure this layout exists for
    assert recall_layout > 0.55 and recall_layout > recall_pca + 0.3, (recall_layout, recall_pca)
    # and the planted clusters stay apart: a point's 10 nearest in 2-D are from its own cluster
    same_layout = (labels[neighbours_2d(layout)] == labels[:, None]).mean()
    same_pca = (labels[neighbours_2d(pca)] == labels[:, None]).mean()
    assert same_layout > 0.95 and same_pca < 0.4, (same_layout, same_pca)


def test_layout_is_seeded():
    x, _ = planted_clusters(clusters=6, per=20)
    config = LayoutConfig(epochs=50)
    assert np.array_equal(neighbour_layout(x, config), neighbour_layout(x, config))
    assert not np.array_equal(neighbour_layout(x, config), neighbour_layout(x, LayoutConfig(epochs=50, seed=1)))


def test_knn_graph_matches_brute_force_in_blocks():
    x = np.random.default_rng(3).normal(size=(150, 8)).astype(np.float32)
    idx, dist = knn_graph(x, 7, block=32)  # several blocks, the last one partial
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    want = np.argsort(-sims, axis=1)[:, :7]
    assert np.array_equal(idx, want)
    assert np.allclose(dist, 1 - np.take_along_axis(sims, want, axis=1), atol=1e-5)


def test_edge_weights_are_umap_memberships():
    dist = np.random.default_rng(4).uniform(0.1, 1.0, size=(40, 15)).astype(np.float32)
    dist.sort(axis=1)
    w = edge_weights(dist)
    assert np.allclose(w[:, 0], 1.0)  # the nearest neighbour fully
    assert np.all(np.diff(w, axis=1) <= 1e-6)  # farther counts less
    assert np.allclose(w.sum(axis=1), np.log2(15), rtol=1e-3)  # each row's total, set by sigma


def test_knn_recall_of_a_perfect_and_of_a_shuffled_layout():
    x = np.random.default_rng(5).normal(size=(200, 2))
    assert knn_recall(x, x) == 1.0
    shuffled = x[np.random.default_rng(6).permutation(len(x))]
    assert knn_recall(x, shuffled) < 0.15  # chance is 10 / 199


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_tiny_samples(n):
    y = neighbour_layout(np.ones((n, 4), dtype=np.float32) + np.arange(n)[:, None])
    assert y.shape == (n, 2) and np.isfinite(y).all()
